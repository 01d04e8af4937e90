"""LaravelReader against real PostgreSQL, MariaDB and SQLite, on all three failed_jobs forms."""

from __future__ import annotations

import json
import re
import tracemalloc
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from failboard.db import create_engine
from failboard.drivers.base import Count
from failboard.drivers.laravel import LaravelReader, Options
from failboard.drivers.laravel.payload import build_payload, php_json_encode
from failboard.drivers.laravel.schema import Style, create_tables, insert_failed_jobs
from failboard.exceptions import InvalidRequest, StoreError, StoreUnreachable
from failboard.models import FailedJob, JobQuery, Seek
from tests.services import fresh_database

T0 = datetime(2026, 3, 1, 12, 0, 0)  # naive: the store's zone (UTC unless said otherwise)
TIES = 7


@dataclass
class Spec:
    ref: int
    name: str
    queue: str
    connection: str
    at: datetime
    exception: str = "RuntimeException: boom"
    payload: Any = None
    tags: set[str] = field(default_factory=set)


def _specs() -> list[Spec]:
    m = timedelta(minutes=1)
    specs = [
        Spec(
            1,
            "App\\Jobs\\SendInvoice",
            "emails",
            "database",
            T0 - 60 * m,
            "RuntimeException: SMTP timeout after 30 seconds",
        ),
        Spec(
            2,
            "App\\Jobs\\SendInvoice",
            "emails",
            "redis",
            T0 - 50 * m,
            "RuntimeException: SMTP timeout after 31 seconds",
        ),
        Spec(
            3,
            "App\\Jobs\\Import_CSV",
            "imports",
            "database",
            T0 - 40 * m,
            "InvalidArgumentException: Row 17 is invalid",
        ),
        Spec(
            4,
            "App\\Jobs\\ImportXCSV",
            "imports",
            "database",
            T0 - 40 * m,
            "InvalidArgumentException: Row 18 is invalid",
        ),
        Spec(
            5,
            "App\\Jobs\\Rate100%",
            "default",
            "database",
            T0 - 30 * m,
            "LogicException: used 100% of quota",
        ),
        Spec(
            6,
            "App\\Jobs\\Rate100X",
            "default",
            "database",
            T0 - 30 * m,
            "LogicException: used 100X of quota",
        ),
        Spec(
            14,
            "App\\Jobs\\Café/Ünïcode",
            "emails",
            "database",
            T0 - 20 * m,
            "RuntimeException: 💥 Ärger mit \u202eRTL\u202c",
        ),
        Spec(
            15,
            "App\\Jobs\\Café/Ünïcode",
            "emails",
            "database",
            T0 - 19 * m,
            "RuntimeException: escaped payload",
            tags={"ascii"},
        ),
        Spec(
            16,
            "",
            "default",
            "database",
            T0 - 10 * m,
            "RuntimeException: \ufffd\ufffd broken bytes",
            payload="{not json at all",
        ),
        Spec(17, "app\\jobs\\SENDINVOICE", "emails", "database", T0 - 7 * m),
        Spec(18, "App\\Jobs\\Spaced", "default", "redis", T0 + 5 * m, tags={"spaced"}),
    ]
    specs += [
        Spec(100 + i, "App\\Jobs\\Tick", "default", ("database", "redis")[i % 2], T0)
        for i in range(TIES)
    ]
    return specs


SPECS = _specs()
BY_REF = {spec.ref: spec for spec in SPECS}


def _row(spec: Spec, style: Style) -> dict[str, Any]:
    job_uuid = str(uuid.uuid4())
    if spec.payload is not None:
        text = spec.payload
    else:
        redis = spec.connection == "redis"
        payload = build_payload(
            spec.name, uuid=job_uuid, max_tries=3, redis=redis, attempts=3 if redis else None
        )
        if "ascii" in spec.tags:  # older Laravel, or a payload that went through queue:retry
            text = php_json_encode(payload, unescaped_unicode=False)
        elif "spaced" in spec.tags:
            text = json.dumps(payload)
        else:
            text = php_json_encode(payload)
    row = {
        "connection": spec.connection,
        "queue": spec.queue,
        "payload": text,
        "exception": f"{spec.exception} [ref R{spec.ref}] in /app/x.php:{spec.ref}\n"
        "Stack trace:\n#0 {main}",
        "failed_at": spec.at,
    }
    if style != "no_uuid":
        row["uuid"] = job_uuid
    return row


