"""Commands that run things: ``serve``, ``agent``, ``process-spool``, ``migrate``, ``check``,
``search-index``, ``new-token``."""

from __future__ import annotations

import faulthandler
import logging
import signal
import sys
import threading
import time
from types import FrameType
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from failboard import auth
from failboard.agent import Agent
from failboard.cli.common import ConfigOption, console, err_console, handle_errors, settings_from
from failboard.config import ProjectSettings, Settings
from failboard.drivers import registry, trigram
from failboard.exceptions import (
    ConfigError,
    FailboardError,
    InvalidRequest,
    SpoolUnreachable,
    StoreError,
)
from failboard.models import JobQuery
from failboard.spool import AgentSpool, Spool

if TYPE_CHECKING:
    import sqlalchemy as sa

__all__ = ["register", "run_server"]


def _logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # The HTTP agent's client logs every request at INFO: a line per heartbeat is noise.
    logging.getLogger("httpx2").setLevel(logging.DEBUG if verbose else logging.WARNING)


def run_server(settings: Settings, host: str, port: int, *, unsafe_no_auth: bool = False) -> None:
    """Serve the dashboard (and the inline agents) until interrupted."""
    import uvicorn

    from failboard.web import create_app
    from failboard.web.security import is_loopback, warn_plain_cookies

    if not is_loopback(host) and not unsafe_no_auth and not _auth_configured(settings):
        # Fail closed: without users, tokens or a trusted proxy everyone would be an admin.
        raise ConfigError(
            f"refusing to listen on {host}: no sign-in is configured, so only this machine may "
            "connect; add [[users]] or [[tokens]] or [server] proxy_user_header (see "
            "docs/security.md), or pass --unsafe-no-auth if you really mean it"
        )
    warn_plain_cookies(settings, host)
    app = create_app(settings)
    # proxy_headers off: the trusted-proxy check must see the real TCP peer, never an address
    # a client wrote into X-Forwarded-For.
    uvicorn.run(app, host=host, port=port, log_level="info", access_log=False, proxy_headers=False)


def _auth_configured(settings: Settings) -> bool:
    return bool(settings.users or settings.tokens or settings.server.proxy_user_header)


def serve(
    host: Annotated[str | None, typer.Option(help="Address (default [server] host).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default [server] port).")] = None,
    unsafe_no_auth: Annotated[
        bool, typer.Option("--unsafe-no-auth", help="Allow a non-loopback address without auth.")
    ] = False,
    config: ConfigOption = None,
) -> None:
    """The central dashboard and API."""
    settings = settings_from(config)
    _logging()
    Spool.from_settings(settings.spool).ensure_ready()
    run_server(
        settings,
        host or settings.server.host,
        port if port is not None else settings.server.port,
        unsafe_no_auth=unsafe_no_auth,
    )


def _agent_spool(settings: Settings) -> AgentSpool:
    """HTTP mode when ``[agent]`` names a dashboard and a token (no spool credentials needed);
    otherwise the spool database of ``[spool]``, checked to be at the expected schema."""
    server, token = settings.agent.server, settings.agent.token
    if server or token:
        if not (server and token):
            missing = "token" if server else "server"
            raise ConfigError(
                f"{settings.source}: agent.{missing} is missing: HTTP mode needs both "
                "server (the dashboard's URL) and token (an agent token, see failboard new-token)"
            )
        from failboard.agentclient import AgentClient

        return AgentClient(server, token)
    spool = Spool.from_settings(settings.spool)
    try:
        spool.ensure_ready(agent=True)
    except FailboardError:
        spool.close()
        raise
    return spool


def _agent(settings: Settings, project_key: str, limit: int | None) -> Agent:
    project = settings.project(project_key)
    return Agent(
        _agent_spool(settings),
        project.key,
        lambda: registry.make_executor(project, settings.agent.batch_size),
        limit=limit or settings.agent.limit,
        grace_seconds=settings.agent.grace_seconds,
    )


def agent(
    project: Annotated[str, typer.Option("--project", "-p", help="The project this agent serves.")],
    limit: Annotated[int | None, typer.Option(min=1, help="Actions claimed at a time.")] = None,
    once: Annotated[bool, typer.Option("--once", help="One pass, then exit.")] = False,
    interval: Annotated[float | None, typer.Option(min=0.1, help="Seconds between polls.")] = None,
    config: ConfigOption = None,
) -> None:
    """Claim and run this project's actions. Loops until SIGTERM/SIGINT unless --once.

    Direct mode with [spool]; HTTP mode (through the dashboard) with [agent] server and token."""
    settings = settings_from(config)
    _logging()
    poll = interval or settings.agent.interval_seconds
    stopping = threading.Event()
    worker: Agent | None = None

    def stop(signum: int, _frame: FrameType | None) -> None:
        logging.getLogger("failboard.agent").info(
            "%s: finishing the action in hand, then stopping", signal.Signals(signum).name
        )
        stopping.set()
        if worker is not None:
            worker.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    # `kill -USR1 <pid>` prints every thread's stack to stderr: how to see where a stuck agent
    # is, without stopping it.
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    worker = _agent_when_ready(settings, project, limit, stopping, None if once else poll)
    if worker is None:
        return  # stopped while waiting for the spool
    if stopping.is_set():
        worker.stop()  # the signal came while the agent was being made
    try:
        if once:
            handled = worker.run_once()
            err_console.print(f"{handled} action(s) handled")
        else:
            worker.run(poll)
    finally:
        worker.close()
        worker.spool.close()


