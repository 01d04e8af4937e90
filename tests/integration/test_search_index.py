"""Trigram search indexes on real PostgreSQL: a reader turns to them for a search whose columns
all have one (after a walk of the newest rows, which answers common terms), and finds the very
same rows either way; ``failboard search-index`` adds them."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url
from typer.testing import CliRunner

from failboard.cli import app
from failboard.db import create_engine
from failboard.drivers import trigram
from failboard.drivers.laravel import LaravelReader
from failboard.drivers.laravel.payload import build_payload
from failboard.drivers.laravel.reader import SEARCHED as LARAVEL_SEARCHED
from failboard.drivers.laravel.schema import create_tables, failed_jobs_table, insert_failed_jobs
from failboard.failures import FailuresReader, create_failures_table, failures_table
from failboard.failures.reader import EXCEPTION_COLUMNS
from failboard.failures.reader import SEARCHED as FAILURES_SEARCHED
from failboard.models import JobQuery
from tests.services import MYSQL_URL, fresh_database

T0 = datetime(2026, 3, 1, 12, 0, 0)
ROWS = 10_000
RARE = "zebrafish-needle"
"""In two rows: one payload (as ZebraFish-Needle) and one exception; nowhere else."""

runner = CliRunner()

_VENDOR = "/var/www/html/vendor/laravel/framework/src/Illuminate"
TRACE = "\n".join(
    f"#{n} {_VENDOR}/{path}({line}): {call}"
    for n, (path, line, call) in enumerate(
        [
            ("Container/BoundMethod.php", 36, "Illuminate\\Container\\BoundMethod::{closure}()"),
            ("Container/Util.php", 43, "Illuminate\\Container\\Util::unwrapIfClosure()"),
            ("Container/BoundMethod.php", 95, "Illuminate\\Container\\BoundMethod::callBound()"),
            ("Bus/Dispatcher.php", 128, "Illuminate\\Container\\Container->call()"),
            ("Pipeline/Pipeline.php", 170, "Illuminate\\Bus\\Dispatcher->{closure}()"),
            ("Queue/CallQueuedHandler.php", 126, "Illuminate\\Pipeline\\Pipeline->then()"),
            ("Queue/Jobs/Job.php", 102, "Illuminate\\Queue\\CallQueuedHandler->call()"),
            ("Queue/Worker.php", 441, "Illuminate\\Queue\\Jobs\\Job->fire()"),
            ("Queue/Console/WorkCommand.php", 138, "Illuminate\\Queue\\Worker->runNextJob()"),
        ],
        start=1,
    )
)
"""Nine frames of a queue worker's stack, as Laravel writes them under the exception: what
makes a row about 1.5 KB, and the table big enough for the planner to prefer an index."""
PY_TRACE = "".join(
    f'  File "/app/.venv/lib/python3.12/site-packages/celery/app/trace.py", line {400 + n}, '
    f"in trace_task\n    R = retval = fun(*args, **kwargs)\n"
    for n in range(8)
)
"""A Celery worker's traceback (not searched, but in every row, as in a real table)."""