@dataclass
class World:
    url: str
    style: Style
    reader: LaravelReader
    ids: dict[int, int]  # ref -> numeric id


@pytest.fixture(
    scope="module",
    params=[
        (kind, style)
        for kind in ("sqlite", "postgres", "mysql")
        for style in ("new", "old", "no_uuid")
    ],
    ids=lambda p: f"{p[0]}-{p[1]}",
)
def world(request: pytest.FixtureRequest) -> Iterator[World]:
    kind, style = request.param
    with fresh_database(kind) as url:
        engine = create_engine(url)
        create_tables(engine, style=style)
        # Insert out of time order, so that id order and failed_at order differ.
        shuffled = sorted(SPECS, key=lambda s: (s.ref * 7919) % 101)
        with engine.begin() as connection:
            insert_failed_jobs(connection, [_row(spec, style) for spec in shuffled])
            found = connection.execute(sa.text("SELECT id, exception FROM failed_jobs")).all()
        engine.dispose()
        ids = {_ref_of(text): int(job_id) for job_id, text in found}
        reader = LaravelReader("shop", url)
        try:
            yield World(url, style, reader, ids)
        finally:
            reader.close()


def _ref_of(text: str | None) -> int:
    match = re.search(r"\[ref R(\d+)\]", text or "")
    assert match, text
    return int(match.group(1))


def _refs(jobs: list[FailedJob]) -> list[int]:
    return [_ref_of(job.exception_message) for job in jobs]


def _utc(naive: datetime) -> datetime:
    return naive.replace(tzinfo=UTC)


def _expected(world: World, keep: Callable[[Spec], bool], newest: bool = True) -> list[int]:
    chosen = [spec for spec in SPECS if keep(spec)]
    chosen.sort(key=lambda s: (s.at, world.ids[s.ref]), reverse=newest)
    return [spec.ref for spec in chosen]


def test_order_newest_and_oldest(world: World) -> None:
    newest = world.reader.list(JobQuery(limit=500))
    assert _refs(newest) == _expected(world, lambda s: True)
    oldest = world.reader.list(JobQuery(limit=500, order="oldest"))
    assert _refs(oldest) == _expected(world, lambda s: True, newest=False)
    assert [job.sort_key for job in newest] == [str(world.ids[r]) for r in _refs(newest)]


def test_list_item_fields(world: World) -> None:
    jobs = {_ref_of(j.exception_message): j for j in world.reader.list(JobQuery(limit=500))}
    first = jobs[1]
    assert first.project == "shop" and first.queue == "emails" and first.connection == "database"
    assert first.name == "App\\Jobs\\SendInvoice"
    assert first.exception_class == "RuntimeException"
    assert first.exception_message == "SMTP timeout after 30 seconds [ref R1]"
    assert first.failed_at == _utc(T0 - timedelta(hours=1))
    assert first.attempts is None  # the database queue keeps attempts out of the payload
    assert jobs[2].attempts == 3  # Redis payloads carry them
    assert first.fingerprint == jobs[2].fingerprint  # the same bug, other numbers
    assert first.fingerprint != jobs[3].fingerprint
    if world.style == "no_uuid":
        assert first.uuid is None and first.id == str(world.ids[1])
    else:
        assert first.uuid and first.id == first.uuid
    assert jobs[16].name is None and jobs[16].exception_message == (
        "\ufffd\ufffd broken bytes [ref R16]"
    )
    assert jobs[14].name == jobs[15].name == "App\\Jobs\\Café/Ünïcode"
    assert jobs[14].exception_message == "💥 Ärger mit \u202eRTL\u202c [ref R14]"
    assert jobs[18].name == "App\\Jobs\\Spaced"


@pytest.mark.parametrize("order", ["newest", "oldest"])
@pytest.mark.parametrize("limit", [1, 3, 4])
def test_keyset_pages_lose_and_repeat_nothing(world: World, order: str, limit: int) -> None:
    full = world.reader.list(JobQuery(limit=500, order=order))  # type: ignore[arg-type]
    seen: list[FailedJob] = []
    seek = None
    while True:
        page = world.reader.list(JobQuery(limit=limit, order=order, seek=seek))  # type: ignore[arg-type]
        if not page:
            break
        assert len(page) <= limit
        seen += page
        last = page[-1]
        assert last.failed_at is not None
        seek = Seek(failed_at=last.failed_at, sort_key=last.sort_key)
    assert [job.id for job in seen] == [job.id for job in full]


