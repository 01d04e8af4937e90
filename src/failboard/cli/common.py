"""What every command shares: the ``--config`` option, loading, output and error handling."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from typing import Annotated, Any, ParamSpec, TypeVar

import typer
from pydantic import BaseModel
from rich.console import Console
from rich.markup import escape

from failboard.board import Board
from failboard.config import Settings, load_settings
from failboard.exceptions import FailboardError

__all__ = [
    "ConfigOption",
    "JsonOption",
    "console",
    "err_console",
    "handle_errors",
    "open_board",
    "print_json",
    "settings_from",
]

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)

ConfigOption = Annotated[
    str | None,
    typer.Option(
        "--config",
        "-c",
        help="Config file (default: $FAILBOARD_CONFIG, else ./failboard.toml).",
        show_default=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON document, nothing else.")]

P = ParamSpec("P")
R = TypeVar("R")


def handle_errors(func: Callable[P, R]) -> Callable[P, R]:
    """failboard errors go to stderr as one line, exit code 1."""

    @wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except FailboardError as exc:
            # The message quotes config keys (projects[shop]) and store errors ([SQL: …]):
            # escaped, or Rich would take them for markup and drop or choke on them.
            err_console.print(
                f"[bold red]error:[/] {escape(exc.message)}", markup=True, soft_wrap=True
            )
            raise typer.Exit(1) from None

    return wrapper


def settings_from(config: str | None) -> Settings:
    return load_settings(config)


@contextmanager
def open_board(config: str | None) -> Iterator[Board]:
    board = Board(settings_from(config))
    try:
        yield board
    finally:
        board.close()


def _plain(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if hasattr(value, "to_json"):
        return value.to_json()
    return value


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(_plain(value), ensure_ascii=False, indent=2, default=str) + "\n")