def _laravel_row(i: int) -> dict[str, Any]:
    names = ("App\\Jobs\\SendInvoice", "App\\Jobs\\ImportCsv", "App\\Jobs\\Café/Ünïcode")
    exceptions = (
        "Stripe\\Exception\\CardException: Your card was declined.",
        f"RuntimeException: SMTP timeout after {i % 60} seconds",
        "InvalidArgumentException: Row 17_b is invalid",
        "RuntimeException: Ärger mit dem Server",
        "LogicException: used 100% of quota",
    )
    email = "ZebraFish-Needle@example.org" if i == 2_345 else f"customer{i}@example.org"
    name = "App\\Jobs\\Rare_Job" if i == 777 else names[i % len(names)]
    exception = exceptions[i % len(exceptions)]
    if i == 1_234:
        exception = f"RuntimeException: {RARE.upper()} went missing"
    return {
        "uuid": f"00000000-0000-4000-8000-{i:012d}",
        "connection": "redis" if i % 2 else "database",
        "queue": ("emails", "imports", "default", "billing")[i % 4],
        "payload": build_payload(name, properties={"customerEmail": email, "tries": i % 5}),
        "exception": f"{exception} in /app/Jobs/Job.php:{i % 300}\nStack trace:\n{TRACE}",
        # Three rows per minute: ties on failed_at, broken by id.
        "failed_at": T0 - timedelta(minutes=i // 3),
    }


def _failure_row(i: int, project: str) -> dict[str, Any]:
    classes = ("stripe.error.CardError", "TimeoutError", "ValueError", "RuntimeError")
    messages = ("Your card was declined", "read timed out", "Row 17_b is invalid", "Ärger 100%")
    message = messages[i % len(messages)]
    if i == 1_234:
        message = f"{RARE.upper()} went missing"
    email = "ZebraFish-Needle@example.org" if i == 2_345 else f"customer{i}@example.org"
    return {
        "project": project,
        "engine": "celery",
        "job_id": f"{project}-{i:06d}-{secrets.token_hex(4)}",
        "queue": ("emails", "imports", "default")[i % 3],
        "name": ("proj.tasks.send_invoice", "proj.tasks.import_csv")[i % 2],
        "args": f'["{email}", {i}]',
        "kwargs": f'{{"tries": {i % 5}}}',
        "exception_class": classes[i % len(classes)],
        "exception_message": message,
        "traceback": f"Traceback (most recent call last):\n{PY_TRACE}{classes[i % 4]}: {message}",
        "fingerprint": f"{i % 7:032x}",
        "attempts": 1 + i % 3,
        "failed_at": T0 - timedelta(minutes=i // 3),
    }


def _vacuum(engine: Engine) -> None:
    # Statistics as autovacuum would have left them: the planner's choice is the point here.
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.exec_driver_sql("VACUUM ANALYZE")


def _index(engine: Engine, table: sa.Table, columns: tuple[str, ...]) -> None:
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.exec_driver_sql(trigram.EXTENSION_SQL)
        for column in columns:
            trigram.create_index(connection, table, column)
    _vacuum(engine)


@dataclass
class Searched:
    """What a reader answered, and the statements its ``list`` sent, the last one explained."""

    ids: list[str]
    count: int
    keys: list[str]
    statements: list[str]
    plan: str

    @property
    def indexed(self) -> bool:
        """Whether the page was looked for with ILIKE, which a trigram index serves."""
        return any("ILIKE" in statement for statement in self.statements)

    @property
    def walked(self) -> bool:
        """Whether the newest rows were walked with strpos first (and only)."""
        return "strpos" in self.statements[0]


def _search(reader: LaravelReader | FailuresReader, engine: Engine, query: JobQuery) -> Searched:
    """Run ``query`` through the reader; EXPLAIN the last statement of its ``list`` as it was
    really sent, with its parameters (captured from the engine, not rebuilt by the test)."""
    sent: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, params: Any, *_: Any) -> None:
        sent.append((statement, params))

    event.listen(engine, "before_cursor_execute", capture)
    try:
        ids = [job.sort_key or "" for job in reader.list(query)]
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    count = reader.count(query, 100_000).value
    keys = [key.sort_key or "" for key in reader.keys(query)]
    searching = [(s, p) for s, p in sent if "strpos" in s or "ILIKE" in s]
    statement, params = searching[-1]
    with engine.connect() as connection:
        plan = "\n".join(connection.exec_driver_sql("EXPLAIN " + statement, params).scalars())
    return Searched(ids, count, keys, [s for s, _ in searching], plan)


def _answers(
    make: Any, engine: Engine, queries: dict[str, JobQuery]
) -> tuple[dict[str, tuple[list[str], int, list[str]]], dict[str, Searched]]:
    """Every query through a new reader (a reader looks for indexes once, on its first search)."""
    reader = make()
    try:
        found = {name: _search(reader, engine, query) for name, query in queries.items()}
    finally:
        reader.close()
    return {name: (s.ids, s.count, s.keys) for name, s in found.items()}, found


def _uses_trigram(searched: Searched, *indexes: str) -> bool:
    """A window of the newest rows walked first, then the indexes: a rare term's path."""
    return (
        searched.walked
        and searched.indexed
        and all(f"Bitmap Index Scan on {name}" in searched.plan for name in indexes)
    )


def _window_only(searched: Searched) -> bool:
    """The page found in the window of the newest rows: a common term's path, index or not."""
    return searched.walked and not searched.indexed and len(searched.statements) == 1


def _plain(searched: Searched) -> bool:
    """One strpos walk, as without any index."""
    return (
        len(searched.statements) == 1
        and searched.walked
        and not searched.indexed
        and "_trgm" not in searched.plan
    )


# -- the Laravel reader ----------------------------------------------------------------------

LARAVEL_QUERIES = {
    "rare q": JobQuery(q=RARE, limit=500),
    "rare q, other case": JobQuery(q="ZEBRAFISH-needle", limit=500),
    "rare exception": JobQuery(exception=RARE, limit=500),
    "common q": JobQuery(q="declined", limit=500),
    "common q, page": JobQuery(q="declined"),
    "common q, oldest": JobQuery(q="declined", order="oldest"),
    "common exception": JobQuery(exception="card was DECLINED", limit=500),
    "common exception, page": JobQuery(exception="card was DECLINED"),
    "percent": JobQuery(q="100%", limit=500),
    "underscore": JobQuery(exception="17_b", limit=500),
    "backslash": JobQuery(q="App\\Jobs\\Café", limit=500),
    "umlaut": JobQuery(q="ÄRGER mit", limit=500),
    "queue": JobQuery(q="billing", limit=500),
    "name": JobQuery(name="App\\Jobs\\Café/Ünïcode", limit=500),
    "rare name": JobQuery(name="app\\jobs\\rare_job", limit=500),
    "narrowed": JobQuery(q="declined", queue="emails", failed_after=T0 - timedelta(hours=5)),
    "narrowed, none": JobQuery(q=RARE, queue="emails", failed_after=T0 - timedelta(hours=5)),
}


@pytest.fixture(scope="module")
def laravel_url() -> Iterator[str]:
    with fresh_database("postgres") as url:
        engine = create_engine(url)
        create_tables(engine)
        with engine.begin() as connection:
            insert_failed_jobs(connection, (_laravel_row(i) for i in range(ROWS)))
            connection.exec_driver_sql(
                "CREATE INDEX failed_jobs_failed_at ON failed_jobs (failed_at)"
            )
        _vacuum(engine)
        engine.dispose()
        yield url


def test_laravel_search_uses_trigram_indexes_only_when_all_its_columns_have_one(
    laravel_url: str,
) -> None:
    engine = create_engine(laravel_url)
    table = failed_jobs_table()

    def reader() -> LaravelReader:
        return LaravelReader("shop", laravel_url, engine=engine)

    try:
        plain, before = _answers(reader, engine, LARAVEL_QUERIES)
        assert len(plain["rare q"][0]) == 2 and plain["rare q"][1] == 2
        assert len(plain["rare exception"][0]) == 1 and len(plain["rare name"][0]) == 1
        assert plain["common q"][1] == ROWS // 5 and plain["queue"][1] == ROWS // 4
        assert plain["narrowed, none"] == ([], 0, [])
        assert all(ids for name, (ids, _, _) in plain.items() if name != "narrowed, none")
        assert all(_plain(searched) for searched in before.values())

        # payload and exception only: exception= switches, q= (an OR that also reads the
        # queue) stays on strpos everywhere, since one unindexed branch reads the table anyway.
        _index(engine, table, ("payload", "exception"))
        partial, during = _answers(reader, engine, LARAVEL_QUERIES)
        assert partial == plain
        assert _uses_trigram(during["rare exception"], "failed_jobs_exception_trgm")
        assert _uses_trigram(during["rare name"], "failed_jobs_payload_trgm")
        assert _plain(during["rare q"]) and _plain(during["queue"])

        _index(engine, table, LARAVEL_SEARCHED)
        indexed, after = _answers(reader, engine, LARAVEL_QUERIES)
        assert indexed == plain
        every = [f"failed_jobs_{column}_trgm" for column in LARAVEL_SEARCHED]
        assert _uses_trigram(after["rare q"], *every) and "BitmapOr" in after["rare q"].plan
        assert _uses_trigram(after["rare exception"], "failed_jobs_exception_trgm")
        # A common term's page lies among the newest rows and is found there, as without the
        # index, never by reading all of its matches through the index to sort them; so is a
        # narrow search's, whose filters leave fewer rows than the window holds.
        for name in (
            "common q, page",
            "common q, oldest",
            "common exception, page",
            "narrowed",
            "narrowed, none",
        ):
            assert _window_only(after[name]), name
    finally:
        engine.dispose()


# -- the failures-table reader ---------------------------------------------------------------

FAILURES_QUERIES = {
    "rare q": JobQuery(q=RARE, limit=500),
    "rare exception": JobQuery(exception=RARE.upper(), limit=500),
    "common q": JobQuery(q="declined", limit=500),
    "common q, page": JobQuery(q="declined"),
    "class": JobQuery(exception="carderror", limit=500),
    "class, page": JobQuery(exception="carderror"),
    "percent": JobQuery(q="ärger 100%", limit=500),
    "underscore": JobQuery(exception="17_b", limit=500),
    "args": JobQuery(q="customer12@", limit=500),
    "kwargs": JobQuery(q='"tries": 4', limit=500),
    "job id": JobQuery(q="api-000042-", limit=500),
}


@pytest.fixture(scope="module")
def failures_url() -> Iterator[str]:
    with fresh_database("postgres") as url:
        engine = create_engine(url)
        table = create_failures_table(engine)
        with engine.begin() as connection:
            connection.execute(sa.insert(table), [_failure_row(i, "api") for i in range(ROWS)])
            # Another project's rows in the same table, the rare term among them: never found.
            connection.execute(sa.insert(table), [_failure_row(i, "other") for i in range(2_400)])
        _vacuum(engine)
        engine.dispose()
        yield url


def test_failures_search_uses_trigram_indexes_only_when_all_its_columns_have_one(
    failures_url: str,
) -> None:
    engine = create_engine(failures_url)
    table = failures_table()

    def reader() -> FailuresReader:
        return FailuresReader("api", failures_url, engine=engine)

    try:
        plain, before = _answers(reader, engine, FAILURES_QUERIES)
        assert len(plain["rare q"][0]) == 2 and len(plain["rare exception"][0]) == 1
        assert all(ids for ids, _, _ in plain.values())
        assert all(_plain(searched) for searched in before.values())

        _index(engine, table, EXCEPTION_COLUMNS)
        partial, during = _answers(reader, engine, FAILURES_QUERIES)
        assert partial == plain
        assert _uses_trigram(
            during["rare exception"], *(f"failboard_failures_{c}_trgm" for c in EXCEPTION_COLUMNS)
        )
        assert _plain(during["rare q"])

        _index(engine, table, FAILURES_SEARCHED)
        indexed, after = _answers(reader, engine, FAILURES_QUERIES)
        assert indexed == plain
        every = [f"failboard_failures_{column}_trgm" for column in FAILURES_SEARCHED]
        assert _uses_trigram(after["rare q"], *every) and "BitmapOr" in after["rare q"].plan
        assert _window_only(after["common q, page"]) and _window_only(after["class, page"])
    finally:
        engine.dispose()


# -- failboard search-index ------------------------------------------------------------------


def _config(tmp_path: Path, projects: str) -> Path:
    file = tmp_path / "failboard.toml"
    file.write_text(f'[spool]\nurl = "sqlite:///{tmp_path}/spool.db"\n{projects}')
    return file


def _trigram_indexes(url: str) -> dict[str, str]:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                sa.text(
                    "SELECT schemaname || '.' || indexname, indexdef FROM pg_indexes "
                    "WHERE indexdef LIKE '%gin_trgm_ops%'"
                )
            ).all()
    finally:
        engine.dispose()
    return {str(name): str(definition) for name, definition in rows}


