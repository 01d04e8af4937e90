"""``failboard hash-password``: an argon2id hash for a ``[[users]]`` entry."""

from __future__ import annotations

import sys

import typer

from failboard import auth
from failboard.cli.common import console, err_console, handle_errors

__all__ = ["hash_password", "register"]

MIN_LENGTH = 8
MAX_LENGTH = 1_024


def _read_password() -> str:
    if sys.stdin.isatty():
        # Asked twice, hidden: a typo here would lock the user out.
        first = typer.prompt("Password", hide_input=True)
        second = typer.prompt("Again", hide_input=True)
        if first != second:
            err_console.print("[bold red]error:[/] the two passwords differ", markup=True)
            raise typer.Exit(1)
        return str(first)
    # From a pipe: the first line, without its line end (a trailing space is kept on purpose).
    return sys.stdin.readline().rstrip("\r\n")


def hash_password() -> None:
    """Read a password (prompt, or stdin when not a terminal) and print its argon2 hash for
    [[users]] password_hash."""
    password = _read_password()
    if not MIN_LENGTH <= len(password) <= MAX_LENGTH:
        err_console.print(
            f"[bold red]error:[/] a password has {MIN_LENGTH} to {MAX_LENGTH} characters",
            markup=True,
        )
        raise typer.Exit(1)
    console.print(auth.hash_password(password), markup=False, highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command("hash-password")(handle_errors(hash_password))