def test_seek_ties_keep_and_skip(world: World) -> None:
    at = _utc(T0)
    tick = {100 + i for i in range(TIES)}
    keep = _refs(world.reader.list(JobQuery(limit=500, seek=Seek(failed_at=at, ties="keep"))))
    assert set(keep[:TIES]) == tick and keep == _expected(world, lambda s: s.at <= T0)
    skip = _refs(world.reader.list(JobQuery(limit=500, seek=Seek(failed_at=at, ties="skip"))))
    assert skip == _expected(world, lambda s: s.at < T0)
    up = world.reader.list(
        JobQuery(limit=500, order="oldest", seek=Seek(failed_at=at, ties="keep"))
    )
    assert _refs(up) == _expected(world, lambda s: s.at >= T0, newest=False)
    with pytest.raises(InvalidRequest, match="cursor"):
        world.reader.list(JobQuery(seek=Seek(failed_at=at, sort_key="not-a-number")))
    # A seek between two seconds (another project's row at 12:00:00.5) splits the ties right.
    half = at + timedelta(milliseconds=500)
    assert _refs(world.reader.list(JobQuery(limit=500, seek=Seek(failed_at=half)))) == keep


FILTERS: list[tuple[dict[str, Any], Callable[[Spec], bool]]] = [
    ({"queue": "emails"}, lambda s: s.queue == "emails"),
    ({"connection": "redis"}, lambda s: s.connection == "redis"),
    (
        {"queue": "default", "connection": "database"},
        lambda s: s.queue == "default" and s.connection == "database",
    ),
    ({"name": "App\\Jobs\\SendInvoice"}, lambda s: s.name.lower() == "app\\jobs\\sendinvoice"),
    ({"name": "App\\Jobs\\Import_CSV"}, lambda s: s.ref == 3),
    ({"name": "App\\Jobs\\Rate100%"}, lambda s: s.ref == 5),
    ({"name": "App\\Jobs\\Café/Ünïcode"}, lambda s: s.ref in (14, 15)),
    ({"name": "App\\Jobs\\Spaced"}, lambda s: s.ref == 18),
    ({"name": "App\\Jobs\\Send"}, lambda s: False),
    ({"name": "%"}, lambda s: False),
    ({"exception": "smtp TIMEOUT"}, lambda s: s.ref in (1, 2)),
    ({"exception": "100%"}, lambda s: s.ref == 5),
    ({"exception": "Ärger"}, lambda s: s.ref == 14),
    # Case-insensitive beyond ASCII where the database lowers it, wildcards taken literally,
    # and a backslash is just a character (PostgreSQL's strpos, LIKE elsewhere).
    ({"exception": "ÄRGER MIT"}, lambda s: s.ref == 14),
    ({"exception": "100_"}, lambda s: False),
    ({"exception": "row 1_ is"}, lambda s: False),
    ({"exception": "ROW 1"}, lambda s: s.ref in (3, 4)),
    ({"exception": "\\"}, lambda s: False),
    ({"queue": "emails", "exception": "smtp"}, lambda s: s.ref in (1, 2)),
    ({"q": "App\\Jobs\\Import_CSV"}, lambda s: s.ref == 3),
    ({"q": "IMPORTS"}, lambda s: s.queue == "imports"),
    ({"q": "row 1_"}, lambda s: False),
    ({"q": "café"}, lambda s: s.ref in (14, 15)),
    ({"q": "R16]"}, lambda s: s.ref == 16),
    ({"failed_after": _utc(T0), "failed_before": _utc(T0)}, lambda s: s.at == T0),
    (
        {"failed_after": _utc(T0 - timedelta(minutes=40))},
        lambda s: s.at >= T0 - timedelta(minutes=40),
    ),
    (
        {"failed_before": _utc(T0) - timedelta(seconds=1), "queue": "default"},
        lambda s: s.at < T0 and s.queue == "default",
    ),
]


