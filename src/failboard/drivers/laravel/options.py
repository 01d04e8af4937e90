"""The ``laravel`` driver's options: the keys beside a project's common keys (CONTRACT §2)."""

from __future__ import annotations

from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from failboard.drivers.base import Capabilities

__all__ = ["CAPABILITIES", "Options"]

CAPABILITIES = Capabilities()
"""Every filter is offered and every action too; a job an action cannot handle (a connection
that is neither a database nor a Redis one) is answered as failed, per job, with the reason."""

_TABLE = r"^[A-Za-z_][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_$]*)?$"


class Options(BaseModel):
    """How failboard finds and acts on one Laravel application's failed jobs.

    ``table`` and ``jobs_table`` live in the database of the project's ``url`` (``schema.table``
    is accepted). A job's ``connection`` column picks where a retry pushes it: the *database*
    queue (``jobs_table``) for one of ``database_connections``, the Redis queue at ``redis_url``
    (keys under ``redis_prefix``, Laravel's ``database.redis.options.prefix``) for one of
    ``redis_connections``. With ``horizon = true`` Redis jobs are retried and forgotten the way
    Horizon does it, in Horizon's store at ``horizon_url`` (default ``redis_url``) under
    ``horizon_prefix``; ``horizon_source`` says where the dashboard lists them from.
    ``executor = "artisan"`` runs ``php artisan`` in the application instead.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    table: str = Field(default="failed_jobs", pattern=_TABLE)
    jobs_table: str = Field(default="jobs", pattern=_TABLE)
    database_connections: tuple[str, ...] = Field(
        default=("database",),
        description="Laravel queue connection names whose jobs are retried into jobs_table.",
    )
    # Laravel writes failed_at as wall-clock time in app.timezone. On MySQL/MariaDB a TIMESTAMP is
    # converted by the server from the writer's session zone and read back in ours (UTC): there,
    # this is the zone the values read in a UTC session, usually "UTC".
    timezone: str = Field(
        default="UTC",
        description="The zone failed_at values are written in (Laravel's app.timezone).",
    )
    redis_url: str | None = None
    redis_prefix: str = "laravel_database_"
    redis_connections: tuple[str, ...] = Field(
        default=("redis",),
        description="Laravel queue connection names whose jobs are retried into Redis.",
    )
    redis_cluster: bool = Field(
        default=False,
        description="The Redis queue is a cluster: queue keys take the hash-tag form queues:{q}.",
    )
    horizon: bool = False
    horizon_url: str | None = None
    horizon_prefix: str = "laravel_horizon:"
    horizon_source: Literal["table", "horizon"] = Field(
        default="table",
        description="Where the dashboard lists failed jobs from with horizon = true: the "
        "failed_jobs table (details enriched from Horizon) or Horizon's own failed_jobs set.",
    )
    horizon_pending_minutes: int = Field(
        default=60,
        ge=1,
        description="Horizon's trim.pending: how long the record of a re-pushed job is kept.",
    )
    executor: Literal["native", "artisan"] = "native"
    artisan: str | None = Field(default=None, description="Path to the app's artisan script.")
    php: str = "php"
    artisan_timeout: float = Field(
        default=300.0, gt=0, description="Seconds one php artisan command may run."
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"{value!r} is not a time zone; use an IANA name such as 'UTC' or 'Europe/Berlin'"
            ) from None
        return value

    @model_validator(mode="after")
    def _artisan_needs_path(self) -> Options:
        if self.executor == "artisan" and not self.artisan:
            raise ValueError('executor = "artisan" needs artisan = "/path/to/app/artisan"')
        return self

    @model_validator(mode="after")
    def _horizon_source_needs_horizon(self) -> Options:
        if self.horizon_source == "horizon" and not self.horizon:
            raise ValueError('horizon_source = "horizon" needs horizon = true')
        return self

    @property
    def horizon_redis_url(self) -> str | None:
        """Where Horizon keeps its records: ``horizon_url``, else the queue's ``redis_url``."""
        return self.horizon_url or self.redis_url

    @property
    def zone(self) -> ZoneInfo:
        """``timezone`` as a ZoneInfo."""
        return ZoneInfo(self.timezone)
