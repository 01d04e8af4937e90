"""The executor's rule for re-senders that buffer (Celery on Redis): a job counts as sent, and
its rows go, only once a flush returned; a failed flush keeps every row of its batch."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from failboard.failures import (
    BrokerUnreachable,
    Failure,
    FailuresExecutor,
    Recorder,
    StoredFailure,
    failures_table,
)


class _Buffering:
    """Buffers sends; ``fail_flush`` makes the next flush fail, ``down_at`` makes that send fail
    (the buffered ones are then lost, as kombu's discarded batch is)."""

    engine = "celery"

    def __init__(self, *, fail_flush: bool = False, down_at: str | None = None) -> None:
        self.fail_flush = fail_flush
        self.down_at = down_at
        self.buffer: list[str] = []
        self.delivered: list[str] = []
        self.lost = False

    def send(self, failure: StoredFailure) -> str:
        if failure.job_id == self.down_at:
            self.lost = bool(self.buffer)
            self.buffer.clear()
            raise BrokerUnreachable("broker down")
        self.buffer.append(failure.job_id)
        return f"new-{failure.job_id}"

    def flush(self) -> None:
        buffered, self.buffer = self.buffer, []
        if self.fail_flush or self.lost:
            self.lost = False
            raise BrokerUnreachable("the batch may not have arrived")
        self.delivered.extend(buffered)

    def close(self) -> None:
        pass


class _Immediate(_Buffering):
    """No flush at all: each send is delivered when it returns (Huey, arq, RabbitMQ)."""

    def send(self, failure: StoredFailure) -> str:
        if failure.job_id == self.down_at:
            raise BrokerUnreachable("broker down")
        self.delivered.append(failure.job_id)
        return f"new-{failure.job_id}"

    flush = None  # type: ignore[assignment]


def _setup(tmp_path: Path, ids: list[str]) -> str:
    url = f"sqlite:///{tmp_path}/failures.db"
    recorder = Recorder(url, "billing")
    for job in ids:
        assert recorder.record(
            Failure(engine="celery", job_id=job, name="t", queue="q", args=[1], kwargs={})
        )
    recorder.close()
    return url


def _left(url: str) -> list[str]:
    engine = sa.create_engine(url)
    with engine.connect() as connection:
        table = failures_table()
        rows = connection.execute(sa.select(table.c.job_id).order_by(table.c.job_id)).scalars()
        left = list(rows)
    engine.dispose()
    return left


def _executor(url: str, resender: object, batch_size: int = 2) -> FailuresExecutor:
    return FailuresExecutor("billing", url, resender=lambda: resender, batch_size=batch_size)  # type: ignore[arg-type,return-value]


def test_rows_go_only_after_each_batch_flushed(tmp_path: Path) -> None:
    url = _setup(tmp_path, ["a", "b", "c"])
    resender = _Buffering()
    executor = _executor(url, resender)
    try:
        result = executor.retry(["a", "b", "c", "gone"])
    finally:
        executor.close()
    assert (result.succeeded, result.missing, result.failed) == (3, 1, 0)
    assert sorted(resender.delivered) == ["a", "b", "c"]
    assert result.details["lineage"] == {"a": "new-a", "b": "new-b", "c": "new-c"}
    assert _left(url) == []


def test_a_failed_flush_keeps_the_whole_batch_and_stops(tmp_path: Path) -> None:
    url = _setup(tmp_path, ["a", "b", "c"])
    executor = _executor(url, _Buffering(fail_flush=True), batch_size=10)
    try:
        with pytest.raises(BrokerUnreachable, match="may not have arrived"):
            executor.retry(["a", "b", "c"])
    finally:
        executor.close()
    assert _left(url) == ["a", "b", "c"]


def test_the_broker_failing_mid_batch_keeps_what_was_only_buffered(tmp_path: Path) -> None:
    url = _setup(tmp_path, ["a", "b", "c", "d"])
    executor = _executor(url, _Buffering(down_at="c"), batch_size=10)
    try:
        with pytest.raises(BrokerUnreachable):
            executor.retry(["a", "b", "c", "d"])
    finally:
        executor.close()
    assert _left(url) == ["a", "b", "c", "d"]


def test_an_immediate_resender_keeps_only_what_was_not_sent(tmp_path: Path) -> None:
    url = _setup(tmp_path, ["a", "b", "c", "d"])
    resender = _Immediate(down_at="c")
    executor = _executor(url, resender, batch_size=10)
    try:
        with pytest.raises(BrokerUnreachable):
            executor.retry(["a", "b", "c", "d"])
    finally:
        executor.close()
    assert sorted(resender.delivered) == ["a", "b"]
    assert _left(url) == ["c", "d"]
