"""Groups over real Laravel tables (SQLite, PostgreSQL, MariaDB): exact counts when every store is
read to the end, the newest rows and an honest label when one is not, through the Board."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from failboard.board import Board
from failboard.config import parse_settings
from failboard.db import create_engine
from failboard.drivers.laravel.schema import create_tables, insert_failed_jobs
from failboard.grouping import scan_groups

NOW = datetime.now(UTC).replace(microsecond=0, tzinfo=None)
_EXCEPTIONS = (
    ("App\\Jobs\\Charge", "Stripe\\Exception\\CardException: Your card was declined. (req {n})"),
    ("App\\Jobs\\Mail", "RuntimeException: Connection to smtp timed out after {n} ms"),
)


def _fill(url: str, count: int) -> dict[str, int]:
    """``count`` failures, one second apart (row i failed i seconds ago); per-job counts."""
    engine = create_engine(url)
    create_tables(engine)
    rows, counts = [], {name: 0 for name, _ in _EXCEPTIONS}
    for i in range(count):
        name, exception = _EXCEPTIONS[0 if i % 3 else 1]
        counts[name] += 1
        rows.append(
            {
                "uuid": str(uuid.UUID(int=i + 1)),
                "connection": "database",
                "queue": "default",
                "payload": {
                    "displayName": name,
                    "job": "Illuminate\\Queue\\CallQueuedHandler@call",
                },
                "exception": exception.format(n=i) + "\nStack trace:\n#0 {main}",
                "failed_at": NOW - timedelta(seconds=i),
            }
        )
    with engine.begin() as connection:
        insert_failed_jobs(connection, rows)
    engine.dispose()
    return counts


def _board(tmp_path: Path, url: str) -> Board:
    text = (
        f'[spool]\nurl = "sqlite:///{tmp_path}/spool.db"\n'
        f'[[projects]]\nkey = "shop"\ndriver = "laravel"\nurl = "{url}"\n'
    )
    board = Board(parse_settings(text, source=tmp_path / "failboard.toml"))
    board.spool.migrate()
    return board


def test_groups_count_exactly_when_the_store_is_read_whole(db_url: str, tmp_path: Path) -> None:
    counts = _fill(db_url, 300)
    board = _board(tmp_path, db_url)
    try:
        scan = board.group_scan()
        assert scan.scanned == {"shop": 300} and scan.exact
        assert {g.name: g.count for g in scan.groups} == counts
        assert all(g.to_json()["count_exact"] for g in scan.groups)
        # Served from the cache: the same scan, the same frozen ids for "retry group".
        assert board.group_scan() is scan
    finally:
        board.close()


def test_groups_from_the_newest_rows_are_labelled(db_url: str, tmp_path: Path) -> None:
    _fill(db_url, 700)
    board = _board(tmp_path, db_url)
    try:
        scan = scan_groups(board.aggregator, ["shop"], None, limit=250, seconds=60)
        assert scan.scanned == {"shop": 250} and scan.complete == {"shop": False}
        assert sum(g.count for g in scan.groups) == 250
        seen = {at for g in scan.groups for at in (g.first_seen, g.last_seen) if at is not None}
        # The newest 250: row 249 failed 249 s before the newest, none older was read.
        assert min(seen) == (NOW - timedelta(seconds=249)).replace(tzinfo=UTC)
        assert not any(g.to_json()["count_exact"] for g in scan.groups)
    finally:
        board.close()


def test_the_groups_page_says_when_counts_are_a_sample(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from failboard.web import create_app

    url = f"sqlite:///{tmp_path}/shop.db"
    _fill(url, 400)
    text = (
        f'[spool]\nurl = "sqlite:///{tmp_path}/spool.db"\n'
        f'[[projects]]\nkey = "shop"\ndriver = "laravel"\nurl = "{url}"\n'
    )
    app = create_app(parse_settings(text, source=tmp_path / "failboard.toml"), inline=False)
    board: Board = app.state.board
    board.spool.migrate()
    with TestClient(app) as client:
        whole = client.get("/groups")
        assert whole.status_code == 200 and "data-sample" not in whole.text
        board._group_cache.clear()
        board._group_cache.limit = 100
        sampled = client.get("/groups")
        assert "Counts come from the newest 100 failures of shop" in sampled.text
        api = client.get("/api/v1/groups").json()
        assert api and not any(group["count_exact"] for group in api)