def test_search_index_prints_the_sql_then_applies_it_once(tmp_path: Path) -> None:
    with fresh_database("postgres") as url:
        engine = create_engine(url)
        create_tables(engine)
        with engine.begin() as connection:
            connection.exec_driver_sql("CREATE SCHEMA ops")
        create_failures_table(engine, "ops.Team_Failures")
        engine.dispose()
        config = _config(
            tmp_path,
            f'[[projects]]\nkey = "shop"\ndriver = "laravel"\nurl = "{url}"\n'
            f'[[projects]]\nkey = "api"\ndriver = "celery"\nurl = "{url}"\n'
            'table = "ops.Team_Failures"\n',
        )

        printed = runner.invoke(app, ["search-index", "--project", "shop", "-c", str(config)])
        assert printed.exit_code == 0, printed.output
        assert printed.stdout.splitlines() == [
            "CREATE EXTENSION IF NOT EXISTS pg_trgm;",
            *(
                f"CREATE INDEX CONCURRENTLY IF NOT EXISTS failed_jobs_{column}_trgm ON "
                f"failed_jobs USING gin ({column} gin_trgm_ops);"
                for column in ("payload", "exception", "queue")
            ),
        ]
        assert _trigram_indexes(url) == {}  # printing changes nothing

        applied = runner.invoke(app, ["search-index", "-p", "shop", "--apply", "-c", str(config)])
        assert applied.exit_code == 0, applied.output
        assert applied.stdout.count("created failed_jobs_") == 3
        made = _trigram_indexes(url)
        assert set(made) == {f"public.failed_jobs_{c}_trgm" for c in LARAVEL_SEARCHED}
        assert "USING gin (payload gin_trgm_ops)" in made["public.failed_jobs_payload_trgm"]

        again = runner.invoke(app, ["search-index", "-p", "shop", "--apply", "-c", str(config)])
        assert again.exit_code == 0, again.output
        assert again.stdout.count("exists") == 3 and "nothing to do" in again.stdout
        assert _trigram_indexes(url) == made

        # The failures table under a schema and a name that needs quoting.
        printed = runner.invoke(app, ["search-index", "-p", "api", "-c", str(config)])
        assert printed.exit_code == 0, printed.output
        assert (
            'CREATE INDEX CONCURRENTLY IF NOT EXISTS "Team_Failures_kwargs_trgm" ON '
            'ops."Team_Failures" USING gin (kwargs gin_trgm_ops);'
        ) in printed.stdout.splitlines()
        applied = runner.invoke(app, ["search-index", "-p", "api", "--apply", "-c", str(config)])
        assert applied.exit_code == 0, applied.output
        assert set(_trigram_indexes(url)) - set(made) == {
            f"ops.Team_Failures_{c}_trgm" for c in FAILURES_SEARCHED
        }


