"""The JSON API fuzzed from its own ``/openapi.json`` (schemathesis 4), with real credentials.

Issue #7: "schemathesis against /openapi.json with auth: no 5xx". The app runs over real SQLite
stores (two Laravel-shaped projects, one unreachable) and a migrated SQLite spool; every
operation of the schema is called with an admin, a viewer and an agent token, with valid
(positive) and invalid (negative) inputs. Every answer must be below 500 — except the one 503
failboard documents for a spool outage, which must not happen here either — and, where the
schema can say, conform to it: status code, content type, body.

Bounded: a few examples per operation and mode, derandomized (the same cases every run), no
example database, so a run takes seconds and a failure reproduces.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from failboard.auth import token_digest
from failboard.board import Board
from failboard.config import parse_settings
from failboard.web import create_app
from tests.integration.test_web import _project

TOKENS = {  # name: (role, projects)
    "admin": ("admin", ["*"]),
    "viewer": ("viewer", ["*"]),
    "agent": ("agent", ["shop"]),
}
# Per operation and generation mode (~19 operations x 2 modes x 3 tokens); raise it for a
# deeper run on a quiet machine, e.g. FAILBOARD_FUZZ_EXAMPLES=200.
EXAMPLES = int(os.environ.get("FAILBOARD_FUZZ_EXAMPLES", "12"))


def _raw(name: str) -> str:
    return f"fb_fuzz_token_{name}_0123456789abcdef"


def _config(tmp: Path) -> str:
    shop = _project(tmp / "shop.db", "App\\Jobs\\Mail", 3)
    billing = _project(tmp / "billing.db", "App\\Jobs\\Charge", 2)
    text = f"""
[spool]
url = "sqlite:///{tmp}/spool.db"
[server]
store_timeout_seconds = 2
[[projects]]
key = "shop"
driver = "laravel"
url = "{shop}"
[[projects]]
key = "billing"
driver = "laravel"
url = "{billing}"
[[projects]]
key = "down"
driver = "laravel"
url = "postgresql+psycopg://nobody:wrong@127.0.0.1:1/nothing"
"""
    for name, (role, projects) in TOKENS.items():
        text += f"""
