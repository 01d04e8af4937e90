"""Re-publishes a recorded Dramatiq message through the project's RabbitMQ broker (agent only).

The middleware recorded the message's actor, queue, args, kwargs and options; the message goes
back on its queue under its own ``message_id``, retries reset, with a ``RabbitmqBroker`` built
from ``broker_url`` with publisher confirms, so that a row is deleted only once RabbitMQ has
taken the message. The agent needs dramatiq and pika, not the project's actors.
"""

from __future__ import annotations

import json
from typing import Any

from failboard.drivers.dramatiq.keys import canonical
from failboard.exceptions import ConfigError
from failboard.failures import BrokerUnreachable, StoredFailure

__all__ = ["MESSAGE_OPTIONS", "DramatiqResender"]

MESSAGE_OPTIONS = "message_options"
"""The key, in a failure row's options, of the message's own options (what a re-send keeps)."""


class DramatiqResender:
    """The :class:`~failboard.failures.Resender` of Dramatiq over RabbitMQ."""

    engine = "dramatiq"

    def __init__(self, project: str, broker_url: str | None, *, broker: Any = None) -> None:
        if broker is None:
            if not broker_url:
                raise ConfigError(
                    f'project {project}: set broker_url = "amqp://…" (the project\'s RabbitMQ) '
                    "so that its agent can re-publish messages"
                )
            from dramatiq.brokers.rabbitmq import RabbitmqBroker

            broker = RabbitmqBroker(url=broker_url, confirm_delivery=True, middleware=[])
        self.broker = broker
        from dramatiq import errors
        from pika.exceptions import AMQPConnectionError

        # dramatiq 2 renamed ConnectionError (still there, with a warning) to this.
        broken = getattr(errors, "BrokerConnectionError", None) or errors.ConnectionError
        self._unreachable: tuple[type[BaseException], ...] = (
            broken,
            AMQPConnectionError,
            OSError,
        )

    def send(self, failure: StoredFailure) -> str:
        from dramatiq import Message

        if not failure.name or not failure.queue:
            raise ValueError("no actor name or queue was recorded")
        args = json.loads(failure.args) if failure.args else []
        kwargs = json.loads(failure.kwargs) if failure.kwargs else {}
        if not isinstance(args, list) or not isinstance(kwargs, dict):
            raise ValueError("the recorded args/kwargs are not a list and a mapping")
        options = failure.options.get(MESSAGE_OPTIONS)
        message: Message[Any] = Message(
            queue_name=canonical(failure.queue),
            actor_name=failure.name,
            args=tuple(args),
            kwargs=kwargs,
            options=dict(options) if isinstance(options, dict) else {},
            message_id=failure.job_id,
        )
        try:
            self.broker.enqueue(message)
        except self._unreachable as exc:
            raise BrokerUnreachable(
                f"the project's RabbitMQ cannot be reached: {type(exc).__name__}: {exc}"
            ) from exc
        return failure.job_id

    def close(self) -> None:
        try:
            self.broker.close()
        except Exception:  # closing a broken connection must not fail the action
            pass