def test_search_index_refuses_an_other_index_that_holds_its_name(tmp_path: Path) -> None:
    with fresh_database("postgres") as url:
        engine = create_engine(url)
        create_tables(engine)
        with engine.begin() as connection:
            insert_failed_jobs(connection, [_laravel_row(0), _laravel_row(4)])  # same queue
            connection.exec_driver_sql("CREATE INDEX failed_jobs_payload_trgm ON failed_jobs (id)")
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            # What an interrupted CREATE INDEX CONCURRENTLY leaves: an index that is not valid.
            with pytest.raises(sa.exc.IntegrityError):
                connection.exec_driver_sql(
                    "CREATE UNIQUE INDEX CONCURRENTLY failed_jobs_queue_trgm ON failed_jobs (queue)"
                )
            assert trigram.indexed_columns(connection, failed_jobs_table()) == frozenset()
        config = _config(
            tmp_path, f'[[projects]]\nkey = "shop"\ndriver = "laravel"\nurl = "{url}"\n'
        )

        out = runner.invoke(app, ["search-index", "-p", "shop", "--apply", "-c", str(config)])
        assert out.exit_code == 1
        message = " ".join(out.output.split())
        assert (
            "search-index: project shop: index failed_jobs_payload_trgm exists but is not a "
            "trigram index of payload; drop it (DROP INDEX CONCURRENTLY "
            "failed_jobs_payload_trgm;) or rename it, and run this again"
        ) in message

        with engine.begin() as connection:
            connection.exec_driver_sql("DROP INDEX failed_jobs_payload_trgm")
        engine.dispose()
        out = runner.invoke(app, ["search-index", "-p", "shop", "--apply", "-c", str(config)])
        assert out.exit_code == 1
        assert out.stdout.count("created") == 2  # payload and exception, before the queue
        message = " ".join(out.output.split())
        assert "index failed_jobs_queue_trgm exists but is not valid" in message
        assert "DROP INDEX CONCURRENTLY failed_jobs_queue_trgm;" in message


