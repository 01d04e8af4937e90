"""``failboard jobs list`` and ``failboard jobs show``."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from failboard.cli.common import (
    ConfigOption,
    JsonOption,
    console,
    err_console,
    handle_errors,
    open_board,
    print_json,
)
from failboard.models import JobQuery, to_utc

__all__ = ["app"]

app = typer.Typer(
    help="Read failed jobs across projects.", no_args_is_help=True, rich_markup_mode="markdown"
)


def _when(value: datetime | None) -> str:
    return to_utc(value).strftime("%Y-%m-%d %H:%M:%S") if value else ""


@app.command("list")
@handle_errors
def list_jobs(
    project: Annotated[
        list[str] | None, typer.Option("--project", "-p", help="Repeatable.")
    ] = None,
    queue: Annotated[str | None, typer.Option(help="Only this queue.")] = None,
    connection: Annotated[str | None, typer.Option(help="Only this connection.")] = None,
    name: Annotated[str | None, typer.Option(help="Only this job name.")] = None,
    exception: Annotated[str | None, typer.Option(help="Exception text contains.")] = None,
    search: Annotated[str | None, typer.Option("--search", "-s", help="Free text.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=500)] = 50,
    cursor: Annotated[str | None, typer.Option(help="Resume after a previous page.")] = None,
    oldest: Annotated[bool, typer.Option("--oldest", help="Oldest first.")] = False,
    json_out: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """Failed jobs, newest first, across projects."""
    query = JobQuery(
        projects=tuple(project or ()),
        queue=queue,
        connection=connection,
        name=name,
        exception=exception,
        q=search,
        limit=limit,
        order="oldest" if oldest else "newest",
    )
    with open_board(config) as board:
        page = board.list_jobs(query, cursor)
    if json_out:
        print_json(list(page.items))
        for error in page.errors:
            err_console.print(f"warning: project {error.project}: {error.error}", markup=False)
        return
    table = Table(show_lines=False, header_style="bold")
    # The id is what the next command needs: never cut it; squeeze the rest instead.
    width = max((len(job.id) for job in page.items), default=2)
    wide = console.width >= 130  # narrow terminals drop queue and job, never the id
    fixed = [12, width, 16] + ([12, 36] if wide else [])
    rest = max(12, console.width - sum(fixed) - 3 * (len(fixed) + 1) - 1)
    table.add_column("Project", no_wrap=True, max_width=12)
    table.add_column("ID", no_wrap=True, min_width=width)
    if wide:
        table.add_column("Queue", no_wrap=True, max_width=12)
        table.add_column("Job", no_wrap=True, max_width=36)
    table.add_column("Exception", no_wrap=True, overflow="ellipsis", max_width=rest)
    table.add_column("Failed at", no_wrap=True, min_width=16)
    for job in page.items:
        exc = Text(job.exception_class or "", style="bold red")
        if job.exception_message:
            exc.append(": " + job.exception_message[:80])
        # Text cells: queue and job names come from the stores and may hold "[...]".
        middle = [Text(job.queue or ""), Text(job.name or "")] if wide else []
        table.add_row(Text(job.project), Text(job.id), *middle, exc, _when(job.failed_at)[:16])
    console.print(table)
    for error in page.errors:
        err_console.print(f"[yellow]project {error.project} unreachable:[/] {escape(error.error)}")
    if page.next_cursor:
        console.print(f"more: --cursor {page.next_cursor}", style="dim")


@app.command("show")
@handle_errors
def show(
    project: Annotated[str, typer.Argument(help="Project key.")],
    job_id: Annotated[str, typer.Argument(help="The job's id (uuid for Laravel).")],
    json_out: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """One failed job in full: fields, exception with traceback, payload."""
    with open_board(config) as board:
        job = board.get_job(project, job_id)
    if json_out:
        print_json(job)
        return
    table = Table(show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column()
    for label, value in (
        ("project", job.project),
        ("id", job.id),
        ("uuid", job.uuid),
        ("connection", job.connection),
        ("queue", job.queue),
        ("job", job.name),
        ("attempts", job.attempts),
        ("max tries", job.max_tries),
        ("failed at", _when(job.failed_at)),
        ("exception", job.exception_class),
        ("message", job.exception_message),
        ("fingerprint", job.fingerprint),
    ):
        table.add_row(label, Text("" if value is None else str(value)))
    console.print(table)
    console.rule("exception")
    console.print(Text(job.exception or ""))
    console.rule("payload")
    payload = job.payload
    text = (
        payload if isinstance(payload, str) else json.dumps(payload, indent=2, ensure_ascii=False)
    )
    console.print(Text(text or ""))
