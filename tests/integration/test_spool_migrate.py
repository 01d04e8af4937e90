"""The spool's schema on real databases: migrations, readiness, unreachable spools."""

from __future__ import annotations

import logging
import threading

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from failboard.exceptions import SpoolError
from failboard.spool import Spool
from failboard.spool.migrate import AGENT_NEEDS, KNOWN, head_revision


def test_migrate_is_idempotent(db_url: str) -> None:
    with Spool(db_url) as spool:
        assert spool.current_revision() is None
        spool.migrate()
        spool.migrate()
        assert spool.current_revision() == head_revision()
        spool.ensure_ready()
        inspector = sa.inspect(spool.engine)
        names = set(inspector.get_table_names())
        assert {"failboard_actions", "failboard_events", "failboard_agents"} <= names
        assert "failboard_alembic_version" in names


def test_ensure_ready_says_what_to_run(db_url: str) -> None:
    with Spool(db_url) as spool:
        with pytest.raises(SpoolError, match=r"spool schema is missing: run `failboard migrate`"):
            spool.ensure_ready()


def test_ensure_ready_refuses_a_schema_from_a_newer_failboard(db_url: str) -> None:
    with Spool(db_url) as spool:
        spool.migrate()
        with spool.engine.begin() as connection:
            connection.execute(sa.text("UPDATE failboard_alembic_version SET version_num = 'f00d'"))
        with pytest.raises(SpoolError, match="revision f00d, which this failboard does not know"):
            spool.ensure_ready()


def _pretend_revision(spool: Spool, revision: str) -> None:
    """Only the version row: what ensure_ready reads."""
    with spool.engine.begin() as connection:
        connection.execute(
            sa.text("UPDATE failboard_alembic_version SET version_num = :r"), {"r": revision}
        )


def test_an_agent_runs_on_any_schema_with_its_tables_the_dashboard_needs_the_newest(
    db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    with Spool(db_url) as spool:
        spool.migrate()
        # Migrated before this failboard's dashboard tables: the agent's are all there.
        _pretend_revision(spool, AGENT_NEEDS)
        spool.ensure_ready(agent=True)
        with pytest.raises(SpoolError, match=rf"outdated \(revision {AGENT_NEEDS}, expected"):
            spool.ensure_ready()
        # Older than the agent's tables: refused, with what to run.
        _pretend_revision(spool, KNOWN[KNOWN.index(AGENT_NEEDS) - 1])
        with pytest.raises(SpoolError, match=r"or later\): run `failboard migrate`"):
            spool.ensure_ready(agent=True)
        # Migrated by a newer failboard: the agent carries on, and says so.
        _pretend_revision(spool, "f00d")
        with caplog.at_level(logging.WARNING, logger="failboard.spool"):
            spool.ensure_ready(agent=True)
        assert "revision f00d, newer than this failboard knows" in caplog.text


def test_two_processes_migrating_at_once_both_succeed(db_url: str) -> None:
    errors: list[BaseException] = []
    start = threading.Barrier(3)

    def run() -> None:
        with Spool(db_url) as spool:
            start.wait()
            try:
                spool.migrate()
            except BaseException as exc:  # reported by the assertion below
                errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    with Spool(db_url) as spool:
        spool.ensure_ready()


def test_table_prefixes_keep_spools_apart(db_url: str) -> None:
    with Spool(db_url, table_prefix="one_") as one, Spool(db_url, table_prefix="two_") as two:
        one.migrate()
        assert two.current_revision() is None
        two.migrate()
        one.submit("shop", "prune", {"hours": 1})
        assert [a.project for a in one.list()] == ["shop"]
        assert two.list() == []


def test_the_schema_module_matches_the_migrations(db_url: str) -> None:
    with Spool(db_url) as spool:
        spool.migrate()
        with spool.engine.connect() as connection:
            context = MigrationContext.configure(
                connection,
                opts={"compare_type": True, "version_table": "failboard_alembic_version"},
            )
            diff = compare_metadata(context, spool.tables.metadata)
    # The version table is Alembic's, not ours.
    diff = [d for d in diff if "alembic_version" not in repr(d)]
    assert diff == []


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+psycopg://fb:s3cret@127.0.0.1:1/spool",
        "mysql+pymysql://fb:s3cret@127.0.0.1:1/spool",
    ],
)
def test_an_unreachable_spool_names_its_redacted_url(url: str) -> None:
    with Spool(url, timeout=1) as spool:
        with pytest.raises(SpoolError) as caught:
            spool.submit("shop", "prune", {"hours": 1})
    message = caught.value.message
    assert "s3cret" not in message
    assert "127.0.0.1:1" in message
    assert "cannot connect" in message
    assert caught.value.__cause__ is not None


def test_known_revisions_match_alembics_own_view() -> None:
    # migrate.KNOWN/HEAD spare every agent start an Alembic import; they must not drift.
    from alembic.script import ScriptDirectory

    from failboard.spool.migrate import HEAD, KNOWN, alembic_config

    script = ScriptDirectory.from_config(alembic_config("failboard_"))
    assert script.get_current_head() == HEAD
    assert tuple(reversed([r.revision for r in script.walk_revisions()])) == KNOWN
