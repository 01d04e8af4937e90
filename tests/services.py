"""Real services for the tests: where they are, and fresh databases on them.

URLs come from the environment with the loopback defaults of the development machines. Outside CI
a missing service skips the test with a reason that says how to start it; under ``CI=true`` the
test fails instead, so a green CI run always means the services were really used.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

POSTGRES_URL = os.environ.get(
    "FAILBOARD_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
MYSQL_URL = os.environ.get("FAILBOARD_TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/test")
REDIS_URL = os.environ.get("FAILBOARD_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
RABBITMQ_URL = os.environ.get("FAILBOARD_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672//")

HOW_TO_START = {
    "postgres": "start it with: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main "
    "start (or set FAILBOARD_TEST_POSTGRES_URL)",
    "mysql": "start it with: start-stop-daemon --start --oknodo --background --exec "
    "/usr/sbin/mariadbd (or set FAILBOARD_TEST_MYSQL_URL)",
    "redis": "start it with: redis-server --daemonize yes --bind 127.0.0.1 --port 6379 "
    '--save "" --appendonly no (or set FAILBOARD_TEST_REDIS_URL)',
    "rabbitmq": "start it with: rabbitmq-server -detached && rabbitmqctl await_startup "
    "(or set FAILBOARD_TEST_RABBITMQ_URL)",
}

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def unavailable(kind: str, error: BaseException) -> None:
    """Skip (or, under CI, fail) because a service is missing."""
    message = f"{kind} is not reachable ({type(error).__name__}: {error}); {HOW_TO_START[kind]}"
    if IN_CI:
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def _server_url(kind: str) -> str:
    return POSTGRES_URL if kind == "postgres" else MYSQL_URL


@contextmanager
def fresh_database(kind: str) -> Iterator[str]:
    """A new, empty database on the real server (or a new SQLite file); dropped afterwards."""
    if kind == "sqlite":
        import tempfile

        with tempfile.TemporaryDirectory(prefix="failboard-test-") as folder:
            yield f"sqlite:///{folder}/test.db"
        return
    url = make_url(_server_url(kind))
    name = f"fb_test_{secrets.token_hex(6)}"
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT", pool_pre_ping=True)
    try:
        with admin.connect() as connection:
            connection.exec_driver_sql(f"CREATE DATABASE {name}")
    except sa.exc.OperationalError as exc:
        admin.dispose()
        unavailable(kind, exc)
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            if kind == "postgres":
                connection.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            else:
                connection.exec_driver_sql(f"DROP DATABASE IF EXISTS {name}")
        admin.dispose()
