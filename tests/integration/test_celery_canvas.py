"""A re-sent Celery task keeps its place in the canvas, with a real worker on the Redis broker
and the Redis result backend (keys under the test's prefix), the failures table on PostgreSQL.

- a chain ``double | flaky | collect`` whose middle step failed goes on after failboard's retry:
  ``collect`` runs with the re-run's result, under the id the chain's result waits on;
- ``link_error`` fires again when the re-sent task fails again (and the new failure keeps the
  canvas), ``link`` fires when it finally succeeds;
- a chord member: the chord's callback fails with ``ChordError`` when the last header task
  returns; the re-run keeps its group id but never reports to the chord, so the callback
  stays failed and never runs (what docs/celery.md says under Limits).

Every retry goes the operator's way: ``failboard retry`` into the spool, then the project's
agent (a subprocess importing the project's app) re-sends.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.celery_support import celery_app
from tests.integration.test_celery_workers import Setup, _redis_broker, _wait
from tests.services import fresh_database

pytest.importorskip("celery")

TASKS = "tests.celery_tasks"


@dataclass
class CanvasSetup(Setup):
    """A :class:`Setup` whose worker has a result backend: chains, errbacks and chords report
    through it."""

    results: str = ""

    @property
    def env(self) -> dict[str, str]:
        return {**super().env, "FB_CELERY_RESULTS": self.results}

    def retry(self, *job_ids: str) -> dict[str, str]:
        """Retry through the spool and one pass of the agent; the lineage (old id → new id)."""
        action = self.cli("retry", "billing", *job_ids, "--json")
        self.cli("agent", "--project", "billing", "--once")
        done = self.cli("action", str(action["id"]), "--json")
        assert done["result"]["succeeded"] == len(job_ids), done["result"]
        lineage: dict[str, str] = done["result"]["details"]["lineage"]
        return lineage

    def listed(self, job_id: str) -> dict[str, Any] | None:
        """The job's failure detail once the recorder wrote it."""
        jobs = self.cli("jobs", "list", "--json")
        if job_id not in {job["id"] for job in jobs}:
            return None
        detail: dict[str, Any] = self.cli("jobs", "show", "billing", job_id, "--json")
        return detail

    def notes(self, what: str) -> list[dict[str, Any]]:
        """What the tasks wrote (``tests.celery_tasks._note``), one per run."""
        return [json.loads(path.read_text()) for path in self.markers.glob(f"{what}-*.json")]


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[CanvasSetup]:
    queue = f"fbtest-canvas-{tmp_path.name[-8:]}"
    with fresh_database("postgres") as db_url, _redis_broker() as (broker_url, prefix):
        markers = tmp_path / "markers"
        markers.mkdir()
        config = tmp_path / "failboard.toml"
        config.write_text(
            f'[spool]\nurl = "{db_url}"\n'
            f'[[projects]]\nkey = "billing"\ndriver = "celery"\nurl = "{db_url}"\n'
            'app = "tests.celery_tasks:app"\n'
        )
        made = CanvasSetup(broker_url, prefix, db_url, queue, markers, config, broker_url)
        made.cli("migrate", "--failures")
        yield made


@pytest.fixture
def sender(setup: CanvasSetup) -> Iterator[Any]:
    """The caller's app: the same broker and result backend, none of the tasks' code."""
    app = celery_app(
        setup.broker,
        setup.prefix,
        result_backend=setup.results,
        result_backend_transport_options={"global_keyprefix": setup.prefix},
    )
    # Building a canvas looks its tasks up, which finalizes the app with every shared task of
    # the process: other test modules define some under one name twice, and Celery warns
    # about those (not ours, and never called here) -- only that warning is silenced.
    from celery.exceptions import DuplicateTaskNameWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DuplicateTaskNameWarning)
        app.finalize()
    try:
        yield app
    finally:
        # app.close() leaves the result backend's Redis connections (the pubsub that
        # apply_async subscribes to each task's result with, and the client's pool) to the
        # garbage collector, which closes them in some later test, where the ResourceWarning
        # then fails that test.
        backend = app.backend
        backend.result_consumer.stop()
        backend.client.connection_pool.disconnect()
        app.close()


