"""LaravelExecutor against real PostgreSQL, MariaDB and SQLite: what ``php artisan queue:retry``,
``queue:forget`` and ``queue:prune-failed`` would have left in the tables."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from failboard.db import create_engine
from failboard.drivers.laravel import LaravelExecutor, LaravelReader, Options
from failboard.drivers.laravel.payload import build_payload, php_json_encode, reset_for_retry
from failboard.drivers.laravel.schema import Style, create_tables, insert_failed_jobs
from failboard.exceptions import LeaseLost, StoreError
from failboard.models import ActionResult, JobQuery

T0 = datetime(2026, 3, 1, 12, 0, 0)
NOW = 1_800_000_000  # the agent's clock, unix seconds


class Store:
    """A project database with Laravel's tables, and what is in them."""

    def __init__(self, url: str, style: Style = "new") -> None:
        self.url = url
        self.style = style
        self.engine = create_engine(url)
        create_tables(self.engine, style=style)

    def add(
        self,
        queue: str = "default",
        *,
        at: datetime = T0,
        connection: str = "database",
        payload: str | None = None,
        **build: Any,
    ) -> str:
        """Insert one failed job; returns its id (uuid, or the numeric id without uuids)."""
        job_uuid = str(uuid.uuid4())
        text = payload or php_json_encode(build_payload("App\\Jobs\\X", uuid=job_uuid, **build))
        row = {
            "connection": connection,
            "queue": queue,
            "payload": text,
            "failed_at": at,
            "exception": "RuntimeException: boom in /app/x.php:1\nStack trace:\n#0 {main}",
        }
        if self.style != "no_uuid":
            row["uuid"] = job_uuid
        with self.engine.begin() as conn:
            insert_failed_jobs(conn, [row])
            if self.style != "no_uuid":
                return job_uuid
            return str(conn.execute(sa.text("SELECT max(id) FROM failed_jobs")).scalar())

    def failed(self) -> dict[str, dict[str, Any]]:
        key = "uuid" if self.style != "no_uuid" else "id"
        with self.engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT * FROM failed_jobs")).mappings().all()
        return {str(row[key]): dict(row) for row in rows}

    def jobs(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT * FROM jobs ORDER BY id")).mappings().all()
        return [dict(row) for row in rows]


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    s = Store(db_url)
    yield s
    s.engine.dispose()


def _executor(store: Store, batch_size: int = 1_000, **options: Any) -> LaravelExecutor:
    return LaravelExecutor(
        "shop", store.url, Options(**options), batch_size=batch_size, clock=lambda: NOW
    )


def test_retry_pushes_exactly_laravels_jobs_row(store: Store) -> None:
    plain = store.add("emails", max_tries=3, created_at=NOW - 100)
    windowed = store.add("reports", retry_until=NOW - 100 + 600, created_at=NOW - 100)
    redis_shaped = store.add("default", redis=True, attempts=5)
    before = store.failed()
    executor = _executor(store)
    try:
        result = executor.retry([plain, windowed, redis_shaped])
    finally:
        executor.close()
    assert result == ActionResult(succeeded=3)
    assert store.failed() == {}
    pushed = store.jobs()
    assert [
        (j["queue"], j["attempts"], j["reserved_at"], j["available_at"], j["created_at"])
        for j in pushed
    ] == [
        ("emails", 0, None, NOW, NOW),
        ("reports", 0, None, NOW, NOW),
        ("default", 0, None, NOW, NOW),
    ]
    # The same job (same uuid), its payload as queue:retry leaves it.
    assert pushed[0]["payload"] == before[plain]["payload"]
    assert json.loads(pushed[0]["payload"])["uuid"] == plain
    assert json.loads(pushed[1]["payload"])["retryUntil"] == NOW + 600
    assert pushed[2]["payload"] == reset_for_retry(before[redis_shaped]["payload"], NOW)
    assert json.loads(pushed[2]["payload"])["attempts"] == 0


def test_retry_counts_missing_and_refuses_what_it_cannot_push(store: Store) -> None:
    good = store.add()
    redis = store.add(connection="redis")
    broken = store.add(payload="{not json")
    executor = _executor(store)
    try:
        result = executor.retry([good, "no-such-uuid", redis, broken, "424242", good])
    finally:
        executor.close()
    assert (result.succeeded, result.missing, result.failed) == (1, 2, 2)
    assert (
        f"{redis}: connection 'redis' is a Redis queue but redis_url is not set; not retried"
    ) in result.errors
    assert f"{broken}: the payload is not valid JSON; not retried" in result.errors
    assert set(store.failed()) == {redis, broken}  # untouched
    assert len(store.jobs()) == 1


def test_retry_by_numeric_id_without_uuid_column(db_url: str) -> None:
    store = Store(db_url, style="no_uuid")
    first, second = store.add("a"), store.add("b")
    executor = _executor(store, database_connections=["database", "db2"])
    try:
        assert executor.retry([first, "not-a-number"]) == ActionResult(succeeded=1, missing=1)
    finally:
        executor.close()
    assert set(store.failed()) == {second}
    assert [job["queue"] for job in store.jobs()] == ["a"]
    store.engine.dispose()


def test_delete_forgets_and_counts_missing(store: Store) -> None:
    one, two, keep = store.add(), store.add(), store.add()
    executor = _executor(store)
    try:
        assert executor.delete([one, two, "gone"]) == ActionResult(succeeded=2, missing=1)
        assert executor.delete([one]) == ActionResult(missing=1)
    finally:
        executor.close()
    assert set(store.failed()) == {keep} and store.jobs() == []


def test_retry_queue_touches_only_that_queue_up_to_the_moment(store: Store) -> None:
    asked = T0
    ids = {
        "old_emails": [store.add("emails", at=T0 - timedelta(hours=h)) for h in range(1, 6)],
        "edge": [store.add("emails", at=T0)],
        "late": [store.add("emails", at=T0 + timedelta(seconds=1))],
        "other": [store.add("default", at=T0 - timedelta(hours=1))],
        "redis": [store.add("emails", at=T0 - timedelta(hours=1), connection="redis")],
    }
    calls: list[tuple[int, int | None]] = []
    executor = _executor(store, 2)
    try:
        result = executor.retry_queue(
            "emails", asked.replace(tzinfo=UTC), lambda d, t: calls.append((d, t))
        )
    finally:
        executor.close()
    assert (result.succeeded, result.missing, result.failed) == (6, 0, 1)
    assert set(store.failed()) == {*ids["late"], *ids["other"], *ids["redis"]}
    assert [job["queue"] for job in store.jobs()] == ["emails"] * 6
    assert calls == [(2, 7), (4, 7), (6, 7), (7, 7)]


def test_retry_queue_none_means_every_queue(store: Store) -> None:
    for queue in ("a", "b", "c"):
        store.add(queue, at=T0 - timedelta(minutes=1))
    late = store.add("a", at=T0 + timedelta(minutes=1))
    executor = _executor(store)
    try:
        result = executor.retry_queue(None, T0.replace(tzinfo=UTC))
    finally:
        executor.close()
    assert result == ActionResult(succeeded=3)
    assert set(store.failed()) == {late}
    assert sorted(job["queue"] for job in store.jobs()) == ["a", "b", "c"]


def test_prune_deletes_by_age_in_batches(store: Store) -> None:
    old = [store.add(at=T0 - timedelta(hours=30 + i)) for i in range(5)]
    recent = [store.add(at=T0 - timedelta(hours=2)), store.add(at=T0)]
    calls: list[tuple[int, int | None]] = []
    executor = _executor(store, 2)
    try:
        cutoff = (T0 - timedelta(hours=24)).replace(tzinfo=UTC)
        result = executor.prune(cutoff, lambda d, t: calls.append((d, t)))
    finally:
        executor.close()
    assert result == ActionResult(succeeded=5)
    assert set(store.failed()) == set(recent) and not set(old) & set(store.failed())
    assert calls == [(2, 5), (4, 5), (5, 5)]
    assert store.jobs() == []


def test_progress_that_raises_stops_the_work(store: Store) -> None:
    ids = [store.add() for _ in range(5)]

    def lost(done: int, total: int | None) -> None:
        raise LeaseLost("lease lost")

    executor = _executor(store, 2)
    try:
        with pytest.raises(LeaseLost):
            executor.retry(ids, lost)
    finally:
        executor.close()
    assert len(store.jobs()) == 2 and len(store.failed()) == 3  # the first batch was committed


def test_concurrent_retries_push_each_job_once(store: Store) -> None:
    ids = [store.add(f"q{i % 3}") for i in range(60)]
    results: list[ActionResult] = []
    errors: list[BaseException] = []
    start = threading.Barrier(3)

    def run(order: list[str]) -> None:
        executor = _executor(store, 7)
        try:
            start.wait()
            results.append(executor.retry(order))
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            executor.close()

    orders = (ids, list(reversed(ids)), ids)  # head to head, and from the other end
    threads = [threading.Thread(target=run, args=(order,)) for order in orders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert sum(r.succeeded for r in results) == 60 and sum(r.missing for r in results) == 120
    pushed = [json.loads(job["payload"])["uuid"] for job in store.jobs()]
    assert sorted(pushed) == sorted(ids)
    assert store.failed() == {}


def test_unusable_configurations_fail_per_job_and_change_nothing(store: Store) -> None:
    one, two = store.add(), store.add(at=T0 - timedelta(days=3))
    sqs = store.add(connection="sqs")
    horizon = _executor(store, horizon=True)  # no redis_url: Horizon's store is nowhere
    plain = _executor(store)
    try:
        result = horizon.retry([one, two])
        assert (result.failed, result.succeeded) == (2, 0)
        assert result.errors[0] == (
            f"{one}: horizon = true needs redis_url (or horizon_url); nothing was done"
        )
        assert horizon.retry_queue(None, T0.replace(tzinfo=UTC)).failed == 3
        assert horizon.delete([one]).failed == 1
        # prune touches only the table, as queue:prune-failed does
        assert horizon.prune(T0.replace(tzinfo=UTC)) == ActionResult(succeeded=1)
        unknown = plain.retry([sqs])
        assert unknown.failed == 1 and unknown.errors[0] == (
            f"{sqs}: connection 'sqs' is neither a database nor a Redis queue connection; not "
            "retried (list it in database_connections or redis_connections)"
        )
    finally:
        horizon.close()
        plain.close()
    assert set(store.failed()) == {one, sqs} and store.jobs() == []


def test_rows_without_uuid_in_an_upgraded_table(db_url: str) -> None:
    # Laravel 8's upgrade added a nullable uuid column: old rows keep NULL and their number.
    engine = create_engine(db_url)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TABLE failed_jobs (id INTEGER PRIMARY KEY, uuid VARCHAR(255) NULL, "
            "connection TEXT NOT NULL, queue TEXT NOT NULL, payload TEXT NOT NULL, "
            "exception TEXT NOT NULL, failed_at TIMESTAMP NULL)"
        )
        conn.exec_driver_sql(
            "INSERT INTO failed_jobs VALUES (7, NULL, 'database', 'old', "
            "'{\"displayName\":\"X\"}', 'RuntimeException: old', '2026-03-01 12:00:00')"
        )
    create_tables(engine)  # the jobs table; failed_jobs exists already
    engine.dispose()
    reader = LaravelReader("shop", db_url)
    executor = LaravelExecutor("shop", db_url, clock=lambda: NOW)
    try:
        (job,) = reader.list(JobQuery())
        assert job.id == "7" and job.uuid is None and job.name == "X"
        assert executor.retry(["7"]) == ActionResult(succeeded=1)
        assert reader.list(JobQuery()) == []
    finally:
        reader.close()
        executor.close()


def test_missing_jobs_table_is_named_and_nothing_changes(store: Store) -> None:
    job = store.add()
    executor = _executor(store, jobs_table="queue_jobs")
    try:
        with pytest.raises(StoreError, match="project shop: table queue_jobs does not exist"):
            executor.retry([job])
    finally:
        executor.close()
    assert set(store.failed()) == {job}
