"""A Celery task's place in the canvas: what the recorder keeps of its request, and what the
re-sender passes back to ``send_task`` (the real worker runs are in
tests/integration/test_celery_canvas.py)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from failboard.drivers.celery import canvas
from failboard.drivers.celery.resender import RETRY_OF_HEADER, CeleryResender
from failboard.failures import DEFAULT_REDACT, REDACTED, StoredFailure

pytest.importorskip("celery")

from celery.app.task import Context
from kombu.utils.json import dumps, loads

WHEN = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def _sig(task: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
    """A signature as Celery carries it in a message (a dict, arguments decoded)."""
    return {
        "task": task,
        "args": list(args),
        "kwargs": kwargs,
        "options": {"queue": "q"},
        "subtask_type": None,
        "immutable": False,
    }


def _request(**fields: Any) -> Context:
    return Context({"id": "t1", "root_id": "r1", "parent_id": "p1", **fields})


def test_the_chain_links_group_and_chord_are_kept_as_plain_json() -> None:
    request = _request(
        chain=[_sig("proj.last", WHEN), _sig("proj.next")],
        callbacks=[_sig("proj.ok")],
        errbacks=[_sig("proj.ko")],
        group="g1",
        group_index=0,
        chord=_sig("proj.body"),
    )
    kept = canvas.capture(request, dumps, DEFAULT_REDACT)
    assert set(kept) == {canvas.CANVAS}
    stored = kept[canvas.CANVAS]
    assert [sig["task"] for sig in stored["chain"]] == ["proj.last", "proj.next"]  # Celery's order
    assert stored["link"][0]["task"] == "proj.ok" and stored["link_error"][0]["task"] == "proj.ko"
    assert (stored["group_id"], stored["group_index"]) == ("g1", 0)  # index 0 is kept
    assert (stored["root_id"], stored["parent_id"]) == ("r1", "p1")
    assert stored["chord"]["task"] == "proj.body"
    # Plain JSON for the options column; the datetime stays kombu's typed value.
    assert json.loads(json.dumps(stored)) == stored
    assert stored["chain"][0]["args"][0]["__type__"] == "datetime"


def test_a_lone_task_keeps_nothing() -> None:
    assert canvas.capture(_request(), dumps) == {}
    assert canvas.capture(_request(chain=[], callbacks=None), dumps) == {}


def test_the_re_send_gets_everything_back_but_the_chord_with_its_types() -> None:
    request = _request(
        chain=[_sig("proj.last", WHEN)],
        callbacks=[_sig("proj.ok")],
        group="g1",
        group_index=1,
        chord=_sig("proj.body"),
    )
    options = canvas.send_options(canvas.capture(request, dumps), loads)
    assert set(options) == {"chain", "link", "group_id", "group_index", "root_id", "parent_id"}
    assert options["chain"][0]["args"] == [WHEN]  # a datetime again, as the worker decoded it
    assert options["link"] == [_sig("proj.ok")]
    assert canvas.send_options({}, loads) == {}  # a row recorded before the canvas was kept


def test_secrets_in_the_canvas_are_redacted_and_such_a_task_is_not_re_sent() -> None:
    request = _request(
        chain=[_sig("proj.login", "bob", "hunter2", options={"api_key": "k"})],
        errbacks=[{**_sig("proj.ko"), "options": {"headers": {"Authorization": "Bearer t"}}}],
    )
    params = {"proj.login": ("user", "password", "options")}
    kept = canvas.capture(request, dumps, DEFAULT_REDACT, params.get)
    assert kept[canvas.CANVAS]["chain"][0]["args"] == ["bob", REDACTED]
    assert kept[canvas.CANVAS]["chain"][0]["kwargs"] == {"options": {"api_key": REDACTED}}
    assert sorted(kept[canvas.CANVAS_REDACTED]) == [
        "chain[0].args[1]",
        "chain[0].kwargs.options.api_key",
        "link_error[0].options.headers.Authorization",
    ]
    assert "hunter2" not in json.dumps(kept) and "Bearer" not in json.dumps(kept)
    with pytest.raises(
        canvas.CanvasNotResendable, match=r"canvas were redacted \(.*chain\[0\]\.args\[1\]"
    ):
        canvas.send_options(kept, loads)


def test_a_canvas_that_is_not_json_or_too_large_is_marked_lost_not_cut() -> None:
    odd = canvas.capture(_request(chain=[_sig("proj.next", object())]), dumps)
    assert set(odd) == {canvas.CANVAS_LOST} and "not JSON" in odd[canvas.CANVAS_LOST]
    huge = canvas.capture(_request(chain=[_sig("proj.next", "x" * canvas.MAX_CANVAS)]), dumps)
    assert set(huge) == {canvas.CANVAS_LOST}
    for lost in (odd, huge):
        with pytest.raises(canvas.CanvasNotResendable, match="rest of its canvas would not run"):
            canvas.send_options(lost, loads)


def test_the_main_process_mapping_is_read_like_the_request() -> None:
    # A hard time limit is reported without a task context: the recorder keeps what the main
    # process saw in the message (headers and the body's embed) as a plain mapping.
    kept = canvas.capture({"chain": [_sig("proj.next")], "group": "g1", "group_index": 2}, dumps)
    assert kept[canvas.CANVAS]["group_index"] == 2
    assert kept[canvas.CANVAS]["chain"][0]["task"] == "proj.next"


class _App:
    """The parts of a Celery app the re-sender uses, recording each send."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, list[Any], dict[str, Any], dict[str, Any]]] = []
        self.producer_pool = self

    def acquire(self, block: bool = True) -> Any:
        return self

    def release(self) -> None:
        pass

    def send_task(self, name: str, args: Any, kwargs: Any, **options: Any) -> Any:
        options.pop("producer")
        self.sent.append((name, args, kwargs, options))

        class Result:
            id = "new-id"

        return Result()


def test_the_resender_passes_the_canvas_to_send_task() -> None:
    app = _App()
    resender = CeleryResender("billing", app)
    kept = canvas.capture(
        _request(chain=[_sig("proj.last", WHEN)], errbacks=[_sig("proj.ko")], chord=_sig("b")),
        dumps,
    )
    stored = StoredFailure(
        id=1,
        engine="celery",
        job_id="t1",
        name="proj.step",
        queue=None,
        args="[6]",
        kwargs="{}",
        options={"priority": 3, **json.loads(json.dumps(kept))},  # as read back from the row
        attempts=1,
    )
    assert resender.send(stored) == "new-id"
    [(name, args, kwargs, options)] = app.sent
    assert (name, args, kwargs) == ("proj.step", [6], {})
    assert options["chain"] == [_sig("proj.last", WHEN)]
    assert options["link_error"] == [_sig("proj.ko")]
    assert "chord" not in options and options["priority"] == 3
    assert options["headers"] == {RETRY_OF_HEADER: "t1"}
