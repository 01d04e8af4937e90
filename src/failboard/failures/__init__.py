"""failboard's failures table and what every recorder-based driver shares.

Celery, Huey, arq and taskiq keep no queryable record of failed jobs. Their projects install a
recorder (one line, see :mod:`failboard.integrations`) that writes each FINAL failure into this
table through a :class:`Recorder`; the dashboard reads it with :class:`FailuresReader`, and the
project's agent acts on it with :class:`FailuresExecutor` and the engine's :class:`Resender`.

A new engine plugs in with: a hook that builds a :class:`Failure` and calls
``Recorder.record``; a :class:`Resender` that re-sends a :class:`StoredFailure` through the
engine's own app; and a driver module (``Options`` based on :class:`RecorderOptions`,
``CAPABILITIES``, ``make_reader``, ``make_executor``) like :mod:`failboard.drivers.celery`.
"""

from __future__ import annotations

from failboard.failures.executor import (
    BrokerUnreachable,
    FailuresExecutor,
    Resender,
    StoredFailure,
)
from failboard.failures.options import CAPABILITIES, RecorderOptions, options_of
from failboard.failures.reader import FailuresReader
from failboard.failures.record import DEFAULT_REDACT, REDACTED, Failure, exception_name, redact
from failboard.failures.recorder import Recorder, RecorderStats
from failboard.failures.schema import DEFAULT_TABLE, create_failures_table, failures_table

__all__ = [
    "CAPABILITIES",
    "DEFAULT_REDACT",
    "DEFAULT_TABLE",
    "REDACTED",
    "BrokerUnreachable",
    "Failure",
    "FailuresExecutor",
    "FailuresReader",
    "Recorder",
    "RecorderOptions",
    "RecorderStats",
    "Resender",
    "StoredFailure",
    "create_failures_table",
    "exception_name",
    "failures_table",
    "options_of",
    "redact",
]
