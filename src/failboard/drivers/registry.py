"""Which drivers exist and how to build their two faces from a project's settings.

Driver modules are imported lazily: a dashboard that only reads Laravel tables never imports
redis-py, and an agent imports only its own project's driver.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from pydantic import BaseModel

if TYPE_CHECKING:
    from failboard.config import ProjectSettings
    from failboard.drivers.base import Capabilities, Executor, Reader

__all__ = [
    "DRIVERS",
    "DriverModule",
    "capabilities",
    "make_executor",
    "make_reader",
    "options_model",
    "options_of",
]

DRIVERS: dict[str, str] = {
    "laravel": "failboard.drivers.laravel",
    "rq": "failboard.drivers.rq",
    "dramatiq": "failboard.drivers.dramatiq",
    "celery": "failboard.drivers.celery",
    "huey": "failboard.drivers.huey",
    "arq": "failboard.drivers.arq",
    "taskiq": "failboard.drivers.taskiq",
}
"""Driver name → module. A module provides ``Options``, ``CAPABILITIES``, ``make_reader`` and
``make_executor``."""


class DriverModule(Protocol):
    Options: type[BaseModel]
    CAPABILITIES: Capabilities

    def make_reader(self, project: ProjectSettings, timeout: float) -> Reader: ...

    def make_executor(self, project: ProjectSettings, batch_size: int) -> Executor: ...


def _module(driver: str) -> Any:
    try:
        return importlib.import_module(DRIVERS[driver])
    except KeyError:
        known = ", ".join(sorted(DRIVERS))
        raise ValueError(f"unknown driver {driver!r}; use one of: {known}") from None


def options_model(driver: str) -> type[BaseModel]:
    """The pydantic model that validates this driver's options (raises ValueError if unknown)."""
    model: type[BaseModel] = _module(driver).Options
    return model


def make_reader(project: ProjectSettings, timeout: float = 2.0) -> Reader:
    reader: Reader = _module(project.driver).make_reader(project, timeout)
    return reader


def make_executor(project: ProjectSettings, batch_size: int = 1_000) -> Executor:
    executor: Executor = _module(project.driver).make_executor(project, batch_size)
    return executor


def capabilities(driver: str) -> Capabilities:
    """What the driver can filter on and do, known without opening any store."""
    caps: Capabilities = _module(driver).CAPABILITIES
    return caps


OptionsT = TypeVar("OptionsT", bound=BaseModel)


def options_of(project: ProjectSettings, model: type[OptionsT]) -> OptionsT:
    """The project's driver options as ``model``: already that model when the project came from
    a config file; validated here when a caller built the project by hand."""
    options = project.options
    if isinstance(options, model):
        return options
    if options is None:
        return model()
    if isinstance(options, Mapping):
        return model.model_validate(dict(options))
    return model.model_validate(options.model_dump())
