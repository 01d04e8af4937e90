"""The agent's HTTP client of the dashboard's agent API (``/api/v1/agent/…``): an
:class:`~failboard.spool.AgentSpool` for agents that hold only the dashboard's URL and a
project-scoped token, no database credentials.

Failures look exactly like the direct spool's, so the agent loop handles them the same way: a
dashboard that cannot be reached, times out or answers 5xx is retried a few times with backoff
and then raised as :class:`SpoolError` (the agent logs it and polls again, as through a spool
outage); a claim taken back (409) is :class:`LeaseLost`; a refused token (401/403) is a
:class:`ConfigError`, as no retry can fix it. TLS certificates are verified unless told
otherwise; ``SSL_CERT_FILE`` names a private CA.
"""

from __future__ import annotations

import logging
import random
import ssl
import time
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Self
from urllib.parse import urlsplit

import httpx2 as httpx

from failboard.exceptions import (
    ConfigError,
    InvalidRequest,
    LeaseLost,
    NotFound,
    SpoolError,
)
from failboard.models import Action, ActionResult, to_utc
from failboard.spool.settle import Outcome, Settled

__all__ = ["DEFAULT_LEASE_SECONDS", "AgentClient"]

log = logging.getLogger("failboard.agentclient")

DEFAULT_LEASE_SECONDS = 60
"""Assumed until the dashboard says (every pass starts with ``hello``, which tells the lease)."""
RETRIED_STATUS = frozenset({429, 500, 502, 503, 504})


class AgentClient:
    """``AgentClient("https://failboard.example.com", token)``; thread-safe (the agent's
    heartbeat thread shares it)."""

    def __init__(
        self,
        server: str,
        token: str,
        *,
        timeout: float = 10.0,
        attempts: int = 3,
        backoff: float = 0.25,
        verify: ssl.SSLContext | bool = True,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        parts = urlsplit(server)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"agent: server {server!r} must be an http(s):// URL")
        if not token:
            raise ConfigError("agent: token is empty; set [agent] token (see failboard new-token)")
        if parts.scheme == "http" and parts.hostname not in ("localhost", "127.0.0.1", "::1"):
            log.warning("agent: %s is plain http: the token crosses the network in clear", server)
        self.server = server.rstrip("/")
        self.attempts = max(1, attempts)
        self.backoff = backoff
        self._lease_seconds = DEFAULT_LEASE_SECONDS
        self._http = httpx.Client(
            base_url=f"{self.server}/api/v1/agent",
            headers={"Authorization": f"Bearer {token}", "User-Agent": "failboard-agent"},
            timeout=httpx.Timeout(timeout),
            verify=verify,
            transport=transport,
            follow_redirects=False,
        )

    def __repr__(self) -> str:
        return f"AgentClient({self.server!r})"

    @property
    def lease_seconds(self) -> int:
        return self._lease_seconds

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- the AgentSpool calls ------------------------------------------------------------------

    def record_agent(self, project: str, agent: str) -> None:
        answer = self._call("POST", "/hello", {"agent": agent})
        if answer["project"] != project:
            raise ConfigError(
                f"agent: the token is for project {answer['project']!r}, not {project!r}"
            )
        self._lease_seconds = int(answer["lease_seconds"])

    def claim(self, project: str, agent: str, limit: int = 10) -> list[Action]:
        # The token decides the project: the dashboard never claims another project's actions.
        answer = self._call("POST", "/claim", {"agent": agent, "limit": limit})
        return [Action.model_validate(item) for item in answer]

    def heartbeat(self, action_id: int, token: str) -> datetime:
        answer = self._call("POST", f"/actions/{action_id}/heartbeat", {"claim_token": token})
        return to_utc(datetime.fromisoformat(answer["lease_until"]))

    def progress(self, action_id: int, token: str, done: int, total: int | None) -> None:
        body = {"claim_token": token, "done": done, "total": total}
        self._call("POST", f"/actions/{action_id}/progress", body)

    def complete(self, action_id: int, token: str, result: ActionResult) -> Action:
        body = {"claim_token": token, "result": result.model_dump(mode="json")}
        return Action.model_validate(self._call("POST", f"/actions/{action_id}/complete", body))

    def settle(self, outcomes: Sequence[Outcome]) -> list[Settled]:
        body = {"outcomes": [o.model_dump(mode="json") for o in outcomes]}
        return [Settled.model_validate(item) for item in self._call("POST", "/settle", body)]

    def fail(self, action_id: int, token: str, error: str, *, retryable: bool = True) -> Action:
        body = {"claim_token": token, "error": error[:100_000], "retryable": retryable}
        return Action.model_validate(self._call("POST", f"/actions/{action_id}/fail", body))

    def release(self, action_id: int, token: str, note: str) -> Action:
        body = {"claim_token": token, "note": note[:10_000]}
        return Action.model_validate(self._call("POST", f"/actions/{action_id}/release", body))

    def now(self) -> datetime:
        return to_utc(datetime.fromisoformat(self._call("GET", "/now")["now"]))

    # -- plumbing ------------------------------------------------------------------------------

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """One request, again after a short growing pause while the dashboard cannot be
        reached or answers 5xx; the answer's JSON, or the error the agent loop understands."""
        problem = ""
        for attempt in range(1, self.attempts + 1):
            try:
                response = self._http.request(method, path, json=body)
            except httpx.TransportError as exc:
                problem = f"{type(exc).__name__}: {exc}"
            else:
                if response.status_code not in RETRIED_STATUS:
                    return _answer(response, self.server)
                problem = f"HTTP {response.status_code}: {_detail(response)}"
            if attempt < self.attempts:
                time.sleep(self.backoff * 2 ** (attempt - 1) * random.uniform(0.8, 1.2))
        raise SpoolError(f"dashboard {self.server} unavailable: {problem}")


def _detail(response: httpx.Response) -> str:
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        detail = None
    text = detail if isinstance(detail, str) else response.text
    return (text or response.reason_phrase)[:300]


def _answer(response: httpx.Response, server: str) -> Any:
    code = response.status_code
    if code == 204:
        return None
    if 200 <= code < 300:
        return response.json()
    detail = _detail(response)
    if code in (401, 403):
        raise ConfigError(f"dashboard {server} refused the agent token ({code}: {detail})")
    if code == 404:
        raise NotFound(detail)
    if code == 409:
        # The agent API answers 409 only from the fence: our claim was taken back.
        raise LeaseLost(detail)
    if code == 422:
        raise InvalidRequest(detail)
    raise SpoolError(f"dashboard {server}: HTTP {code}: {detail}")
