"""The options every recorder-based driver shares (CONTRACT §2): ``table`` and ``app``."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from failboard.drivers.base import Capabilities
from failboard.drivers.registry import options_of
from failboard.failures.schema import DEFAULT_TABLE, TABLE_PATTERN
from failboard.models import ActionKind

__all__ = ["APP_PATTERN", "CAPABILITIES", "RecorderOptions", "ResendOptions", "options_of"]

CAPABILITIES = Capabilities(
    # Every filter is a SQL condition on the failures table; there are no queue connections.
    filters=frozenset({"queue", "name", "exception", "q", "failed_after", "failed_before"}),
    actions=frozenset(ActionKind),
    has_connections=False,
)

APP_PATTERN = r"^[A-Za-z_][A-Za-z0-9_.]*:[A-Za-z_][A-Za-z0-9_.]*$"


class RecorderOptions(BaseModel):
    """Where a recorder-based project's failures are, and how its agent finds the app.

    The project's ``url`` is the database of failboard's failures table (the project's own or
    the central one); ``table`` is its name there. ``app`` is the import path of the project's
    app object (``"proj.celery:app"``), needed by the agent only, to re-send jobs.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    table: str = Field(default=DEFAULT_TABLE, pattern=TABLE_PATTERN)
    app: str | None = Field(default=None, pattern=APP_PATTERN)


class ResendOptions(RecorderOptions):
    """:class:`RecorderOptions` and ``keep_task_id``, for engines that let a job be re-sent under
    a chosen id (Celery, Huey, arq, taskiq).

    ``keep_task_id``: re-send a job under its original id instead of a new one, so that a caller
    waiting on the original id's result sees the re-run's. Off by default: with a new id, the
    original failure and each re-run stay apart, and the action's result maps one to the other.
    """

    keep_task_id: bool = Field(default=False)
