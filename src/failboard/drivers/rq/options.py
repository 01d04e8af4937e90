"""The ``rq`` driver's options: the keys beside a project's common keys (CONTRACT §2)."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator

from failboard.drivers.base import Capabilities
from failboard.models import ActionKind

__all__ = ["CAPABILITIES", "DEFAULT_FAILURE_TTL", "Options"]

DEFAULT_FAILURE_TTL = 31_536_000
"""rq's own ``DEFAULT_FAILURE_TTL`` (one year), the same in rq 2.x and 3.x."""

CAPABILITIES = Capabilities(
    # The queue and the time range are score ranges of the failed registries. Name, exception
    # and free text are matched on the pages read (at most SCAN_CAP registry entries per
    # request): RQ keeps no index on them, so they are not claimed as server-side.
    filters=frozenset({"queue", "failed_after", "failed_before"}),
    actions=frozenset(ActionKind),
    has_connections=False,
)

# rq 3's RQ_KEY_PREFIX accepts these characters; the prefix we take ends with the ":" it adds.
_PREFIX = re.compile(r"^[A-Za-z0-9_.:{}-]+:$")


class Options(BaseModel):
    """How failboard finds one project's RQ data in its Redis (the project's ``url``).

    ``prefix`` is rq 3's ``RQ_KEY_PREFIX`` followed by ``:`` (``rq:`` unless the project changed
    it; rq 2.x always uses ``rq:``). ``queues`` limits the driver to those queues; by default it
    covers every queue named in ``<prefix>queues``.

    RQ orders a failed registry by *expiry* (failure time + the job's ``failure_ttl``), not by
    failure time. failboard shows a failure's time as that score minus ``failure_ttl`` — exact
    when the queue's jobs share one ``failure_ttl``, which is rq's default unless a job sets its
    own. Set ``failure_ttl`` (or ``failure_ttls`` per queue) to what the project uses.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    queues: tuple[str, ...] = Field(
        default=(), description="Queue names to cover; empty means every queue in <prefix>queues."
    )
    prefix: str = Field(default="rq:", description="rq's RQ_KEY_PREFIX followed by ':'.")
    failure_ttl: int = Field(
        default=DEFAULT_FAILURE_TTL,
        gt=0,
        description="Seconds the project's jobs keep their failures (rq's failure_ttl).",
    )
    failure_ttls: dict[str, int] = Field(
        default_factory=dict, description="failure_ttl per queue, where it differs."
    )

    @field_validator("prefix")
    @classmethod
    def _prefix_shape(cls, value: str) -> str:
        if not value.endswith(":"):
            value += ":"  # RQ_KEY_PREFIX = "myapp" means keys "myapp:..."
        if not _PREFIX.match(value):
            raise ValueError(
                f"{value!r} is not an rq key prefix: use letters, digits and _ . : - {{ }}, "
                'as in RQ_KEY_PREFIX (e.g. prefix = "rq:")'
            )
        return value

    @field_validator("queues")
    @classmethod
    def _queue_names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if any(not name for name in value):
            raise ValueError("queue names must not be empty")
        return tuple(dict.fromkeys(value))

    @field_validator("failure_ttls")
    @classmethod
    def _positive_ttls(cls, value: dict[str, int]) -> dict[str, int]:
        for queue, ttl in value.items():
            if ttl <= 0:
                raise ValueError(
                    f"failure_ttls[{queue!r}] = {ttl}: use a number of seconds > 0 (jobs kept "
                    "forever, failure_ttl = -1, need no entry)"
                )
        return value

    def ttl(self, queue: str) -> int:
        """The failure_ttl assumed for ``queue``'s failures."""
        return self.failure_ttls.get(queue, self.failure_ttl)
