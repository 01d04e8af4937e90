"""Importing the project's app object in the agent (the ``app`` option: ``"proj.celery:app"``).

Every re-sender imports the object its engine re-sends through: a Celery app, a Huey instance,
arq's ``WorkerSettings``, a taskiq broker. Only the agent does this, in the project's own
environment; the dashboard never imports project code.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

from failboard.exceptions import ConfigError

__all__ = ["import_app", "project_app"]


def import_app(path: str) -> Any:
    """The object at ``"package.module:attribute"``, importing the module.

    Like ``celery -A`` and ``huey_consumer``, the current directory is tried too when the module
    is not found."""
    module_name, _, attribute = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if os.getcwd() in sys.path or not (exc.name and module_name.startswith(exc.name)):
            raise ConfigError(f"app = {path!r}: cannot import {module_name}: {exc}") from exc
        sys.path.insert(0, os.getcwd())
        try:
            module = importlib.import_module(module_name)
        except ImportError as again:
            raise ConfigError(f"app = {path!r}: cannot import {module_name}: {again}") from again
    except Exception as exc:  # the project's module raised while importing
        raise ConfigError(
            f"app = {path!r}: importing {module_name} failed: {type(exc).__name__}: {exc}"
        ) from exc
    found: Any = module
    for part in attribute.split("."):
        try:
            found = getattr(found, part)
        except AttributeError:
            raise ConfigError(f"app = {path!r}: {module_name} has no {attribute}") from None
    return found


def project_app(project: str, app: str | Any | None, example: str, what: str) -> Any:
    """``app`` itself when it is an object, imported when it is a path; a ConfigError that says
    what to set when it is missing. ``example`` is a path to show (``"proj.tasks:huey"``) and
    ``what`` names the object (``"Huey instance"``)."""
    if app is None:
        raise ConfigError(
            f'project {project}: set app = "{example}" (the import path of the project\'s {what}) '
            "so that its agent can re-send jobs"
        )
    return import_app(app) if isinstance(app, str) else app
