"""A failure becomes a row: redaction, JSON with a safe fallback, caps, fingerprint."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from failboard.failures import DEFAULT_REDACT, REDACTED, Failure, exception_name, redact
from failboard.failures.record import MAX_ARGS, to_json


class Unprintable:
    def __repr__(self) -> str:
        raise RuntimeError("no repr for you")


def test_redacts_sensitive_names_in_kwargs_nested_mappings_and_positional_params() -> None:
    args: list[Any] = ["bob", "hunter2", {"auth": {"apiKey": "k", "user": "x"}}]
    kwargs = {"db_password": "p", "token_id": 7, "headers": [{"Authorization": "Bearer t"}]}
    new_args, new_kwargs, paths = redact(args, kwargs, DEFAULT_REDACT, ("user", "password"))
    assert new_args == ["bob", REDACTED, {"auth": {"apiKey": REDACTED, "user": "x"}}]
    assert new_kwargs == {
        "db_password": REDACTED,
        "token_id": 7,  # an id named after a token is not a secret
        "headers": [{"Authorization": REDACTED}],
    }
    assert sorted(paths) == sorted(
        [
            "args[1]",
            "args[2].auth.apiKey",
            "kwargs.db_password",
            "kwargs.headers[0].Authorization",
        ]
    )
    assert args[1] == "hunter2" and kwargs["db_password"] == "p"  # originals untouched


def test_redact_names_are_configurable_and_can_be_none() -> None:
    _, kwargs, paths = redact([], {"iban": "DE00", "password": "p"}, ("iban",))
    assert kwargs == {"iban": REDACTED, "password": "p"} and paths == ["kwargs.iban"]
    assert redact([1], {"password": "p"}, ())[1] == {"password": "p"}


def test_json_falls_back_to_a_safe_representation_and_says_so() -> None:
    text, lossy = to_json([1, "é", {"when": datetime(2026, 1, 2, tzinfo=UTC)}])
    assert lossy
    decoded = json.loads(text)
    assert decoded[:2] == [1, "é"]
    assert decoded[2]["when"]["__type__"] == "datetime.datetime"
    weird, lossy = to_json({"x": Unprintable(), "n": float("nan")})
    assert lossy and "Unprintable" in json.loads(weird)["x"]["__repr__"]  # repr raised
    assert to_json({"a": [1, 2]}) == ('{"a":[1,2]}', False)


def test_huge_arguments_keep_only_a_head() -> None:
    text, lossy = to_json(["x" * (MAX_ARGS + 10)])
    assert lossy and len(text) < 10_000
    assert json.loads(text)["__failboard__"] == "truncated"


def test_row_has_every_column_and_marks_what_cannot_be_re_sent() -> None:
    failed_at = datetime(2026, 5, 1, 12, 0, 0, 123456, tzinfo=timezone(timedelta(hours=2)))
    failure = Failure(
        engine="celery",
        job_id="abc",
        name="proj.tasks.charge",
        queue="payments",
        args=("4242", Unprintable()),
        kwargs={"password": "p"},
        exception_class="proj.tasks.CardDeclined",
        exception_message="card 4242 declined",
        traceback="Traceback ...\nproj.tasks.CardDeclined: card 4242 declined\n",
        attempts=3,
        worker="celery@host",
        retry_of="old",
        options={"priority": 5},
        failed_at=failed_at,
    )
    row = failure.row("billing")
    assert row["project"] == "billing" and row["engine"] == "celery"
    assert row["failed_at"] == datetime(2026, 5, 1, 10, 0, 0, 123456)  # naive UTC
    assert json.loads(row["kwargs"]) == {"password": REDACTED}
    options = json.loads(row["options"])
    assert options == {"priority": 5, "redacted": ["kwargs.password"], "lossy": True}
    assert row["fingerprint"] and row["attempts"] == 3 and row["retry_of"] == "old"
    same_bug = Failure(
        engine="celery",
        job_id="def",
        name="proj.tasks.charge",
        exception_class="proj.tasks.CardDeclined",
        exception_message="card 1111 declined",
    ).row("billing")
    assert same_bug["fingerprint"] == row["fingerprint"]
    assert same_bug["options"] is None and same_bug["args"] == "[]"


def test_exception_name_is_the_traceback_spelling() -> None:
    class Local(Exception):
        pass

    assert exception_name(ValueError("x")) == "ValueError"
    assert exception_name(Local()).endswith("test_failures_record.Local") or exception_name(
        Local()
    ).startswith("tests.unit.test_failures_record.")
    assert exception_name(json.JSONDecodeError) == "json.decoder.JSONDecodeError"
