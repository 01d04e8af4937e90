"""The ``dramatiq`` driver's options: the keys beside a project's common keys (CONTRACT §2)."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from failboard.drivers.base import Capabilities
from failboard.drivers.dramatiq.keys import canonical
from failboard.failures.options import CAPABILITIES as RECORDER_CAPABILITIES
from failboard.failures.schema import DEFAULT_TABLE, TABLE_PATTERN
from failboard.models import ActionKind

__all__ = ["CAPABILITIES", "Options", "capabilities_of"]

CAPABILITIES = Capabilities(
    # Queue and time range are score ranges of the dead-letter sets. Name, exception and free
    # text are matched on the pages read (at most SCAN_CAP entries per request): Redis keeps no
    # index on them, so they are not claimed as server-side. (The RabbitMQ broker's failures
    # table filters on all of them in SQL: see capabilities_of.)
    filters=frozenset({"queue", "failed_after", "failed_before"}),
    actions=frozenset(ActionKind),
    has_connections=False,
)

# dramatiq puts the namespace in front of every key; keep it to characters that need no quoting.
_NAMESPACE = re.compile(r"^[A-Za-z0-9_.:{}-]+$")


class Options(BaseModel):
    """How failboard finds one Dramatiq project's failures.

    ``broker = "redis"`` (default): the project's ``url`` is the broker's Redis; failboard reads
    the dead-letter sets ``<namespace>:<queue>.XQ`` there and joins the errors that
    :class:`failboard.integrations.dramatiq.FailboardMiddleware` recorded beside them.
    ``queues`` limits the driver to those queues; by default it covers ``default`` and every
    queue the middleware has dead-lettered a message of (``<namespace>:failboard:queues``).

    ``broker = "rabbitmq"``: RabbitMQ's dead-letter queues cannot be read at random, so the
    middleware records each final failure into failboard's failures table; the project's
    ``url`` is that table's database, ``table`` its name, and ``broker_url`` the AMQP URL the
    agent re-publishes retried messages to.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    namespace: str = Field(default="dramatiq", description="RedisBroker(namespace=...).")
    queues: tuple[str, ...] = Field(default=(), description="Queue names to cover.")
    broker: Literal["redis", "rabbitmq"] = "redis"
    broker_url: str | None = Field(default=None, description="AMQP URL (rabbitmq broker).")
    table: str = Field(default=DEFAULT_TABLE, pattern=TABLE_PATTERN)

    @field_validator("namespace")
    @classmethod
    def _namespace_shape(cls, value: str) -> str:
        if not _NAMESPACE.match(value):
            raise ValueError(
                f"{value!r} is not a dramatiq namespace: use letters, digits and _ . : - {{ }} "
                '(RedisBroker\'s namespace, "dramatiq" unless the project changed it)'
            )
        return value

    @field_validator("queues")
    @classmethod
    def _queue_names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if any(not name for name in value):
            raise ValueError("queue names must not be empty")
        # A delay or dead-letter queue name means its queue: dramatiq keeps one XQ per queue.
        return tuple(dict.fromkeys(canonical(name) for name in value))

    @model_validator(mode="after")
    def _broker_url_for_rabbitmq(self) -> Options:
        if self.broker_url is not None and self.broker != "rabbitmq":
            raise ValueError('broker_url is for broker = "rabbitmq" (the Redis broker is url)')
        return self


def capabilities_of(options: Options) -> Capabilities:
    """What a project with these options can filter on (its actions are all of them)."""
    return RECORDER_CAPABILITIES if options.broker == "rabbitmq" else CAPABILITIES
