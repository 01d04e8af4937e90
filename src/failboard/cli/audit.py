"""``failboard audit verify`` and ``failboard audit list``: the hash-chained audit log."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from failboard.audit import GENESIS
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

app = typer.Typer(
    help="The tamper-evident audit log.", no_args_is_help=True, rich_markup_mode="markdown"
)


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
def verify(
    expect: Annotated[
        str | None,
        typer.Option(
            metavar="ID:HASH",
            help="Also require entry ID to still have HASH (a head recorded earlier, off-box).",
        ),
    ] = None,
    json_out: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """Check the whole chain; exit 1 naming the first bad entry. Prints the head hash: keep it
    somewhere else (monitoring, a log server) and pass it back with --expect to catch a rewrite
    of the whole chain."""
    anchor = _anchor(expect)
    spool = _spool(config)
    try:
        result = spool.audit.verify()
        # Entry 0 is the empty log's head: nothing to compare but the genesis hash.
        if result.ok and anchor is not None and anchor[0] > 0:
            entry = spool.audit.get(anchor[0])
            if entry is None or entry.hash != anchor[1]:
                found = "is gone" if entry is None else f"now has hash {entry.hash}"
                problem = (
                    f"expected hash {anchor[1]}, but the entry {found}: the chain was rewritten"
                )
                result = replace(result, ok=False, bad_id=anchor[0], problem=problem)
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
            f"TAMPERED: {_named(result.bad_id, result.problem)} ({result.checked} entries checked)",
            markup=False,
            soft_wrap=True,
        )
    if not result.ok:
        raise typer.Exit(1)


def _anchor(expect: str | None) -> tuple[int, str] | None:
    if expect is None:
        return None
    entry_id, _, digest = expect.partition(":")
    if not entry_id.isdigit() or len(digest) != 64:
        raise typer.BadParameter(
            "write ID:HASH, e.g. 1234:9c1f…(64 hex digits)", param_hint="--expect"
        )
    if int(entry_id) == 0 and digest != GENESIS:
        raise typer.BadParameter("entry 0 has the all-zero hash", param_hint="--expect")
    return int(entry_id), digest.lower()


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


def _named(bad_id: int | None, problem: str | None) -> str:
    # Most problems already start with "entry N"; don't say it twice.
    text = problem or "unknown problem"
    return text if text.startswith("entry ") else f"entry {bad_id}: {text}"
