"""The dramatiq driver's pure parts: options, message rebuilding for a retry, safe decoding of
what workers wrote, and a middleware that never breaks the worker."""

from __future__ import annotations

import json
import pickle
from typing import Any

import dramatiq
import pytest
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import Retries
from pydantic import ValidationError

from failboard.drivers.dramatiq import Options
from failboard.drivers.dramatiq.executor import requeued_message
from failboard.drivers.dramatiq.store import ErrorRecord, decode_message
from failboard.integrations.dramatiq import FailboardMiddleware, _before_retries


def test_options_defaults_and_shapes() -> None:
    options = Options()
    assert (options.namespace, options.broker, options.queues) == ("dramatiq", "redis", ())
    assert Options(queues=("mail.DQ", "mail", "mail.XQ")).queues == ("mail",)
    with pytest.raises(ValidationError):
        Options(namespace="has space")
    with pytest.raises(ValidationError):
        Options(broker_url="amqp://x")  # only for broker = "rabbitmq"
    with pytest.raises(ValidationError):
        Options.model_validate({"nope": 1})
    assert Options(broker="rabbitmq", broker_url="amqp://h/%2F").broker == "rabbitmq"


def test_a_retried_message_starts_afresh_under_a_new_id() -> None:
    raw = json.dumps(
        {
            "queue_name": "mail.DQ",
            "actor_name": "send",
            "args": [1],
            "kwargs": {"to": "a@b"},
            "options": {
                "redis_message_id": "old",
                "retries": 3,
                "traceback": "Traceback ...",
                "eta": 1,
                "requeue_timestamp": 2,
                "max_retries": 5,
            },
            "message_id": "m-1",
            "message_timestamp": 123,
        }
    ).encode()
    again = json.loads(requeued_message(raw, "mail", "new"))
    assert again["queue_name"] == "mail" and again["message_id"] == "m-1"
    assert again["options"] == {"redis_message_id": "new", "max_retries": 5}
    assert again["args"] == [1] and again["kwargs"] == {"to": "a@b"}
    assert again["message_timestamp"] > 123  # max_age counts from the retry
    with pytest.raises(ValueError):
        requeued_message(pickle.dumps({"actor_name": "x"}), "mail", "new")
    with pytest.raises(ValueError):
        requeued_message(b'{"no": "actor"}', "mail", "new")


class Boom:
    def __reduce__(self) -> Any:
        return (print, ("unpickled!",))


def test_pickled_messages_are_read_without_being_run(capsys: pytest.CaptureFixture[str]) -> None:
    raw = pickle.dumps({"actor_name": "send", "args": (Boom(),), "options": {"retries": 1}})
    message = decode_message(raw)
    assert message is not None and message.encoding.startswith("pickle")
    assert message.get("actor_name") == "send" and message.attempts == 2
    assert "builtins.print" in str(message.fields["args"])
    assert capsys.readouterr().out == ""
    garbage = decode_message(b"\x80\x05not a pickle")
    assert garbage is not None and garbage.error
    assert decode_message(None) is None
    assert ErrorRecord.decode(b"[1, 2]") is None and ErrorRecord.decode(b"{bad") is None


class _Broken:
    """A Redis client whose every write fails, as during an outage."""

    def register_script(self, script: Any) -> Any:
        return lambda *args, **kwargs: None

    def pipeline(self, **_: Any) -> Any:
        raise ConnectionError("redis is down")


def _failed(middleware: FailboardMiddleware, broker: dramatiq.Broker, rid: str) -> None:
    message = dramatiq.MessageProxy(
        dramatiq.Message(
            queue_name="q", actor_name="a", args=(), kwargs={}, options={"redis_message_id": rid}
        )
    )
    try:
        raise RuntimeError("boom")
    except RuntimeError as exc:
        middleware.after_process_message(broker, message, exception=exc)
    message.fail()
    middleware.after_nack(broker, message)


def test_the_middleware_never_raises_into_the_worker() -> None:
    from dramatiq.brokers.redis import RedisBroker

    broker = RedisBroker(client=_Broken(), namespace="x", middleware=[Retries()])
    middleware = FailboardMiddleware()
    broker.add_middleware(middleware)
    assert _before_retries(broker, middleware)
    _failed(middleware, broker, "rid-1")
    _failed(middleware, broker, "rid-2")
    assert middleware.redis_errors == 2
    # Another broker keeps no dead letters in Redis: nothing to write, nothing raised.
    stub = StubBroker(middleware=[])
    stub.add_middleware(FailboardMiddleware())
    _failed(FailboardMiddleware(), stub, "rid-3")
    with pytest.raises(ValueError):
        FailboardMiddleware(url="sqlite://")  # a table needs the project's key