def _agent_when_ready(
    settings: Settings,
    project: str,
    limit: int | None,
    stopping: threading.Event,
    poll: float | None,
) -> Agent | None:
    """The agent, once its spool answers; None if stopped before. A looping agent (``poll``)
    started while the spool cannot be reached — a host that boots its agents before the
    database, a spool failing over — waits for it, as a running agent rides out an outage,
    instead of exiting. ``--once`` (cron) exits at once, and so does any agent whose spool
    answers wrongly (schema missing or outdated: that needs a person, not patience)."""
    delay = min(max(poll or 0.0, 1.0), 30.0)
    while True:
        try:
            return _agent(settings, project, limit)
        except SpoolUnreachable as exc:
            if poll is None:
                raise
            logging.getLogger("failboard.agent").warning(
                "spool unreachable at start, trying again in %.0f s: %s", delay, exc
            )
        if stopping.wait(delay):
            return None


def process_spool(
    project: Annotated[str, typer.Option("--project", "-p", help="The project to process.")],
    limit: Annotated[int | None, typer.Option(min=1, help="Actions claimed at a time.")] = None,
    config: ConfigOption = None,
) -> None:
    """Same as `agent --once` (cron-friendly; the seed's name)."""
    agent(project=project, limit=limit, once=True, interval=None, config=config)