@pytest.mark.parametrize(("filters", "keep"), FILTERS, ids=[str(f) for f, _ in FILTERS])
def test_filters(world: World, filters: dict[str, Any], keep: Callable[[Spec], bool]) -> None:
    assert _refs(world.reader.list(JobQuery(limit=500, **filters))) == _expected(world, keep)
    expected = len(_expected(world, keep))
    assert world.reader.count(JobQuery(**filters)) == Count(expected)


def test_count_stops_at_the_cap(world: World) -> None:
    assert world.reader.count(JobQuery(), cap=5) == Count(5, capped=True)
    assert world.reader.count(JobQuery(), cap=len(SPECS)) == Count(len(SPECS))
    assert str(world.reader.count(JobQuery(), cap=5)) == "5+"
    # The seek of a page does not change the count of the query.
    seek = Seek(failed_at=_utc(T0))
    assert world.reader.count(JobQuery(seek=seek)) == Count(len(SPECS))


def test_queues_and_ping(world: World) -> None:
    assert world.reader.queues() == ["default", "emails", "imports"]
    world.reader.ping()


def test_get_by_handle_and_by_numeric_id(world: World) -> None:
    listed = {_ref_of(j.exception_message): j for j in world.reader.list(JobQuery(limit=500))}
    job = world.reader.get(listed[2].id)
    assert job is not None and job.id == listed[2].id
    assert job.payload["displayName"] == "App\\Jobs\\SendInvoice"
    assert job.exception is not None and job.exception.endswith("Stack trace:\n#0 {main}")
    assert job.max_tries == 3 and job.attempts == 3
    assert job.extra["commandName"] == "App\\Jobs\\SendInvoice" and job.extra["maxTries"] == 3
    assert job.fingerprint == listed[2].fingerprint and job.failed_at == listed[2].failed_at
    by_number = world.reader.get(str(world.ids[2]))
    assert by_number is not None and by_number.id == job.id
    broken = world.reader.get(listed[16].id)
    assert broken is not None and broken.payload == "{not json at all" and broken.name is None
    assert broken.extra == {}
    assert world.reader.get("no-such-job") is None
    assert world.reader.get("999999") is None
    assert world.reader.get("") is None


def test_timezone_of_failed_at(db_url: str) -> None:
    engine = create_engine(db_url)
    create_tables(engine)
    with engine.begin() as connection:  # 13:00 in Berlin (winter) is 12:00 UTC
        insert_failed_jobs(
            connection,
            [_row(Spec(1, "App\\Jobs\\X", "default", "database", T0 + timedelta(hours=1)), "new")],
        )
    engine.dispose()
    reader = LaravelReader("shop", db_url, Options(timezone="Europe/Berlin"))
    try:
        (job,) = reader.list(JobQuery())
        assert job.failed_at == _utc(T0)
        assert len(reader.list(JobQuery(failed_after=_utc(T0), failed_before=_utc(T0)))) == 1
        assert reader.list(JobQuery(failed_after=_utc(T0) + timedelta(seconds=1))) == []
    finally:
        reader.close()


def test_five_megabyte_payload_lists_light_and_shows_in_full(db_url: str) -> None:
    engine = create_engine(db_url)
    create_tables(engine)
    payload = build_payload("App\\Jobs\\Huge", command="x" * 5_000_000, redis=True, attempts=4)
    text = php_json_encode(payload)
    with engine.begin() as connection:
        insert_failed_jobs(
            connection,
            [
                {
                    "uuid": payload["uuid"],
                    "connection": "redis",
                    "queue": "big",
                    "payload": text,
                    "exception": "RuntimeException: " + "y" * 1_000_000,
                }
            ],
        )
    engine.dispose()
    reader = LaravelReader("shop", db_url, timeout=30)
    try:
        reader.ping()
        tracemalloc.start()
        (job,) = reader.list(JobQuery(name="App\\Jobs\\Huge"))
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert peak < 1_000_000, f"listing read {peak:,} bytes"
        assert job.name == "App\\Jobs\\Huge" and job.attempts == 4
        detail = reader.get(job.id)
        assert detail is not None and detail.payload["data"]["command"] == "x" * 5_000_000
        assert detail.exception is not None and len(detail.exception) == 1_000_018
    finally:
        reader.close()


