"""The Recorder never hurts the worker: an unreachable table costs an append to a bounded
buffer, written back when the table answers; a forked child never writes its parent's rows."""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from failboard.failures import Failure, Recorder, failures_table
from failboard.failures import recorder as recorder_module


def _failure(job_id: str) -> Failure:
    return Failure(engine="celery", job_id=job_id, name="t", queue="q", args=[1], kwargs={})


def _rows(url: str) -> list[str]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            table = failures_table()
            return list(
                connection.execute(sa.select(table.c.job_id).order_by(table.c.id)).scalars()
            )
    finally:
        engine.dispose()


def test_writes_at_once_and_makes_the_table_on_first_use(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/f.db"
    recorder = Recorder(url, "billing")
    try:
        assert recorder.record(_failure("a")) and recorder.record(_failure("b"))
        assert recorder.stats.recorded == 2 and recorder.stats.buffered == 0
    finally:
        recorder.close()
    assert _rows(url) == ["a", "b"]


def test_an_unreachable_table_buffers_drops_past_the_bound_and_catches_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Long enough that b, c and d all arrive inside the first back-off, short enough to catch up.
    monkeypatch.setattr(recorder_module, "BACKOFF_FIRST", 1.0)
    folder = tmp_path / "not-yet"  # SQLite cannot open a file in a missing folder
    url = f"sqlite:///{folder}/f.db"
    recorder = Recorder(url, "billing", buffer_size=3)
    try:
        assert not recorder.record(_failure("a"))  # tried, failed, buffered
        assert not recorder.record(_failure("b"))  # backing off: not even tried
        assert not recorder.record(_failure("c"))
        assert not recorder.record(_failure("d"))  # the buffer is full: dropped, counted
        assert recorder.stats.buffered == 3 and recorder.stats.dropped == 1
        assert recorder.stats.write_errors == 1  # one try for a, none for b, c and d
        folder.mkdir()
        deadline = time.monotonic() + 10
        while recorder.stats.buffered and time.monotonic() < deadline:
            time.sleep(0.05)  # the retry thread writes them back
        assert recorder.stats.buffered == 0 and recorder.stats.recorded == 3
        assert recorder.record(_failure("e"))
    finally:
        recorder.close()
    assert _rows(url) == ["a", "b", "c", "e"]


def test_a_row_that_cannot_be_built_is_dropped_not_raised(tmp_path: Path) -> None:
    class Evil:
        def __str__(self) -> str:
            raise RuntimeError("boom")

    recorder = Recorder(f"sqlite:///{tmp_path}/f.db", "billing")
    try:
        assert not recorder.record(_failure(Evil()))  # type: ignore[arg-type]
        assert recorder.stats.dropped == 1
    finally:
        recorder.close()


def _child_flush(recorder: Recorder, queue: multiprocessing.Queue[int]) -> None:
    queue.put(recorder.flush())


def test_a_forked_child_starts_with_an_empty_buffer(tmp_path: Path) -> None:
    recorder = Recorder(f"sqlite:///{tmp_path}/missing/f.db", "billing")
    try:
        recorder.record(_failure("a"))
        assert recorder.stats.buffered == 1
        context = multiprocessing.get_context("fork")
        queue: multiprocessing.Queue[int] = context.Queue()
        child = context.Process(target=_child_flush, args=(recorder, queue))
        child.start()
        child.join(20)
        assert queue.get(timeout=5) == 0  # the parent's row is the parent's to write
        assert recorder.stats.buffered == 1
    finally:
        recorder.close()


def test_a_bad_table_name_is_refused_at_install(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a table name"):
        Recorder(f"sqlite:///{tmp_path}/f.db", "billing", table="x; drop table y")