def _step(sender: Any, setup: CanvasSetup, name: str, *args: Any, **kwargs: Any) -> Any:
    return sender.signature(f"{TASKS}.{name}", args, kwargs, options={"queue": setup.queue})


def _meta(sender: Any, task_id: str) -> dict[str, Any]:
    """The task's state in the result backend, read afresh (never a cached one)."""
    meta: dict[str, Any] = sender.backend.get_task_meta(task_id, cache=False)
    return meta


def _state(sender: Any, task_id: str, state: str) -> dict[str, Any] | None:
    meta = _meta(sender, task_id)
    return meta if meta["status"] == state else None


def test_a_chain_goes_on_after_its_failed_step_is_retried(setup: CanvasSetup, sender: Any) -> None:
    from celery import chain

    with setup.worker():
        result = chain(
            _step(sender, setup, "double", 3),
            _step(sender, setup, "flaky"),
            _step(sender, setup, "collect", label="end"),
        ).apply_async()
        flaky_id = result.parent.id  # the chain's result is its last task's

        detail = _wait("flaky's failure", lambda: setup.listed(flaky_id), log=setup.log())
        assert detail["args"] == [6]
        canvas = detail["payload"]["options"]["canvas"]
        assert [sig["task"] for sig in canvas["chain"]] == [f"{TASKS}.collect"]
        assert canvas["chain"][0]["options"]["task_id"] == result.id
        assert canvas["chain"][0]["kwargs"] == {"label": "end"}
        # Celery itself marked the rest of the chain failed, before the failure was recorded.
        assert _meta(sender, result.id)["status"] == "FAILURE"
        assert setup.notes("collect-end") == []

        (setup.markers / "fixed").write_text("yes")
        new_id = setup.retry(flaky_id)[flaky_id]

        [end] = _wait("the chain's last step", lambda: setup.notes("collect-end"), log=setup.log())
        assert end["value"] == 7  # collect got the re-run's result: double(3) + 1
        assert end["id"] == result.id  # under the id the chain's caller waits on
        [rerun] = setup.notes("flaky")
        assert rerun["id"] == new_id and rerun["retry_of"] == flaky_id and rerun["value"] == 6
        meta = _wait("the chain's result", lambda: _state(sender, result.id, "SUCCESS"))
        assert meta["result"] == 7
        assert len(setup.notes("double")) == 1  # the chain went on; it did not start again
        assert setup.cli("jobs", "list", "--json") == []


def test_link_error_fires_on_each_failure_and_link_on_the_success(
    setup: CanvasSetup, sender: Any
) -> None:
    with setup.worker():
        task = _step(sender, setup, "flaky", 5).set(
            link=_step(sender, setup, "collect", label="linked"),
            link_error=_step(sender, setup, "failed"),
        )
        first = task.apply_async().id
        detail = _wait("the first failure", lambda: setup.listed(first), log=setup.log())
        canvas = detail["payload"]["options"]["canvas"]
        assert [sig["task"] for sig in canvas["link"]] == [f"{TASKS}.collect"]
        assert [sig["task"] for sig in canvas["link_error"]] == [f"{TASKS}.failed"]

        def errbacks_for(*ids: str) -> list[str] | None:
            seen = sorted(note["failed"] for note in setup.notes("failed"))
            return seen if seen == sorted(ids) else None

        _wait("Celery's errback of the first failure", lambda: errbacks_for(first))

        # Not fixed yet: the re-sent task fails again, and its errback fires again.
        second = setup.retry(first)[first]
        again = _wait("the second failure", lambda: setup.listed(second), log=setup.log())
        assert again["extra"]["retry_of"] == first
        assert again["payload"]["options"]["canvas"]["link"] == canvas["link"]
        _wait("the errback of the re-sent task", lambda: errbacks_for(first, second))
        assert setup.notes("collect-linked") == []

        (setup.markers / "fixed").write_text("yes")
        third = setup.retry(second)[second]
        [linked] = _wait("the link callback", lambda: setup.notes("collect-linked"))
        assert linked["value"] == 6  # flaky(5) + 1
        [rerun] = setup.notes("flaky")
        assert rerun["id"] == third and rerun["retry_of"] == second
        assert errbacks_for(first, second) is not None  # the success called no errback
        assert setup.cli("jobs", "list", "--json") == []