def test_search_index_without_the_privilege_prints_the_error_and_the_fix(tmp_path: Path) -> None:
    with fresh_database("postgres") as url:
        role = f"fb_test_{secrets.token_hex(4)}"
        admin = create_engine(url)
        with admin.begin() as connection:
            connection.exec_driver_sql(f"CREATE ROLE {role} LOGIN")
        try:
            create_tables(admin)
            weak = make_url(url).set(username=role, password=None)
            config = _config(
                tmp_path,
                f'[[projects]]\nkey = "shop"\ndriver = "laravel"\n'
                f'url = "{weak.render_as_string(hide_password=False)}"\n',
            )
            out = runner.invoke(app, ["search-index", "-p", "shop", "--apply", "-c", str(config)])
            assert out.exit_code == 1
            message = " ".join(out.output.split())
            assert "CREATE EXTENSION IF NOT EXISTS pg_trgm failed: permission denied" in message
            assert "as a superuser or the table's owner" in message
            assert "failboard search-index --project shop prints" in message

            # With the extension made by someone who may: the index needs the table's owner.
            with admin.begin() as connection:
                connection.exec_driver_sql(trigram.EXTENSION_SQL)
            out = runner.invoke(app, ["search-index", "-p", "shop", "--apply", "-c", str(config)])
            assert out.exit_code == 1
            message = " ".join(out.output.split())
            assert "failed_jobs_payload_trgm ON failed_jobs USING gin" in message
            assert "failed: must be owner of table failed_jobs" in message
            assert "as a superuser or the table's owner" in message
        finally:
            with admin.begin() as connection:
                connection.exec_driver_sql(f"DROP ROLE {role}")
            admin.dispose()


