"""``failboard audit verify`` and ``failboard audit list``: the hash-chained audit log."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from failboard.cli.common import (
    ConfigOption,
    JsonOption,
    console,
    err_console,
    handle_errors,
    print_json,
    settings_from,
)
from failboard.spool import Spool

__all__ = ["app"]

app = typer.Typer(help="The tamper-evident audit log.", no_args_is_help=True)


def _spool(config: str | None) -> Spool:
    spool = Spool.from_settings(settings_from(config).spool)
    try:
        spool.ensure_ready()
    except BaseException:
        spool.close()
        raise
    return spool


@app.command("verify")
@handle_errors
def verify(json_out: JsonOption = False, config: ConfigOption = None) -> None:
    """Check the whole chain; exit 1 naming the first bad entry. Prints the head hash: keep it
    somewhere else (monitoring, a log server) to catch a rewrite of the whole chain."""
    spool = _spool(config)
    try:
        result = spool.audit.verify()
    finally:
        spool.close()
    if json_out:
        print_json(result)
    elif result.ok:
        console.print(
            f"ok: {result.checked} entries, head {result.head_id} {result.head_hash}",
            markup=False,
        )
    else:
        err_console.print(
            f"TAMPERED: entry {result.bad_id}: {result.problem} "
            f"({result.checked} entries good before it)",
            markup=False,
            soft_wrap=True,
        )
    if not result.ok:
        raise typer.Exit(1)


@app.command("list")
@handle_errors
def list_entries(
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="How many, newest first.")] = 50,
    project: Annotated[str | None, typer.Option("--project", "-p", help="Only this one.")] = None,
    event: Annotated[str | None, typer.Option(help="Only this event (action.claimed, …).")] = None,
    json_out: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """The newest entries of the audit log."""
    spool = _spool(config)
    try:
        entries = spool.audit.entries(limit=limit, project=project, event=event)
    finally:
        spool.close()
    if json_out:
        print_json(entries)
        return
    table = Table("id", "at", "actor", "event", "project", "action", "detail", "hash")
    for entry in entries:
        # Text, not markup: actors and details come from requests and agents.
        table.add_row(
            *(
                Text(cell)
                for cell in (
                    str(entry.id),
                    entry.at.strftime("%Y-%m-%d %H:%M:%S"),
                    entry.actor or "",
                    entry.event,
                    entry.project or "",
                    "" if entry.action_id is None else str(entry.action_id),
                    json.dumps(entry.detail, ensure_ascii=False)[:80],
                    entry.hash[:12],
                )
            )
        )
    console.print(table)