def test_a_chord_member_is_re_sent_in_its_group_but_the_chord_callback_stays_failed(
    setup: CanvasSetup, sender: Any
) -> None:
    from celery import chord

    with setup.worker():
        result = chord(
            [_step(sender, setup, "flaky", 2), _step(sender, setup, "gated", 1)],
            _step(sender, setup, "collect", label="chord"),
        ).apply_async()
        group_id = result.parent.id
        flaky_id = result.parent.results[0].id

        detail = _wait("the member's failure", lambda: setup.listed(flaky_id), log=setup.log())
        canvas = detail["payload"]["options"]["canvas"]
        assert canvas["group_id"] == group_id and canvas["group_index"] == 0
        assert canvas["chord"]["task"] == f"{TASKS}.collect"  # kept for the operator to see
        # Not at once: the callback is settled when the last header task returns.
        assert _meta(sender, result.id)["status"] == "PENDING"
        (setup.markers / "open").write_text("yes")
        failed = _wait("the chord's callback", lambda: _state(sender, result.id, "FAILURE"))
        assert type(failed["result"]).__name__ == "ChordError"
        assert flaky_id in str(failed["result"])

        (setup.markers / "fixed").write_text("yes")
        new_id = setup.retry(flaky_id)[flaky_id]
        [rerun] = _wait("the re-sent member", lambda: setup.notes("flaky"), log=setup.log())
        assert rerun["id"] == new_id
        assert rerun["group"] == group_id  # its result still names its group
        assert rerun["chord"] is False  # ... but it never reports to the settled chord
        assert _wait("its result", lambda: _state(sender, new_id, "SUCCESS"))["result"] == 3

        # A task sent after the re-run has finished runs after anything the re-run sent (one
        # solo worker, one queue): once it ran, a callback would have run too.
        def ran(value: int) -> list[dict[str, Any]]:
            return [note for note in setup.notes("double") if note["value"] == value]

        _step(sender, setup, "double", 100).apply_async()
        _wait("a task behind the re-run", lambda: ran(100))
        _step(sender, setup, "double", 101).apply_async()  # behind anything the first let in
        _wait("a second one", lambda: ran(101))
        assert setup.notes("collect-chord") == []
        assert _meta(sender, result.id)["status"] == "FAILURE"
        # The callback never ran as a task, so no failure of it was recorded either.
        assert setup.cli("jobs", "list", "--json") == []


def test_the_main_process_keeps_the_canvas_of_a_task_it_reports(
    setup: CanvasSetup, sender: Any
) -> None:
    # A hard time limit is reported by the worker's main process (twice: once with the task's
    # context pushed, once without); the canvas comes from the message it received.
    from celery import chain

    with setup.worker(pool="prefork"):
        result = chain(
            _step(sender, setup, "slow").set(immutable=True),
            _step(sender, setup, "collect", label="after-slow"),
        ).apply_async()
        slow_id = result.parent.id
        detail = _wait(
            "the time limit", lambda: setup.listed(slow_id), timeout=90, log=setup.log("prefork")
        )
    assert detail["exception_class"].endswith("TimeLimitExceeded")
    assert detail["queue"] == setup.queue
    # Celery reports a hard time limit twice in the main process; one row, now the worker
    # stopped (it flushed whatever it had).
    assert [job["id"] for job in setup.cli("jobs", "list", "--json")] == [slow_id]
    [after] = detail["payload"]["options"]["canvas"]["chain"]
    assert after["task"] == f"{TASKS}.collect" and after["options"]["task_id"] == result.id