@pytest.mark.parametrize(
    ("project", "reason"),
    [
        (
            f'driver = "laravel"\nurl = "{MYSQL_URL}"',
            "project elsewhere is on MySQL/MariaDB; trigram indexes are a PostgreSQL feature",
        ),
        (
            'driver = "huey"\nurl = "sqlite:///failures.db"',
            "project elsewhere is on SQLite; trigram indexes are a PostgreSQL feature",
        ),
        (
            'driver = "rq"\nurl = "redis://127.0.0.1:6379/0"',
            "project elsewhere (rq) is not searched in a SQL table",
        ),
    ],
    ids=["mariadb", "sqlite", "rq"],
)
def test_search_index_names_why_a_project_cannot_have_one(
    tmp_path: Path, project: str, reason: str
) -> None:
    config = _config(tmp_path, f'[[projects]]\nkey = "elsewhere"\n{project}\n')
    for args in ([], ["--apply"]):
        out = runner.invoke(app, ["search-index", "-p", "elsewhere", *args, "-c", str(config)])
        assert out.exit_code == 1
        assert out.stdout == ""
        assert f"search-index: {reason}" in " ".join(out.stderr.split())


def test_a_running_reader_sees_a_new_index_at_its_next_check() -> None:
    """No restart after ``search-index --apply``: the reader asks the catalog again once
    :data:`trigram.RECHECK_SECONDS` have passed (a fake clock here), and not before."""
    now = [0.0]
    columns = trigram.TrigramColumns(clock=lambda: now[0])
    table = failed_jobs_table()
    with fresh_database("postgres") as url:
        engine = create_engine(url)
        try:
            create_tables(engine)
            with engine.connect() as connection:
                assert columns.of(connection, table) == frozenset()
            _index(engine, table, ("exception",))
            with engine.connect() as connection:
                now[0] = trigram.RECHECK_SECONDS - 1
                assert columns.of(connection, table) == frozenset()  # trusted until the check
                now[0] = trigram.RECHECK_SECONDS
                assert columns.of(connection, table) == {"exception"}
                connection.exec_driver_sql(f"DROP INDEX {trigram.index_name(table, 'exception')}")
                connection.commit()
                now[0] = 2 * trigram.RECHECK_SECONDS
                assert columns.of(connection, table) == frozenset()  # and a dropped one goes
        finally:
            engine.dispose()
