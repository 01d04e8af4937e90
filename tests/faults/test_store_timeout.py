"""A project's store is slow (5 s of latency at a loopback proxy) or unreachable: the job list
answers within the store timeout, that project named in ``errors``, the others intact. Once for
SQL stores (Laravel on PostgreSQL), once for Redis ones (RQ, Dramatiq, Laravel Horizon)."""

from __future__ import annotations

import re
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from httpx2 import Response

from failboard.config import parse_settings
from failboard.drivers import registry
from failboard.drivers.laravel.horizon import php_microtime
from failboard.drivers.laravel.payload import build_payload, php_json_encode
from failboard.exceptions import FailboardError
from failboard.models import JobQuery
from failboard.web import create_app
from tests.dramatiq_support import plant_dead_letter
from tests.faults.proxy import Proxy
from tests.faults.support import ProxyOn, refused_port, seed, wait_until
from tests.rq_jobs import fresh_prefix, plant
from tests.services import REDIS_URL, fresh_database

STORE_TIMEOUT = 1.0
# The answer may take the timeout plus the merge and the HTTP round trip on a loaded machine
# (CI shares 2 cores with the services). A query through the proxy costs at least twice the
# latency, 10 s, so a bound of 3.5 s still tells "cut at the timeout" from "waited for it".
MARGIN = 2.5
LATENCY = 5.0
# A Redis database no other test or bench uses (8-14 are taken): keys are still per-test prefixes.
REDIS_DB = 15


def test_a_slow_or_unreachable_store_is_marked_and_the_others_answer(tmp_path: Path) -> None:
    with (
        fresh_database("postgres") as url,
        Proxy.for_url(url, latency=LATENCY) as slow,
        Proxy.for_url(url) as down,
    ):
        seed(url, 20)
        down.cut()
        # Three projects over the same tables, each by its own path: only the path differs.
        settings = parse_settings(
            f'[spool]\nurl = "sqlite:///{tmp_path}/spool.db"\n'
            f"[server]\nstore_timeout_seconds = {STORE_TIMEOUT}\n"
            f'[[projects]]\nkey = "fast"\ndriver = "laravel"\nurl = "{url}"\n'
            f'[[projects]]\nkey = "slow"\ndriver = "laravel"\nurl = "{slow.url(url)}"\n'
            f'[[projects]]\nkey = "down"\ndriver = "laravel"\nurl = "{down.url(url)}"\n',
            environ={},
        )
        app = create_app(settings, inline=False)
        app.state.board.spool.migrate()
        timings: list[float] = []
        with TestClient(app) as web:
            # Twice: the second time the first request's reads of the slow store still hang
            # in their threads, and must not hold this one up either.
            for _ in range(2):
                started = time.monotonic()
                response = web.get("/api/v1/jobs")
                timings.append(time.monotonic() - started)
                assert response.status_code == 200
                body = response.json()
                assert {j["project"] for j in body["items"]} == {"fast"}
                assert len(body["items"]) == 20
                errors = {e["project"]: e["error"] for e in body["errors"]}
                assert set(errors) == {"slow", "down"}
                assert errors["slow"] == f"timed out after {STORE_TIMEOUT:g} s"
                assert "cannot connect" in errors["down"]

            started = time.monotonic()
            projects = {p["key"]: p for p in web.get("/api/v1/projects").json()}
            timings.append(time.monotonic() - started)
            assert projects["fast"]["status"] == "ok" and projects["fast"]["failed_count"] == 20
            assert projects["slow"]["status"] == "unreachable"
            assert projects["down"]["status"] == "unreachable"

            # The store recovers: so does its project, with no restart.
            slow.latency = 0.0
            down.restore()

            def whole() -> bool:
                body = web.get("/api/v1/jobs", params={"limit": 100}).json()
                return body["errors"] == [] and len(body["items"]) == 60

            recovered = wait_until(whole, 30, "the slow and the down project to answer again")
        print(
            f"\nstore timeout {STORE_TIMEOUT:g} s, one store {LATENCY:g} s slow, one down: "
            f"answers in {', '.join(f'{t:.2f}' for t in timings)} s; "
            f"whole again {recovered:.1f} s after the stores recovered"
        )
        assert max(timings) <= STORE_TIMEOUT + MARGIN


def _plant_horizon(client: Any, prefix: str, count: int, now: datetime) -> None:
    """``count`` failed jobs in Horizon's records as ``RedisJobRepository::failed`` leaves them
    (see tests/integration/test_laravel_horizon.py)."""
    pipe = client.pipeline()
    for i in range(count):
        job_id = str(uuid.uuid4())
        at = now.timestamp() - i
        payload = build_payload("App\\Jobs\\SendInvoice", uuid=job_id, horizon=True)
        pipe.zadd(f"{prefix}failed_jobs", {job_id: php_microtime(-at)})
        pipe.hset(
            f"{prefix}{job_id}",
            mapping={
                "id": job_id,
                "connection": "redis",
                "queue": "default",
                "name": "App\\Jobs\\SendInvoice",
                "status": "failed",
                "payload": php_json_encode({**payload, "id": job_id}),
                "exception": "RuntimeException: boom in /app/SendInvoice.php:12",
                "failed_at": php_microtime(at),
            },
        )
    pipe.execute()