def test_a_long_python_traceback_still_names_its_exception_in_the_list(db_url: str) -> None:
    # Python names the exception on the last line, far past the head a list row reads.
    frames = "".join(
        f'  File "/app/jobs.py", line {n}, in step_{n}\n    step()\n' for n in range(200)
    )
    text = (
        f"Traceback (most recent call last):\n{frames}ConnectionRefusedError: [Errno 111] refused"
    )
    engine = create_engine(db_url)
    create_tables(engine)
    payload = build_payload("App\\Jobs\\Py")
    with engine.begin() as connection:
        insert_failed_jobs(
            connection,
            [
                {
                    "uuid": payload["uuid"],
                    "connection": "database",
                    "queue": "q",
                    "exception": text,
                    "payload": payload,
                }
            ],
        )
    engine.dispose()
    reader = LaravelReader("shop", db_url)
    try:
        (job,) = reader.list(JobQuery())
        detail = reader.get(job.id)
    finally:
        reader.close()
    assert job.exception_class == "ConnectionRefusedError"
    assert job.exception_message == "[Errno 111] refused"
    assert detail is not None and job.fingerprint == detail.fingerprint


def test_text_that_is_not_utf8(sqlite_url: str) -> None:
    engine = create_engine(sqlite_url)
    create_tables(engine)
    with engine.begin() as connection:  # SQLite keeps any bytes; Laravel may have put them there
        connection.exec_driver_sql(
            "INSERT INTO failed_jobs (uuid, connection, queue, payload, exception, failed_at) "
            "VALUES ('u1', 'database', 'default', "
            "CAST(X'7B22646973706C61794E616D65223A2241FF42227D' AS TEXT), "
            "CAST(X'52756E74696D65457863657074696F6E3A2062E96F6F6D' AS TEXT), "
            "'2026-03-01 12:00:00')"
        )
    engine.dispose()
    reader = LaravelReader("shop", sqlite_url)
    try:
        (job,) = reader.list(JobQuery())
        assert job.name == "A\ufffdB" and job.exception_class == "RuntimeException"
        assert job.exception_message == "b\ufffdoom"
        detail = reader.get("u1")
        assert detail is not None and detail.payload == {"displayName": "A\ufffdB"}
    finally:
        reader.close()


def test_missing_column_and_missing_table_are_named(db_url: str) -> None:
    engine = create_engine(db_url)
    with engine.begin() as connection:
        connection.exec_driver_sql(
            "CREATE TABLE failed_jobs (id INTEGER PRIMARY KEY, connection TEXT, queue TEXT, "
            "exception TEXT, failed_at TIMESTAMP)"
        )
    engine.dispose()
    reader = LaravelReader("shop", db_url)
    try:
        with pytest.raises(StoreError) as caught:
            reader.list(JobQuery())
        assert str(caught.value) == (
            "project shop: table failed_jobs has no column 'payload'; "
            "is this a Laravel failed_jobs table?"
        )
        assert not isinstance(caught.value, StoreUnreachable)
    finally:
        reader.close()
    other = LaravelReader("shop", db_url, Options(table="nope"))
    try:
        with pytest.raises(StoreError, match="project shop: table nope does not exist"):
            other.ping()
    finally:
        other.close()


def _with(url: str, **parts: Any) -> str:
    return make_url(url).set(**parts).render_as_string(hide_password=False)


@pytest.mark.parametrize(
    ("kind", "change", "says"),
    [
        ("postgres", {"port": 1}, "refused"),
        ("mysql", {"port": 1}, "refused"),
        ("postgres", {"username": "nobody_here", "password": "wrong"}, "nobody_here"),
        ("mysql", {"password": "wrong-password"}, "Access denied"),
        ("sqlite", {"database": "/nonexistent/dir/x.db"}, "unable to open database"),
    ],
)
def test_unreachable_store(kind: str, change: dict[str, Any], says: str) -> None:
    with fresh_database(kind) as url:
        reader = LaravelReader("shop", _with(url, **change), timeout=2)
        try:
            with pytest.raises(StoreUnreachable) as caught:
                reader.list(JobQuery())
        finally:
            reader.close()
    message = str(caught.value)
    assert message.startswith("project shop (") and "cannot connect" in message
    assert says in message
    assert "wrong" not in message  # the password never shows
