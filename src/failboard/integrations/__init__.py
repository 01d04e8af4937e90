"""Recorders that projects install with one line, for engines that keep no queryable record of
their failed jobs (CONTRACT §6). Each writes every FINAL failure into failboard's failures table
(:mod:`failboard.failures`); the engine's driver reads it and re-sends from it.

- Celery: ``failboard.integrations.celery.install(app, url=DB_URL, project="billing")``
- Huey: ``failboard.integrations.huey.install(huey, url=DB_URL, project="reports")``
- arq: ``failboard.integrations.arq.install(WorkerSettings, url=DB_URL, project="mailer")``
- taskiq: ``broker.add_middlewares(FailboardMiddleware(url=DB_URL, project="shop"))`` from
  :mod:`failboard.integrations.taskiq`

Each module imports its engine only when installed, so importing this package costs nothing.
"""

from __future__ import annotations

__all__: list[str] = []