def test_a_slow_or_refused_redis_is_marked_and_the_others_answer(tmp_path: Path) -> None:
    base = REDIS_URL.rsplit("/", 1)[0] if REDIS_URL.count("/") > 2 else REDIS_URL
    redis_url = f"{base}/{REDIS_DB}"
    refused = refused_port()
    with (
        fresh_database("postgres") as sql_url,
        fresh_prefix(redis_url) as (client, _, rq_prefix),
        fresh_prefix(redis_url) as (_, _, dq_prefix),
        fresh_prefix(redis_url) as (_, _, hz_prefix),
        Proxy.for_url(redis_url, latency=LATENCY) as slow,
        refused,
    ):
        seed(sql_url, 5)
        now = datetime.now(UTC)
        for i in range(12):
            at = now - timedelta(seconds=i)
            plant(client, rq_prefix, "emails", "app.mail.send", "SMTPError", f"no {i}", at, f"{i}")
        namespace = dq_prefix.rstrip(":")
        for i in range(3):
            at = now - timedelta(seconds=i)
            plant_dead_letter(client, namespace, "payments", "charge", "Declined", f"no {i}", at)
        _plant_horizon(client, hz_prefix, 4, now)
        slow_url = slow.url(redis_url)
        down_url = f"redis://127.0.0.1:{refused.getsockname()[1]}/{REDIS_DB}"
        rq = f'driver = "rq"\nprefix = "{rq_prefix}"\nurl = '
        dq = f'driver = "dramatiq"\nnamespace = "{namespace}"\nurl = '
        hz = (
            f'driver = "laravel"\nurl = "{sql_url}"\nhorizon = true\nhorizon_source = "horizon"\n'
            f'horizon_prefix = "{hz_prefix}"\nredis_url = '
        )
        # Healthy: a SQL project, and RQ, Dramatiq and Horizon data read straight from Redis.
        # Broken: the same Redis data through the slow proxy, and on a port that refuses
        # connections. Only the path differs.
        projects = {
            "shop": f'driver = "laravel"\nurl = "{sql_url}"',
            "rq": f'{rq}"{redis_url}"',
            "dq": f'{dq}"{redis_url}"',
            "hz": f'{hz}"{redis_url}"',
            "rq-slow": f'{rq}"{slow_url}"',
            "dq-slow": f'{dq}"{slow_url}"',
            "hz-slow": f'{hz}"{slow_url}"',
            "rq-down": f'{rq}"{down_url}"',
        }
        settings = parse_settings(
            f'[spool]\nurl = "sqlite:///{tmp_path}/spool.db"\n'
            f"[server]\nstore_timeout_seconds = {STORE_TIMEOUT}\n"
            + "".join(f'[[projects]]\nkey = "{key}"\n{body}\n' for key, body in projects.items()),
            environ={},
        )
        healthy = {"shop": 5, "rq": 12, "dq": 3, "hz": 4}
        broken = {"rq-slow", "dq-slow", "hz-slow", "rq-down"}
        app = create_app(settings, inline=False)
        app.state.board.spool.migrate()
        timings: list[float] = []

        def timed(path: str) -> Response:
            started = time.monotonic()
            response = web.get(path)
            timings.append(time.monotonic() - started)
            assert response.status_code == 200, response.text
            return response

        with TestClient(app) as web:
            for _ in range(2):  # the second with the first one's reads still hanging
                body = timed("/api/v1/jobs?limit=100").json()
                assert Counter(j["project"] for j in body["items"]) == healthy
                errors = {e["project"]: e["error"] for e in body["errors"]}
                assert set(errors) == broken
                for key in ("rq-slow", "dq-slow", "hz-slow"):
                    # The aggregator stops waiting at the store timeout; the readers' socket
                    # timeout is the same, so either may speak first.
                    assert errors[key] == f"timed out after {STORE_TIMEOUT:g} s" or (
                        f"project {key}" in errors[key]
                        and "cannot reach Redis: Timeout reading" in errors[key]
                    ), errors[key]
                assert "cannot reach Redis" in errors["rq-down"]
                assert "refused" in errors["rq-down"]

            status = {p["key"]: p for p in timed("/api/v1/projects").json()}
            for key, count in healthy.items():
                assert status[key]["status"] == "ok" and status[key]["failed_count"] == count
            assert {k for k, p in status.items() if p["status"] == "unreachable"} == broken

            page = timed("/").text
            assert set(re.findall(r'data-unreachable="([^"]+)"', page)) == broken
            assert Counter(re.findall(r'<tr data-project="([^"]+)"', page)) == healthy

            # Each reader alone gives up at the store timeout too: a slow Redis must not keep
            # a read thread (4 per project) busy after the page stopped waiting for it.
            for key in ("rq-slow", "dq-slow", "hz-slow"):
                reader = registry.make_reader(settings.project(key), STORE_TIMEOUT)
                started = time.monotonic()
                with pytest.raises(FailboardError):
                    reader.list(JobQuery(limit=10))
                alone = time.monotonic() - started
                reader.close()
                assert alone <= STORE_TIMEOUT + MARGIN, f"{key}: reader held {alone:.1f} s"

            # Redis recovers: the latency goes, the refused port answers again. No restart.
            slow.latency = 0.0
            with ProxyOn(refused, *slow.upstream):

                def whole() -> bool:
                    body = web.get("/api/v1/jobs", params={"limit": 100}).json()
                    return body["errors"] == [] and len(body["items"]) == 5 + 2 * (12 + 3 + 4) + 12

                recovered = wait_until(whole, 30, "the slow and the refused project to answer")
                page = web.get("/").text
                assert "data-unreachable" not in page
                assert set(re.findall(r'<tr data-project="([^"]+)"', page)) == set(projects)
        print(
            f"\nstore timeout {STORE_TIMEOUT:g} s, Redis of RQ, Dramatiq and Horizon projects "
            f"{LATENCY:g} s slow, an RQ project's port refused: jobs, jobs, projects, / answer in "
            f"{', '.join(f'{t:.2f}' for t in timings)} s; "
            f"whole again {recovered:.1f} s after Redis recovered"
        )
        assert max(timings) <= STORE_TIMEOUT + MARGIN
