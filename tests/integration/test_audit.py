"""The hash-chained audit log on real databases: what it records, concurrent writers, tampering
caught by ``failboard audit verify``, and the upgrade from a spool at revision 0001."""

from __future__ import annotations

import itertools
import json
import threading
import time
from datetime import timedelta
from pathlib import Path

import sqlalchemy as sa
from typer.testing import CliRunner

from failboard.audit import GENESIS, AuditEvent, entry_hash
from failboard.cli import app as cli_app
from failboard.db import immediate, utcnow
from failboard.models import ActionKind, ActionResult
from failboard.spool import Spool
from failboard.spool.migrate import HEAD, alembic_config


def _events(spool: Spool) -> list[str]:
    return [entry.event for entry in reversed(spool.audit.entries(limit=1000))]


def test_every_transition_appends_one_entry(db_url: str) -> None:
    with Spool(db_url, lease_seconds=1, retry_delay_seconds=0) as spool:
        spool.migrate()
        one = spool.submit("shop", ActionKind.RETRY, {"job_ids": ["1"]}, requested_by="ops")
        two = spool.submit("shop", ActionKind.DELETE, {"job_ids": ["2"]}, requested_by="ops")
        three = spool.submit("shop", ActionKind.PRUNE, {"hours": 1}, requested_by="ops")
        spool.cancel(three.id, by="ops")
        a, b = spool.claim("shop", "agent-1", 10)
        spool.complete(a.id, a.claim_token or "", ActionResult(succeeded=1))
        spool.fail(b.id, b.claim_token or "", "store down")  # retryable: pending again
        (b2,) = spool.claim("shop", "agent-1", 10)
        spool.release(b2.id, b2.claim_token or "", "stopping")
        spool.claim("shop", "agent-2", 10)
        time.sleep(2.2)  # let that lease run out
        assert spool.reap() == 1
        assert spool.prune_finished(timedelta(0), by="admin") == 2
        spool.audit.append(AuditEvent.AUTH_SIGNIN, actor="ops", detail={"ip": "127.0.0.1"})
        entries = list(reversed(spool.audit.entries(limit=100)))
        assert [e.event for e in entries] == [
            "action.requested",
            "action.requested",
            "action.requested",
            "action.cancelled",
            "action.claimed",
            "action.completed",
            "action.retry_scheduled",
            "action.claimed",
            "action.released",
            "action.claimed",
            "action.reaped",
            "spool.pruned",
            "auth.signin",
        ]
        assert [e.id for e in entries] == list(range(1, 14))
        assert entries[0].actor == "ops" and entries[0].action_id == one.id
        assert entries[0].project == "shop" and entries[0].detail["action"] == "retry"
        # A claim of several actions is one entry listing them.
        assert entries[4].action_id is None and entries[4].actor == "agent-1"
        assert set(entries[4].detail["actions"]) == {str(one.id), str(two.id)}
        assert entries[6].detail["error"] == "store down"
        assert entries[10].actor == "reaper" and entries[10].action_id == two.id
        assert entries[11].detail["deleted"] == 2 and entries[11].actor == "admin"
        assert entries[0].prev_hash == GENESIS
        assert all(e.prev_hash == p.hash for p, e in itertools.pairwise(entries))
        result = spool.audit.verify()
        assert result.ok and result.checked == 13 and result.head_id == 13
        assert result.head_hash == entries[-1].hash


def test_entries_hashed_by_the_database_verify_with_any_text(db_url: str) -> None:
    """PostgreSQL and MariaDB compute the hash in SQL: it must be the very text entry_hash
    builds, whatever the actor and detail hold (quotes, backslashes, non-ASCII, nulls)."""
    with Spool(db_url) as spool:
        spool.migrate()
        odd = 'o\'brien "q" \\ back\\slash, café ✓ 東京 \n tab\t'
        first = spool.audit.append("x.test", actor=odd, detail={"note": odd, "n": None, "k": 1})
        second = spool.audit.append("x.test", project="shop", action_id=7, detail={})
        entry = spool.audit.get(first)
        assert entry is not None and entry.actor == odd and entry.detail["note"] == odd
        later = spool.audit.get(second)
        assert later is not None and later.prev_hash == entry.hash and later.action_id == 7
        assert later.hash == entry_hash(
            id=later.id,
            at=later.at,
            actor=None,
            event="x.test",
            project="shop",
            action_id=7,
            detail="{}",
            prev_hash=entry.hash,
        )
        assert spool.audit.verify().ok


