"""Validation of what the spool accepts, before anything reaches a database."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from failboard.exceptions import ConfigError, InvalidRequest
from failboard.models import MAX_JOB_IDS, ActionKind, ActionResult
from failboard.spool import Spool
from failboard.spool.claim import gave_up
from failboard.spool.lease import summary
from failboard.spool.params import parse_kind, validate_params

NOW = datetime(2026, 12, 4, 15, 0, tzinfo=UTC)


@pytest.fixture
def spool(sqlite_url: str) -> Iterator[Spool]:
    # Never migrated: every refusal below must happen before the first query.
    with Spool(sqlite_url) as spool:
        yield spool


def test_retry_ids_are_deduplicated_in_order() -> None:
    params = validate_params(ActionKind.RETRY, {"job_ids": ["b", "a", "b", "c", "a"]}, NOW)
    assert params == {"job_ids": ["b", "a", "c"]}


def test_a_full_batch_of_ids_is_accepted() -> None:
    ids = [str(n) for n in range(MAX_JOB_IDS)]
    assert validate_params(ActionKind.DELETE, {"job_ids": ids}, NOW)["job_ids"] == ids


def test_retry_queue_defaults_to_now_in_utc_with_z() -> None:
    params = validate_params(ActionKind.RETRY_QUEUE, {"queue": "emails"}, NOW)
    assert params == {"queue": "emails", "failed_before": "2026-12-04T15:00:00Z"}


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("2026-12-04T15:00:00Z", "2026-12-04T15:00:00Z"),
        ("2026-12-04T17:30:00+02:30", "2026-12-04T15:00:00Z"),
        ("2026-12-04T15:00:00", "2026-12-04T15:00:00Z"),  # naive = UTC
        (datetime(2026, 12, 4, 16, tzinfo=timezone(timedelta(hours=1))), "2026-12-04T15:00:00Z"),
    ],
)
def test_failed_before_is_stored_as_utc_with_z(given: object, stored: str) -> None:
    params = validate_params(ActionKind.RETRY_QUEUE, {"queue": None, "failed_before": given}, NOW)
    assert params == {"queue": None, "failed_before": stored}


def test_prune_keeps_the_number_given() -> None:
    assert validate_params(ActionKind.PRUNE, {"hours": 1.5}, NOW) == {"hours": 1.5}
    assert validate_params(ActionKind.PRUNE, {"hours": 24}, NOW) == {"hours": 24}


def test_unused_params_may_be_null() -> None:
    params = {"job_ids": None, "queue": None, "failed_before": None, "hours": 3}
    assert validate_params(ActionKind.PRUNE, params, NOW) == {"hours": 3}


@pytest.mark.parametrize(
    ("kind", "params", "field"),
    [
        (ActionKind.PRUNE, {"hours": 0}, "hours"),
        (ActionKind.PRUNE, {"hours": -1}, "hours"),
        (ActionKind.PRUNE, {"hours": -0.5}, "hours"),
        (ActionKind.PRUNE, {"hours": True}, "hours"),
        (ActionKind.PRUNE, {"hours": math.nan}, "hours"),
        (ActionKind.PRUNE, {"hours": math.inf}, "hours"),
        (ActionKind.PRUNE, {"hours": "24"}, "hours"),
        (ActionKind.PRUNE, {"hours": 10**9}, "hours"),
        (ActionKind.PRUNE, {}, "hours"),
        (ActionKind.RETRY, {}, "job_ids"),
        (ActionKind.RETRY, {"job_ids": []}, "job_ids"),
        (ActionKind.RETRY, {"job_ids": "42"}, "job_ids"),
        (ActionKind.RETRY, {"job_ids": {"42": 1}}, "job_ids"),
        (ActionKind.DELETE, {"job_ids": [42]}, "job_ids[0]"),
        (ActionKind.DELETE, {"job_ids": ["1", None]}, "job_ids[1]"),
        (ActionKind.DELETE, {"job_ids": ["1", " "]}, "job_ids[1]"),
        (ActionKind.DELETE, {"job_ids": ["x" * 256]}, "job_ids[0]"),
        (ActionKind.DELETE, {"job_ids": [str(n) for n in range(MAX_JOB_IDS + 1)]}, "job_ids"),
        (ActionKind.RETRY_QUEUE, {}, "queue"),
        (ActionKind.RETRY_QUEUE, {"queue": ""}, "queue"),
        (ActionKind.RETRY_QUEUE, {"queue": 7}, "queue"),
        (ActionKind.RETRY_QUEUE, {"queue": None, "failed_before": "yesterday"}, "failed_before"),
        (ActionKind.RETRY_QUEUE, {"queue": None, "failed_before": 1733324400}, "failed_before"),
        (ActionKind.RETRY, {"job_ids": ["1"], "hours": 3}, "hours"),
        (ActionKind.RETRY, {"job_ids": ["1"], "force": True}, "params.force"),
    ],
)
def test_bad_params_are_refused_naming_the_field(
    kind: ActionKind, params: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidRequest) as caught:
        validate_params(kind, params, NOW)
    assert caught.value.message.startswith(f"{field}:"), caught.value.message


def test_unknown_kind_names_the_known_ones() -> None:
    with pytest.raises(
        InvalidRequest, match=r"^action: unknown action 'requeue'; use one of retry"
    ):
        parse_kind("requeue")
    assert parse_kind("retry_queue") is ActionKind.RETRY_QUEUE


@pytest.mark.parametrize(
    ("project", "action", "params", "kwargs", "field"),
    [
        ("shop", "prune", {"hours": 0}, {}, "hours"),
        ("shop", "retry", {"job_ids": []}, {}, "job_ids"),
        ("shop", "delete", {"job_ids": [str(n) for n in range(10_001)]}, {}, "job_ids"),
        ("shop", "explode", {}, {}, "action"),
        ("shop", "retry", ["1", "2"], {}, "params"),
        ("", "retry", {"job_ids": ["1"]}, {}, "project"),
        ("x" * 65, "retry", {"job_ids": ["1"]}, {}, "project"),
        ("shop", "retry", {"job_ids": ["1"]}, {"idempotency_key": "k" * 129}, "idempotency_key"),
        ("shop", "retry", {"job_ids": ["1"]}, {"requested_by": 7}, "requested_by"),
    ],
)
def test_submit_refuses_before_touching_the_database(
    spool: Spool,
    project: str,
    action: str,
    params: Any,
    kwargs: dict[str, Any],
    field: str,
) -> None:
    with pytest.raises(InvalidRequest) as caught:
        spool.submit(project, action, params, **kwargs)
    assert caught.value.message.startswith(f"{field}:"), caught.value.message


@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.claim("shop", "agent", limit=0),
        lambda s: s.claim("shop", "", limit=1),
        lambda s: s.list(limit=0),
        lambda s: s.list(status="sleeping"),
        lambda s: s.progress(1, "token", -1, None),
        lambda s: s.progress(1, "token", 1, -2),
        lambda s: s.prune_finished(timedelta(hours=-1)),
    ],
)
def test_other_bad_arguments_are_invalid_requests(spool: Spool, call: Any) -> None:
    with pytest.raises(InvalidRequest):
        call(spool)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"lease_seconds": 0},
        {"max_attempts": 0},
        {"retry_delay_seconds": -1},
        {"table_prefix": "Bad-Prefix"},
        {"table_prefix": "x; DROP TABLE y"},
    ],
)
def test_bad_construction_is_a_config_error(sqlite_url: str, kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        Spool(sqlite_url, **kwargs)


def test_not_a_url_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="spool"):
        Spool("not a url")


def test_failed_jobs_summarise_into_the_error() -> None:
    result = ActionResult(succeeded=7, failed=3, errors=("a: boom", "b: bang", "c: pop", "d: x"))
    assert summary(result) == "3 of 10 jobs failed: a: boom; b: bang; c: pop"
    assert summary(ActionResult(succeeded=1, missing=2)) is None
    assert summary(ActionResult(failed=1)) == "1 of 1 jobs failed"
    assert len(summary(ActionResult(failed=1, errors=("e" * 10_000,))) or "") == 4000


def test_giving_up_says_how_often() -> None:
    assert gave_up(3) == "agent lost the lease 3 times (crashed or stopped?); giving up"
    assert gave_up(1) == "agent lost the lease once (crashed or stopped?); giving up"


def test_repr_hides_the_password() -> None:
    spool = Spool("postgresql+psycopg://fb:s3cret@127.0.0.1:1/spool")
    try:
        assert "s3cret" not in repr(spool)
        assert spool.url == "postgresql+psycopg://fb:s3cret@127.0.0.1:1/spool"
    finally:
        spool.close()
