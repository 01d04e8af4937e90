"""Commands that write spool actions (``retry``, ``delete``, ``prune``) and read them back."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table
from rich.text import Text

from failboard.board import Board
from failboard.cli.common import (
    ConfigOption,
    JsonOption,
    console,
    handle_errors,
    open_board,
    print_json,
)
from failboard.models import Action, ActionKind, ActionStatus, to_utc

__all__ = ["register"]

WaitOption = Annotated[
    bool, typer.Option("--wait", "-w", help="Follow the action until an agent finishes it.")
]
ByOption = Annotated[
    str | None, typer.Option("--by", help="Who asks (recorded on the action).", show_default=False)
]


def _requester(by: str | None) -> str:
    import getpass

    return f"cli:{by or getpass.getuser()}"


def _when(value: datetime | None) -> str:
    return to_utc(value).strftime("%Y-%m-%d %H:%M:%S") if value else ""


def _submitted(board: Board, action: Action, json_out: bool, wait: bool) -> None:
    if wait:
        action = _follow(board, action)
    if json_out:
        print_json(action)
        return
    if not wait:
        console.print(f"action {action.id}: {action.action} on {action.project} — {action.status}")
        console.print(f"follow it with: failboard action {action.id} --wait", style="dim")
    else:
        _print_outcome(action)
    if wait and action.status == ActionStatus.FAILED:
        raise typer.Exit(1)


def _follow(board: Board, action: Action, poll: float = 0.5) -> Action:
    """Poll the spool and draw a progress bar until the action is finished."""
    with Progress(
        TextColumn("[bold]action {task.fields[id]}[/] {task.fields[status]}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task("", total=None, id=action.id, status=action.status.value)
        while not action.status.finished:
            time.sleep(poll)
            action = board.action(action.id)
            bar.update(
                task,
                completed=action.progress.done,
                total=action.progress.total,
                status=action.status.value,
            )
    return action


def _print_outcome(action: Action) -> None:
    style = "green" if action.status == ActionStatus.COMPLETED else "red"
    console.print(f"action {action.id}: [{style}]{action.status}[/]")
    if action.result is not None:
        r = action.result
        console.print(f"  succeeded {r.succeeded} · missing {r.missing} · failed {r.failed}")
    if action.error:
        console.print(f"  error: {action.error}", style="red", markup=False)


def retry(
    project: Annotated[str, typer.Argument(help="Project key.")],
    job_ids: Annotated[list[str] | None, typer.Argument(help="Job ids to retry.")] = None,
    queue: Annotated[
        str | None, typer.Option("--queue", help="Retry every failed job of this queue.")
    ] = None,
    all_queues: Annotated[
        bool, typer.Option("--all-queues", help="Retry every failed job of every queue.")
    ] = False,
    idempotency_key: Annotated[
        str | None, typer.Option(help="Same key twice = one action.")
    ] = None,
    by: ByOption = None,
    wait: WaitOption = False,
    json_out: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """Ask the project's agent to retry jobs: by id, a whole queue, or every queue.

    A queue retry touches only jobs that failed before this moment."""
    chosen = sum((bool(job_ids), queue is not None, all_queues))
    if chosen != 1:
        raise typer.BadParameter("give job ids, or --queue Q, or --all-queues (exactly one)")
    with open_board(config) as board:
        params: dict[str, Any]
        if job_ids:
            kind, params = ActionKind.RETRY, {"job_ids": job_ids}
        else:
            kind = ActionKind.RETRY_QUEUE
            params = {"queue": queue, "failed_before": board.spool.now()}
        action = board.submit(
            project, kind, params, requested_by=_requester(by), idempotency_key=idempotency_key
        )
        _submitted(board, action, json_out, wait)


def delete(
    project: Annotated[str, typer.Argument(help="Project key.")],
    job_ids: Annotated[list[str], typer.Argument(help="Job ids to delete.")],
    idempotency_key: Annotated[
        str | None, typer.Option(help="Same key twice = one action.")
    ] = None,
    by: ByOption = None,
    wait: WaitOption = False,
    json_out: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """Ask the project's agent to forget failed jobs."""
    with open_board(config) as board:
        action = board.submit(
            project,
            ActionKind.DELETE,
            {"job_ids": job_ids},
            requested_by=_requester(by),
            idempotency_key=idempotency_key,
        )
        _submitted(board, action, json_out, wait)


def prune(
    project: Annotated[str, typer.Argument(help="Project key.")],
    hours: Annotated[float, typer.Option("--hours", help="Delete failures older than this.")],
    by: ByOption = None,
    wait: WaitOption = False,
    json_out: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """Ask the project's agent to delete failures older than N hours."""
    if not hours > 0:
        raise typer.BadParameter("--hours must be more than 0")
    with open_board(config) as board:
        action = board.submit(
            project, ActionKind.PRUNE, {"hours": hours}, requested_by=_requester(by)
        )
        _submitted(board, action, json_out, wait)


def actions(
    project: Annotated[str | None, typer.Option("--project", "-p")] = None,
    status: Annotated[ActionStatus | None, typer.Option("--status")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
    json_out: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """The spool, newest first."""
    with open_board(config) as board:
        rows = board.actions(project=project, status=status, limit=limit)
    if json_out:
        print_json(rows)
        return
    table = Table(header_style="bold")
    wide = console.width >= 130
    for column in ("ID", "Project", "Action", "Status", "Progress", "Result"):
        table.add_column(column, no_wrap=True)
    extra = ("Requested by", "Agent", "Created", "Error") if wide else ("Error",)
    for column in extra:
        table.add_column(column, no_wrap=True, overflow="ellipsis")
    for a in rows:
        result = ""
        if a.result is not None:
            r = a.result
            result = f"{r.succeeded} ok, {r.missing} missing, {r.failed} failed"
        total = a.progress.total if a.progress.total is not None else "?"
        more = [a.requested_by or "", a.claimed_by or "", _when(a.created_at)] if wide else []
        # Text cells: who asked, the agent and the error are free text ("[...]" is not markup).
        table.add_row(
            str(a.id),
            a.project,
            a.action.value,
            a.status.value,
            f"{a.progress.done}/{total}",
            result,
            *map(Text, more),
            Text((a.error or "")[:80]),
        )
    console.print(table)


def action(
    action_id: Annotated[int, typer.Argument(help="Action id.")],
    wait: WaitOption = False,
    json_out: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """One action; with --wait, follow it until it is finished."""
    with open_board(config) as board:
        found = board.action(action_id)
        if wait:
            found = _follow(board, found)
    if json_out:
        print_json(found)
        return
    details: dict[str, Any] = found.model_dump(mode="json")
    for key in (
        "id",
        "project",
        "action",
        "params",
        "status",
        "requested_by",
        "created_at",
        "claimed_by",
        "claimed_at",
        "finished_at",
        "attempts",
        "progress",
        "result",
        "error",
    ):
        value = escape(str(details.get(key)))
        console.print(f"[bold]{key}[/]: {value}", markup=True, highlight=False)


def cancel(
    action_id: Annotated[int, typer.Argument(help="Action id.")],
    by: ByOption = None,
    json_out: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """Cancel an action that no agent has claimed yet."""
    with open_board(config) as board:
        done = board.cancel(action_id, by=_requester(by))
    if json_out:
        print_json(done)
    else:
        console.print(f"action {done.id}: {done.status}")


def register(app: typer.Typer) -> None:
    for command in (retry, delete, prune, actions, action, cancel):
        app.command(command.__name__)(handle_errors(command))