def test_concurrent_writers_keep_one_valid_chain(db_url: str) -> None:
    """Eight writers, each with its own engine (its own connections), submit, claim and
    complete at once: every entry lands, ids stay consecutive, and the chain verifies."""
    writers, rounds = 8, 12
    with Spool(db_url) as setup:
        setup.migrate()
    start = threading.Barrier(writers)
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            with Spool(db_url) as spool:
                start.wait()
                for i in range(rounds):
                    project = f"p{n}"
                    spool.submit(project, ActionKind.PRUNE, {"hours": 1}, requested_by=f"w{n}")
                    # SKIP LOCKED may pass over a row another writer's scan holds for a
                    # moment (MariaDB): claim again until this round's action is ours.
                    claimed = []
                    for _ in range(100):
                        if claimed := spool.claim(project, f"agent-{n}", 5):
                            break
                    for action in claimed:
                        spool.complete(action.id, action.claim_token or "", ActionResult())
                    spool.audit.append(AuditEvent.AUTH_SIGNIN, actor=f"w{n}", detail={"i": i})
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(240)
    assert errors == []
    with Spool(db_url) as spool:
        result = spool.audit.verify()
        assert result.ok, result
        # Per round: requested, claimed, completed, signin.
        assert result.checked == writers * rounds * 4 == result.head_id
        events = _events(spool)
        assert events.count("action.completed") == writers * rounds


def _config(tmp_path: Path, url: str) -> str:
    file = tmp_path / "failboard.toml"
    file.write_text(f'[spool]\nurl = "{url}"\n')
    return str(file)


def _verify(config: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli_app, ["audit", "verify", "--config", config])
    return result.exit_code, result.output


def _filled(url: str) -> Spool:
    spool = Spool(url)
    spool.migrate()
    for n in range(5):
        spool.submit("shop", ActionKind.RETRY, {"job_ids": [str(n)]}, requested_by="ops")
    return spool


def test_verify_catches_a_deleted_entry(db_url: str, tmp_path: Path) -> None:
    config = _config(tmp_path, db_url)
    with _filled(db_url) as spool:
        code, output = _verify(config)
        assert code == 0 and output.startswith("ok: 5 entries, head 5 "), output
        assert spool.audit.head()[1] in output  # the head hash, for monitoring to keep
        with spool.engine.begin() as connection:
            connection.execute(sa.text("DELETE FROM failboard_audit WHERE id = 3"))
        code, output = _verify(config)
    assert code == 1
    assert "entry 3" in output and "missing" in output


def test_verify_catches_a_deleted_last_entry(db_url: str, tmp_path: Path) -> None:
    config = _config(tmp_path, db_url)
    with _filled(db_url) as spool:
        with spool.engine.begin() as connection:
            connection.execute(sa.text("DELETE FROM failboard_audit WHERE id = 5"))
        code, output = _verify(config)
    assert code == 1 and "entry 5 is missing" in output


def test_verify_catches_an_edited_entry(db_url: str, tmp_path: Path) -> None:
    config = _config(tmp_path, db_url)
    with _filled(db_url) as spool:
        with spool.engine.begin() as connection:
            connection.execute(
                sa.text("UPDATE failboard_audit SET actor = 'somebody-else' WHERE id = 2")
            )
        code, output = _verify(config)
        assert code == 1 and "entry 2" in output and "edited" in output
        # Recomputing the edited entry's own hash only moves the break to the next entry.
        log = spool.tables.audit
        with spool.engine.begin() as connection:
            row = connection.execute(sa.select(log).where(log.c.id == 2)).mappings().one()
            fixed = entry_hash(**{k: row[k] for k in row.keys() if k != "hash"})
            connection.execute(log.update().where(log.c.id == 2).values(hash=fixed))
        code, output = _verify(config)
    assert code == 1 and "entry 3" in output and "prev_hash" in output