def migrate(
    failures: Annotated[
        bool,
        typer.Option(
            "--failures",
            help="Also create the failures table of every recorder project (celery, ...).",
        ),
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Create or upgrade the spool schema (idempotent)."""
    settings = settings_from(config)
    spool = Spool.from_settings(settings.spool)
    try:
        spool.migrate()
        console.print(f"spool schema at revision {spool.current_revision()}")
    finally:
        spool.close()
    if failures:
        _migrate_failures(settings)


def _migrate_failures(settings: Settings) -> None:
    from failboard.db import create_engine, redact_url, translate_errors
    from failboard.failures import RecorderOptions, create_failures_table

    done: set[tuple[str, str]] = set()
    for project in settings.projects:
        options = project.options
        if not isinstance(options, RecorderOptions):
            continue
        if (project.url, options.table) in done:
            continue  # projects sharing one table: made once
        done.add((project.url, options.table))
        engine = create_engine(project.url, timeout=10.0, what=f"project {project.key}")
        try:
            with translate_errors(f"project {project.key}", project.url):
                create_failures_table(engine, options.table)
        finally:
            engine.dispose()
        console.print(
            f"failures table {options.table} ready in {redact_url(project.url)}",
            markup=False,
            highlight=False,
        )
    if not done:
        err_console.print("no project uses a recorder driver (celery, ...): no failures table")


def check(config: ConfigOption = None) -> None:
    """Validate the config and reach every store and the spool; exit 1 if any fails."""
    settings = settings_from(config)
    console.print(f"[green]ok[/]   config {settings.source}")
    failures = 0
    spool = Spool.from_settings(settings.spool)
    try:
        spool.ensure_ready()
        console.print(f"[green]ok[/]   spool (revision {spool.current_revision()})")
    except FailboardError as exc:
        failures += 1
        console.print(f"[red]FAIL[/] spool: {escape(exc.message)}", soft_wrap=True)
    finally:
        spool.close()
    for project in settings.projects:
        try:
            reader = registry.make_reader(project, settings.server.store_timeout_seconds)
            try:
                reader.ping()
                count = reader.count(JobQuery(), 10_000)
            finally:
                reader.close()
            console.print(f"[green]ok[/]   {project.key} ({project.driver}): {count} failed jobs")
        except FailboardError as exc:
            failures += 1
            console.print(
                f"[red]FAIL[/] {project.key} ({project.driver}): {escape(exc.message)}",
                soft_wrap=True,
            )
    if failures:
        raise typer.Exit(1)


def search_index(
    project: Annotated[
        str, typer.Option("--project", "-p", help="The project whose search to index.")
    ],
    apply: Annotated[
        bool, typer.Option("--apply", help="Create the indexes now (default: print the SQL).")
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Trigram indexes that make free-text search fast on PostgreSQL (docs/search.md).

    Prints the SQL (to run as the table's owner, outside a transaction block), or runs it with
    --apply: CREATE INDEX CONCURRENTLY, so the application goes on writing meanwhile."""
    settings = settings_from(config)
    chosen = settings.project(project)
    table, columns = _search_target(chosen)
    if not apply:
        statements = [trigram.EXTENSION_SQL] + [trigram.index_sql(table, c) for c in columns]
        # One statement a line, never wrapped: the output is meant for psql as it is.
        console.print("\n".join(f"{sql};" for sql in statements), markup=False, soft_wrap=True)
        err_console.print(
            f"run it with psql as the table's owner, or: failboard search-index --project "
            f"{chosen.key} --apply",
            style="dim",
            markup=False,
            soft_wrap=True,
        )
        return
    _create_search_indexes(chosen, table, columns)


def _search_target(project: ProjectSettings) -> tuple[sa.Table, tuple[str, ...]]:
    """The table a project's search reads and its searched columns; InvalidRequest, in one line,
    for a project whose search no trigram index can serve."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    from failboard.drivers.dramatiq.options import Options as DramatiqOptions
    from failboard.drivers.laravel import Options as LaravelOptions
    from failboard.drivers.laravel.reader import SEARCHED as LARAVEL_SEARCHED
    from failboard.drivers.laravel.schema import failed_jobs_table
    from failboard.failures import RecorderOptions, failures_table
    from failboard.failures.reader import SEARCHED as FAILURES_SEARCHED

    what = f"search-index: project {project.key}"
    options = project.options
    target: tuple[sa.Table, tuple[str, ...]]
    if isinstance(options, LaravelOptions) and options.horizon_source != "horizon":
        target = failed_jobs_table(options.table), LARAVEL_SEARCHED
    elif isinstance(options, RecorderOptions) or (
        isinstance(options, DramatiqOptions) and options.broker == "rabbitmq"
    ):
        target = failures_table(options.table), FAILURES_SEARCHED
    else:
        raise InvalidRequest(
            f"{what} ({project.driver}) is not searched in a SQL table; trigram indexes serve "
            "the laravel driver's failed_jobs table and failboard's failures table"
        )
    try:
        backend = make_url(project.url).get_backend_name()
    except ArgumentError:
        raise ConfigError(f"{what}: its url is not a database URL") from None
    if backend != "postgresql":
        name = {"mysql": "MySQL/MariaDB", "mariadb": "MariaDB", "sqlite": "SQLite"}
        raise InvalidRequest(
            f"{what} is on {name.get(backend, backend)}; trigram indexes are a PostgreSQL feature"
        )
    return target


def _create_search_indexes(
    project: ProjectSettings, table: sa.Table, columns: tuple[str, ...]
) -> None:
    from sqlalchemy.exc import DBAPIError

    from failboard.db import create_engine, translate_errors

    what = f"project {project.key}"
    started = time.perf_counter()
    engine = create_engine(project.url, timeout=10.0, what=what)
    created = 0
    try:
        with (
            translate_errors(what, project.url),
            engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection,
        ):
            # A build takes minutes on a large table: a role's default statement_timeout,
            # meant for the application's queries, must not cancel it half-way.
            connection.exec_driver_sql("SET statement_timeout = 0")
            step = trigram.EXTENSION_SQL
            try:
                connection.exec_driver_sql(step)
                for column in columns:
                    step = trigram.index_sql(table, column)
                    built = trigram.create_index(connection, table, column)
                    created += 1 if built.created else 0
                    console.print(_built_line(built), markup=False, soft_wrap=True)
            except DBAPIError as exc:
                raise StoreError(
                    f"search-index: {what}: {step} failed: {_db_message(exc)}; run the SQL that "
                    f"failboard search-index --project {project.key} prints as a superuser or "
                    "the table's owner"
                ) from exc
            except StoreError as exc:
                raise StoreError(f"search-index: {what}: {exc.message}") from exc
    finally:
        engine.dispose()
    if not created:
        console.print(f"nothing to do: {project.key}'s search is indexed already", markup=False)
        return
    console.print(
        f"{created} index(es) made in {time.perf_counter() - started:.1f} s; a running "
        "failboard serve searches with them once restarted (its readers look once)",
        markup=False,
        soft_wrap=True,
    )


def _built_line(built: trigram.Built) -> str:
    if not built.created:
        return f"exists  {built.column}: a trigram index serves it already"
    size = f", {built.size / 2**20:.1f} MB" if built.size is not None else ""
    return f"created {built.name} on {built.column} in {built.seconds:.1f} s{size}"


def _db_message(exc: BaseException) -> str:
    """The database's own words: its message and, where it gave one, its hint."""
    orig = getattr(exc, "orig", None) or exc
    diag = getattr(orig, "diag", None)
    primary = getattr(diag, "message_primary", None) or str(orig).strip().splitlines()[0]
    hint = getattr(diag, "message_hint", None)
    return f"{primary} ({hint})" if hint else str(primary)


def new_token() -> None:
    """Print a new random token and its sha256 for [[tokens]]."""
    token, digest = auth.new_token()
    console.print(f"token:  {token}\nsha256: {digest}", markup=False, highlight=False)
    err_console.print("keep the token secret; put only the sha256 in failboard.toml", style="dim")


def register(app: typer.Typer) -> None:
    app.command()(handle_errors(serve))
    app.command()(handle_errors(agent))
    app.command("process-spool")(handle_errors(process_spool))
    app.command()(handle_errors(migrate))
    app.command()(handle_errors(check))
    app.command("search-index")(handle_errors(search_index))
    app.command("new-token")(handle_errors(new_token))
