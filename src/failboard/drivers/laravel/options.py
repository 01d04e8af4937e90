"""The ``laravel`` driver's options: the keys beside a project's common keys (CONTRACT §2)."""

from __future__ import annotations

from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from failboard.drivers.base import Capabilities

__all__ = ["CAPABILITIES", "Options"]

CAPABILITIES = Capabilities()
"""Every filter runs in the database; every action is offered. Jobs an action cannot handle yet
(Redis/Horizon connections, ``executor = "artisan"``) are answered as failed, per job."""

_TABLE = r"^[A-Za-z_][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_$]*)?$"


class Options(BaseModel):
    """How failboard finds and acts on one Laravel application's failed jobs.

    ``table`` and ``jobs_table`` live in the database of the project's ``url`` (``schema.table``
    is accepted). Retrying pushes a job back onto the *database* queue (``jobs_table``) when the
    job's queue connection is one of ``database_connections``.

    Not built yet (accepted and validated now so that configs written today keep working):
    ``executor = "artisan"`` (running ``php artisan queue:retry`` instead of the native executor),
    and Redis/Horizon retry and forget (``redis_url``, ``redis_prefix``, ``horizon``,
    ``horizon_url``, ``horizon_prefix``). Until then the executor answers the jobs concerned as
    *failed* with a reason that says so; it never pretends to have done the work.
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
    horizon: bool = False
    horizon_url: str | None = None
    horizon_prefix: str = "laravel_horizon:"
    executor: Literal["native", "artisan"] = "native"
    artisan: str | None = Field(default=None, description="Path to the app's artisan script.")
    php: str = "php"

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

    @property
    def zone(self) -> ZoneInfo:
        """``timezone`` as a ZoneInfo."""
        return ZoneInfo(self.timezone)
