"""The ``failboard`` command line (CONTRACT §4): Typer commands over the Board's functions."""

from __future__ import annotations

import typer

from failboard.cli import access, actions, audit, jobs, ops

__all__ = ["app", "main"]

app = typer.Typer(
    name="failboard",
    help="One dashboard, API and CLI for the failed jobs of all your projects.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    # Markdown, not Rich markup: help texts name config sections like [agent] and [[tokens]],
    # which Rich markup would swallow as style tags.
    rich_markup_mode="markdown",
)
app.add_typer(jobs.app, name="jobs")
app.add_typer(audit.app, name="audit")
ops.register(app)
actions.register(app)
access.register(app)


@app.command()
def demo(
    host: str = typer.Option("127.0.0.1", help="Address to serve on."),
    port: int = typer.Option(8000, help="Port to serve on (0 = any free port)."),
    data_dir: str = typer.Option(".failboard-demo", help="Where the demo keeps its databases."),
    serve: bool = typer.Option(
        True, help="Serve the dashboard after seeding (--no-serve: seed only)."
    ),
) -> None:
    """Embedded demo: SQLite spool + three Laravel-shaped projects with real failures."""
    from failboard.demo import run_demo

    run_demo(data_dir=data_dir, host=host, port=port, serve=serve)


def main() -> None:
    app()
