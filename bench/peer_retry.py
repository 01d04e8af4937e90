"""The peer: Laravel's own ``php artisan queue:retry all``, replayed statement for statement.

``RetryCommand::getJobIds()`` answers ``all`` with ``Arr::pluck($failer->all(), 'id')``, and
``all()`` is ``SELECT * FROM failed_jobs ORDER BY id DESC`` — every row, payload and exception
included, in memory at once. Then, per id: ``find()`` (one SELECT), ``pushRaw()`` (one INSERT
into ``jobs`` with the attempts reset) and ``forget()`` (one DELETE), each in its own autocommit
transaction. This replays exactly that with psycopg alone (no failboard, no ORM), which is, if
anything, kinder to the peer than PHP with Eloquent's query builder.

Run as ``python -m bench.peer_retry URL [--limit N]``; prints one JSON line with its timings.
``--limit`` stops the loop after N jobs (the whole table is still loaded, as Laravel does).
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import psycopg
from sqlalchemy.engine import make_url

__all__ = ["main"]


def _reset_attempts(payload: str) -> str:
    # RetryCommand::resetAttempts(): json_decode, attempts = 0 if set, json_encode.
    decoded: Any = json.loads(payload)
    if isinstance(decoded, dict) and decoded.get("attempts") is not None:
        decoded["attempts"] = 0
    return json.dumps(decoded, separators=(",", ":"), ensure_ascii=False)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.peer_retry")
    parser.add_argument("url", help="SQLAlchemy URL of the PostgreSQL database")
    parser.add_argument("--limit", type=int, default=None)
    args = parser.parse_args()
    conninfo = make_url(args.url).set(drivername="postgresql").render_as_string(False)
    started = time.perf_counter()
    with psycopg.connect(conninfo, autocommit=True) as connection:
        # $failer->all(): the whole table, newest id first; DatabaseUuidFailedJobProvider then
        # uses the uuid as the id that pluck() keeps.
        rows = connection.execute("SELECT * FROM failed_jobs ORDER BY id DESC").fetchall()
        loaded = time.perf_counter()
        ids = [row[1] for row in rows]  # (id, uuid, connection, queue, payload, exception, ...)
        del rows
        if args.limit is not None:
            ids = ids[: args.limit]
        retried = 0
        for uuid in ids:
            job = connection.execute(
                "SELECT id, uuid, connection, queue, payload FROM failed_jobs WHERE uuid = %s "
                "LIMIT 1",
                (uuid,),
            ).fetchone()
            if job is None:
                continue
            now = int(time.time())
            connection.execute(
                "INSERT INTO jobs (queue, attempts, reserved_at, available_at, created_at, "
                "payload) VALUES (%s, 0, NULL, %s, %s, %s) RETURNING id",
                (job[3], now, now, _reset_attempts(job[4])),
            ).fetchone()
            connection.execute("DELETE FROM failed_jobs WHERE uuid = %s", (uuid,))
            retried += 1
    finished = time.perf_counter()
    print(
        json.dumps(
            {
                "load_seconds": loaded - started,
                "loop_seconds": finished - loaded,
                "retried": retried,
            }
        )
    )


if __name__ == "__main__":
    main()
