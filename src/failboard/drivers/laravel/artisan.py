"""``executor = "artisan"``: the agent runs the application's own ``php artisan`` commands.

For teams that want Laravel itself to push (custom queue connectors, encrypted jobs whose
``retryUntil()`` must really run, Horizon's own listeners):

- ``retry``        → ``php artisan queue:retry <uuid> <uuid> …`` (a batch per command);
- ``delete``       → ``php artisan queue:forget <uuid>``, or ``horizon:forget <uuid>`` with
  ``horizon = true`` (both take one id);
- ``retry_queue``  → ``queue:retry <uuid> …`` over the uuids of that queue that failed at or
  before the click, in batches. Never ``queue:retry all`` (which ignores ``--queue`` and loads
  every row: laravel/framework #33874) and not ``--queue=Q`` either, which would also retry
  whatever failed on Q after the operator asked, and loads every id of the table at once;
- ``prune``        → ``php artisan queue:prune-failed --hours=N``, N = the age asked for in
  whole hours (the nearest one; rows the rounding leaves in scope are reported as failed).

An exit code of 0 proves little: ``queue:retry`` exits 0 even when it found nothing ("Unable to
find failed job with ID […]"). So every command is judged three ways — its exit code, its
output, and the ``failed_jobs`` table before and after (read-only queries): a job counts as
retried or deleted only when its row is gone; "Unable to find failed job" / "No failed job
matches" is ``missing``; a job whose row is still there is ``failed`` with the command's output
as the reason. Each command runs under ``artisan_timeout`` seconds.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from failboard.db import create_engine
from failboard.drivers import sqltable
from failboard.drivers.base import Progress, ResultTally, no_progress
from failboard.drivers.laravel.options import CAPABILITIES, Options
from failboard.drivers.laravel.store import FailedJobsStore, FailedTable
from failboard.exceptions import StoreError
from failboard.models import ActionResult

__all__ = ["ARGS_PER_COMMAND", "ArtisanExecutor", "CommandResult"]

ARGS_PER_COMMAND = 100
"""Uuids per ``queue:retry``: far below any argv limit, and a lost command costs little."""
OUTPUT_KEPT = 600
"""Characters of a command's output kept in an action's error."""

_NOT_FOUND = ("Unable to find failed job", "No failed job matches")


class CommandResult:
    """What one ``php artisan`` run said."""

    def __init__(self, argv: Sequence[str], code: int | None, output: str, timed_out: bool):
        self.argv = list(argv)
        self.code = code
        self.output = output
        self.timed_out = timed_out

    @property
    def command(self) -> str:
        return " ".join(["php artisan", *self.argv[:1]])

    def not_found(self, job_id: str) -> bool:
        """Whether the output says ``job_id`` was not there."""
        for line in self.output.splitlines():
            if any(marker in line for marker in _NOT_FOUND) and (
                f"[{job_id}]" in line or len(self.argv) == 2
            ):
                return True
        return False

    def reason(self) -> str:
        if self.timed_out:
            head = f"{self.command} timed out"
        elif self.code is None:
            head = f"{self.command} could not start"
        else:
            head = f"{self.command} exited {self.code}"
        text = " ".join(self.output.split())
        if len(text) > OUTPUT_KEPT:
            text = "…" + text[-OUTPUT_KEPT:]
        return f"{head}: {text}" if text else head


Runner = Callable[[Sequence[str]], CommandResult]


class ArtisanExecutor:
    """The Executor (see :class:`failboard.drivers.base.Executor`) that runs ``php artisan``."""

    capabilities = CAPABILITIES

    def __init__(
        self,
        project: str,
        url: str,
        options: Options,
        *,
        batch_size: int = 1_000,
        engine: Engine | None = None,
        clock: Callable[[], float] = time.time,
        runner: Runner | None = None,
    ) -> None:
        if options.artisan is None:  # Options refuses this already; a clear line if not
            raise StoreError(f"project {project}: executor = 'artisan' needs artisan = <path>")
        self.project = project
        self.options = options
        self.batch_size = max(1, min(batch_size, ARGS_PER_COMMAND))
        self._clock = clock
        self._run = runner or self._subprocess
        if engine is None:
            engine = create_engine(url, timeout=30.0, what=f"project {project}")
        self._store = FailedJobsStore(project, url, options, engine)

    # -- Executor --------------------------------------------------------------------------

    def retry(self, job_ids: Sequence[str], progress: Progress = no_progress) -> ActionResult:
        keys = sqltable.unique(job_ids)
        tally = ResultTally()
        for batch in sqltable.chunks(keys, self.batch_size):
            self._retry_batch(tally, batch)
            progress(tally.done, len(keys))
        return tally.result()

    def delete(self, job_ids: Sequence[str], progress: Progress = no_progress) -> ActionResult:
        keys = sqltable.unique(job_ids)
        command = "horizon:forget" if self.options.horizon else "queue:forget"
        tally = ResultTally()
        for key in keys:
            result = self._run([command, key])
            gone = not self._present([key])
            if result.code == 0 and gone:
                tally.succeeded += 1
            elif result.not_found(key) and gone:
                tally.missing += 1
            else:
                tally.fail(key, result.reason())
            progress(tally.done, len(keys))
        return tally.result()

    def retry_queue(
        self, queue: str | None, failed_before: datetime, progress: Progress = no_progress
    ) -> ActionResult:
        store = self._store
        tally = ResultTally()
        with store.errors():
            t = store.table()
            if not t.has_uuid:
                raise StoreError(
                    f"{store.what}: queue:retry by queue needs the uuid column (Laravel 8+)"
                )
            scope = [t.c.failed_at <= store.to_store(failed_before)]
            if queue is not None:
                scope.append(t.c.queue == queue)
        for ids in store.newest_first(scope, self.batch_size):
            with store.errors(), store.engine.connect() as connection:
                uuids = [
                    str(u)
                    for u in connection.execute(
                        sa.select(t.c.uuid).where(t.c.id.in_(ids)).order_by(t.c.id.desc())
                    ).scalars()
                    if u
                ]
            self._retry_batch(tally, uuids)
            progress(tally.done, None)
        return tally.result()

    def prune(self, older_than: datetime, progress: Progress = no_progress) -> ActionResult:
        store = self._store
        tally = ResultTally()
        age = self._clock() - older_than.astimezone(UTC).timestamp()
        # The operator asked "older than N hours" when the action was made; the agent runs a
        # little later. The nearest whole hour is N again for any delay under half an hour.
        hours = max(0, round(age / 3600))
        with store.errors():
            t = store.table()
            scope = [t.c.failed_at < store.to_store(older_than)]
            before = self._count(t, scope)
        result = self._run(["queue:prune-failed", f"--hours={hours}"])
        with store.errors():
            after = self._count(t, scope)
        tally.succeeded = max(0, before - after)
        if result.code != 0:
            tally.fail("*", result.reason(), count=after or 1)
        elif after:
            # Whole hours only: rows between the asked moment and the rounded one remain.
            tally.fail("*", f"{after} left: --hours={hours} keeps them ({result.reason()})", after)
        progress(tally.done, before)
        return tally.result()

    def close(self) -> None:
        self._store.close()

    # -- helpers ---------------------------------------------------------------------------

    def _retry_batch(self, tally: ResultTally, keys: list[str]) -> None:
        if not keys:
            return
        present = self._present(keys)
        for key in keys:
            if key not in present:
                tally.missing += 1  # not there before we started: never sent to artisan
        asked = [key for key in keys if key in present]
        if not asked:
            return
        result = self._run(["queue:retry", *asked])
        still = self._present(asked)
        for key in asked:
            if result.not_found(key):
                tally.missing += 1  # gone before artisan looked: someone else's doing
            elif key not in still:
                tally.succeeded += 1
            else:
                tally.fail(key, result.reason())

    def _present(self, keys: list[str]) -> set[str]:
        """Which of ``keys`` (uuids or numeric ids) still have a failed_jobs row."""
        store = self._store
        with store.errors(), store.engine.connect() as connection:
            t = store.table(connection)
            columns = [t.c.id, t.c.uuid] if t.has_uuid else [t.c.id]
            rows = connection.execute(sa.select(*columns).where(t.key_filter(keys))).all()
        found: set[str] = set()
        for row in rows:
            found.update(t.keys_of(row))
        return found & set(keys)

    def _count(self, t: FailedTable, scope: list[Any]) -> int:
        with self._store.engine.connect() as connection:
            value = connection.execute(
                sa.select(sa.func.count()).select_from(t.table).where(*scope)
            ).scalar()
        return int(value or 0)

    def _subprocess(self, argv: Sequence[str]) -> CommandResult:
        """``php artisan <argv>`` in the application's directory, output captured, under the
        timeout; a timed-out command is killed (with its children: it runs in its own group)."""
        artisan = self.options.artisan or "artisan"
        command = [self.options.php, artisan, *argv, "--no-interaction", "--no-ansi"]
        try:
            process = subprocess.Popen(
                command,
                cwd=os.path.dirname(os.path.abspath(artisan)),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        except OSError as exc:
            return CommandResult(argv, None, f"{type(exc).__name__}: {exc}", False)
        try:
            out, _ = process.communicate(timeout=self.options.artisan_timeout)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(process.pid, 9)
            except ProcessLookupError:  # pragma: no cover - it ended just then
                pass
            out, _ = process.communicate()
            return CommandResult(argv, process.returncode, out.decode("utf-8", "replace"), True)
        return CommandResult(argv, process.returncode, out.decode("utf-8", "replace"), False)