[[tokens]]
name = "{name}"
sha256 = "{token_digest(_raw(name))}"
role = "{role}"
projects = {projects!r}
""".replace("'", '"')
    return text


@dataclass
class Fuzzed:
    app: FastAPI
    schema: Any  # schemathesis' OpenApiSchema (its type lives in a private module)


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fuzzed]:
    tmp = tmp_path_factory.mktemp("fuzz")
    board = Board(parse_settings(_config(tmp), source=tmp / "f.toml"))
    # The board is ours, not the app's: schemathesis' ASGI client runs the app's lifespan, whose
    # end would close a board the app owns while later tokens still need it.
    app = create_app(board.settings, board=board, inline=False)
    board.spool.migrate()
    # Something to find: a pending action per project, so ids 1 and 2 exist.
    admin = TestClient(app)
    admin.headers["Authorization"] = f"Bearer {_raw('admin')}"
    for project in ("shop", "billing"):
        job = admin.get("/api/v1/jobs", params={"project": project}).json()["items"][0]["id"]
        made = admin.post(
            "/api/v1/actions", json={"project": project, "action": "retry", "job_ids": [job]}
        )
        assert made.status_code == 202, made.text
    # /openapi.json itself takes credentials like the rest of the API.
    schema = schemathesis.openapi.from_asgi(
        "/openapi.json", app, headers={"Authorization": f"Bearer {_raw('viewer')}"}
    )
    yield Fuzzed(app, schema)
    board.close()


def _operations(schema: Any) -> list[Any]:
    return [result.ok() for result in schema.get_all_operations()]


def _checks(mode: GenerationMode) -> list[Callable[..., Any]]:
    if mode is GenerationMode.NEGATIVE:
        # Invalid input must be refused (4xx), never accepted nor crash.
        return [not_a_server_error, negative_data_rejection]
    # Refusals (401/403 from the security middleware, 404, 409…) are documented too, so every
    # token's answers are held to the schema, not only those of the token a route is for.
    return [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_schema_conformance,
    ]


def _fuzz(operation: Any, token: str, mode: GenerationMode) -> None:
    headers = {"Authorization": f"Bearer {_raw(token)}"}
    checks = _checks(mode)

    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        # Our header wins over any Authorization the generator made up for the bearer scheme.
        case.headers = {**(case.headers or {}), **headers}
        case.call_and_validate(headers=headers, checks=checks)

    run()


@pytest.mark.parametrize("token", sorted(TOKENS))
def test_every_operation_answers_below_500_and_as_documented(fuzzed: Fuzzed, token: str) -> None:
    operations = _operations(fuzzed.schema)
    assert len(operations) >= 19, [op.label for op in operations]
    failures: list[str] = []
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                _fuzz(operation, token, mode)
            except Unsatisfiable:
                # No invalid request exists (no parameters, or only free strings): nothing to do.
                assert mode is GenerationMode.NEGATIVE
            # Collected (schemathesis raises an exception group for several distinct
            # failures): one report names every operation that misbehaves.
            except (Exception, BaseExceptionGroup) as exc:
                failures.append(f"{operation.label} [{mode.value}]: {exc}")
    assert not failures, "\n\n".join(failures)


BIG = 2**70  # past BIGINT: overflowed the spool's driver (500) before ids were bounded
KNOWN: list[tuple[str, str, str, dict[str, Any], int]] = [
    # (token, method, path, case fields, status): the regressions the fuzzing found, and the
    # answers random input rarely reaches (the unreachable project, real ids).
    ("admin", "GET", "/api/v1/actions/{action_id}", {"path_parameters": {"action_id": BIG}}, 422),
    (
        "admin",
        "POST",
        "/api/v1/actions/{action_id}/cancel",
        {"path_parameters": {"action_id": BIG}},
        422,
    ),
    (
        "agent",
        "POST",
        "/api/v1/agent/actions/{action_id}/heartbeat",
        {"path_parameters": {"action_id": BIG}, "body": {"claim_token": "x"}},
        422,
    ),
    (
        "agent",
        "POST",
        "/api/v1/agent/settle",
        {"body": {"outcomes": [{"action_id": BIG, "claim_token": "x", "error": "e"}]}},
        422,
    ),
    # An offset that carries the moment past year 1 overflowed converting to UTC (500).
    (
        "admin",
        "POST",
        "/api/v1/actions",
        {
            "body": {
                "project": "shop",
                "action": "retry_queue",
                "queue": "default",
                "failed_before": "0001-01-01T00:00:00+01:00",
            }
        },
        422,
    ),
    ("admin", "GET", "/api/v1/jobs", {"query": {"failed_after": "9999-12-31T23:59:59-23:00"}}, 422),
    # A bare number was taken as Unix seconds, which the schema (date-time) does not allow.
    ("admin", "GET", "/api/v1/jobs", {"query": {"failed_before": "0.0"}}, 422),
    ("admin", "GET", "/api/v1/groups", {"query": {"since": "0.5"}}, 422),
    # /metrics refused an agent token with JSON while documenting only text/plain.
    ("agent", "GET", "/metrics", {}, 403),
    ("viewer", "GET", "/metrics", {}, 200),
    # The unreachable project: a documented 503, the one 5xx failboard answers on purpose.
    (
        "admin",
        "GET",
        "/api/v1/jobs/{project}/{job_id}",
        {"path_parameters": {"project": "down", "job_id": "x"}},
        503,
    ),
    ("admin", "GET", "/api/v1/jobs", {"query": {"project": ["down"]}}, 200),
    ("admin", "GET", "/api/v1/actions/{action_id}", {"path_parameters": {"action_id": 1}}, 200),
    ("admin", "GET", "/api/v1/actions/{action_id}", {"path_parameters": {"action_id": 999}}, 404),
    (
        "viewer",
        "POST",
        "/api/v1/actions/{action_id}/cancel",
        {"path_parameters": {"action_id": 1}},
        403,
    ),
    ("viewer", "GET", "/api/v1/agent/now", {}, 403),
    ("agent", "GET", "/api/v1/projects", {}, 403),
]


@pytest.mark.parametrize(
    ("token", "method", "path", "fields", "status"),
    KNOWN,
    ids=[f"{t}-{m}-{p}-{s}" for t, m, p, _f, s in KNOWN],
)
def test_known_requests_answer_as_documented(
    fuzzed: Fuzzed, token: str, method: str, path: str, fields: dict[str, Any], status: int
) -> None:
    operation = fuzzed.schema[path][method]
    case = operation.Case(**fields)
    headers = {"Authorization": f"Bearer {_raw(token)}"}
    response = case.call(headers=headers)
    assert response.status_code == status, response.text
    case.validate_response(
        response,
        checks=[status_code_conformance, content_type_conformance, response_schema_conformance],
        headers=headers,
    )
