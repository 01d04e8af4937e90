"""failboard's failures table and what every recorder-based driver shares.

Celery, Huey, arq and taskiq keep no queryable record of failed jobs. Their projects install a
recorder (one line, see :mod:`failboard.integrations`) that writes each FINAL failure into this
table through a :class:`Recorder`; the dashboard reads it with :class:`FailuresReader`, and the
project's agent acts on it with :class:`FailuresExecutor` and the engine's :class:`Resender`.

A new engine plugs in with: a hook that builds a :class:`Failure` (:func:`describe`,
:class:`ParamNames`, :func:`worker_name` help) and calls ``Recorder.record`` (``record_async``
in an asyncio worker); a :class:`Resender` that re-sends a :class:`StoredFailure` through the
project's own app (:func:`project_app`, :func:`decode_call`, :class:`AsyncBridge` help); and a
driver module (``Options`` based on :class:`RecorderOptions` or :class:`ResendOptions`,
``CAPABILITIES``, and ``make_reader``/``make_executor`` built with :func:`reader_for` and
:func:`executor_for`) like :mod:`failboard.drivers.huey`.
"""

from __future__ import annotations

from failboard.failures.app import import_app, project_app
from failboard.failures.capture import ParamNames, describe, traceback_text, worker_name
from failboard.failures.driver import executor_for, reader_for
from failboard.failures.executor import (
    BrokerUnreachable,
    FailuresExecutor,
    Resender,
    StoredFailure,
)
from failboard.failures.options import CAPABILITIES, RecorderOptions, ResendOptions, options_of
from failboard.failures.reader import FailuresReader
from failboard.failures.record import DEFAULT_REDACT, REDACTED, Failure, exception_name, redact
from failboard.failures.recorder import Recorder, RecorderStats
from failboard.failures.resend import AsyncBridge, decode_call
from failboard.failures.schema import DEFAULT_TABLE, create_failures_table, failures_table

__all__ = [
    "CAPABILITIES",
    "DEFAULT_REDACT",
    "DEFAULT_TABLE",
    "REDACTED",
    "AsyncBridge",
    "BrokerUnreachable",
    "Failure",
    "FailuresExecutor",
    "FailuresReader",
    "ParamNames",
    "Recorder",
    "RecorderOptions",
    "RecorderStats",
    "ResendOptions",
    "Resender",
    "StoredFailure",
    "create_failures_table",
    "decode_call",
    "describe",
    "exception_name",
    "executor_for",
    "failures_table",
    "import_app",
    "options_of",
    "project_app",
    "reader_for",
    "redact",
    "traceback_text",
    "worker_name",
]