def test_verify_catches_an_inserted_entry(db_url: str, tmp_path: Path) -> None:
    config = _config(tmp_path, db_url)
    with _filled(db_url) as spool:
        log = spool.tables.audit
        last = spool.audit.entries(limit=1)[0]
        forged = {
            "id": 6,
            "at": last.at.replace(tzinfo=None),
            "actor": "intruder",
            "event": "action.completed",
            "project": "shop",
            "action_id": 1,
            "detail": "{}",
            "prev_hash": last.hash,
        }
        # Even a well-formed entry with a correct hash is caught: the head does not know it.
        with spool.engine.begin() as connection:
            connection.execute(log.insert().values(**forged, hash=entry_hash(**forged)))
        code, output = _verify(config)
        assert code == 1 and "entry 6" in output and "inserted" in output
        with spool.engine.begin() as connection:
            connection.execute(log.delete().where(log.c.id == 6))
            # Squeezed in between: renumbering the rest breaks every hash after it.
            connection.execute(log.update().where(log.c.id >= 3).values(id=log.c.id + 10))
            connection.execute(log.insert().values(**{**forged, "id": 3}, hash="f" * 64))
        code, output = _verify(config)
    assert code == 1 and "entry 3" in output


def test_audit_list_prints_json(db_url: str, tmp_path: Path) -> None:
    config = _config(tmp_path, db_url)
    with _filled(db_url):
        result = CliRunner().invoke(
            cli_app, ["audit", "list", "--limit", "2", "--json", "--config", config]
        )
    assert result.exit_code == 0, result.output
    entries = json.loads(result.output)
    assert [e["id"] for e in entries] == [5, 4]
    assert entries[0]["event"] == "action.requested" and len(entries[0]["hash"]) == 64


def test_upgrade_from_revision_0001_starts_an_empty_chain(db_url: str) -> None:
    from alembic import command

    with Spool(db_url) as spool:
        config = alembic_config(spool.table_prefix)
        with immediate(spool.engine) as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "0001")
        assert spool.current_revision() == "0001"
        # An action written before the upgrade, as the 0001 code wrote them.
        a = spool.tables.actions
        with spool.engine.begin() as connection:
            connection.execute(
                a.insert().values(
                    project="shop",
                    action="prune",
                    params='{"hours": 1}',
                    status="pending",
                    created_at=utcnow(),
                    updated_at=utcnow(),
                    available_at=utcnow(),
                    attempts=0,
                    max_attempts=3,
                    progress_done=0,
                )
            )
        spool.migrate()
        assert spool.current_revision() == HEAD
        spool.ensure_ready()
        assert spool.audit.head() == (0, GENESIS)
        (action,) = spool.claim("shop", "agent", 5)
        spool.complete(action.id, action.claim_token or "", ActionResult())
        assert _events(spool) == ["action.claimed", "action.completed"]
        assert spool.audit.verify().ok


def test_a_rewritten_chain_passes_alone_but_not_against_a_head_kept_elsewhere(
    db_url: str, tmp_path: Path
) -> None:
    config = _config(tmp_path, db_url)
    with _filled(db_url) as spool:
        kept = spool.audit.head()  # what monitoring recorded earlier, off the box
        # A superuser rewrites entry 2 and recomputes every hash after it, and the head.
        log, head = spool.tables.audit, spool.tables.audit_head
        with spool.engine.begin() as connection:
            rows = connection.execute(sa.select(log).order_by(log.c.id)).mappings().all()
            prev = GENESIS
            for row in rows:
                values = {k: row[k] for k in row.keys() if k != "hash"}
                values["prev_hash"] = prev
                if row["id"] == 2:
                    values["actor"] = "nobody"
                prev = entry_hash(**values)
                connection.execute(
                    log.update().where(log.c.id == row["id"]).values(**values, hash=prev)
                )
            connection.execute(head.update().values(hash=prev))
        assert _verify(config)[0] == 0  # the documented limit: a full rewrite verifies
        result = CliRunner().invoke(
            cli_app, ["audit", "verify", "--expect", f"{kept[0]}:{kept[1]}", "--config", config]
        )
    assert result.exit_code == 1
    assert f"entry {kept[0]}" in result.output and "rewritten" in result.output
