"""Redaction of sensitive values in payloads, arguments and exception texts."""

from __future__ import annotations

import json

import pytest

from failboard.models import FailedJob, FailedJobDetail
from failboard.redaction import MASK, Redactor

R = Redactor()


def php_string(value: str) -> str:
    return f's:{len(value.encode())}:"{value}";'


@pytest.mark.parametrize(
    "key",
    [
        "password",
        "PASSWORD",
        "user_password",
        "passwordConfirmation",
        "apiKey",
        "API-KEY",
        "x_api_key",
        "Authorization",
        "stripe_secret",
        "refresh_token",
        "card_number",
        "cvv",
    ],
)
def test_default_patterns_match_key_spellings(key: str) -> None:
    assert R.sensitive(key)


@pytest.mark.parametrize("key", ["user", "email", "order_id", "amount", "queue", "keyboard"])
def test_ordinary_keys_are_kept(key: str) -> None:
    assert not R.sensitive(key)


def test_nested_json_values_are_masked_at_any_depth() -> None:
    payload = {
        "user": "ann",
        "auth": {"password": "hunter2", "nested": [{"apiKey": "k-123"}]},
        "token": {"whole": "object"},
        "amount": 12,
    }
    out = R.value(payload)
    assert out == {
        "user": "ann",
        "auth": {"password": MASK, "nested": [{"apiKey": MASK}]},
        "token": MASK,
        "amount": 12,
    }
    assert payload["auth"]["password"] == "hunter2"  # the input is not modified


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ('{"password": "hunter2", "user": "ann"}', "hunter2"),
        ("{'api_key': 'k-123', 'user': 'ann'}", "k-123"),
        ("tasks.login(user='ann', password='hunter2')", "hunter2"),
        ("GET /callback?code=1&token=abc123&x=2 failed", "abc123"),
        ("Authorization: Bearer eyJhbGciOi.secret", "eyJhbGciOi.secret"),
        ("connect failed: password=hunter2 host=db", "hunter2"),
        ('escaped "secret": "a \\" quote" stays masked', 'a \\" quote'),
    ],
)
def test_secrets_in_text_are_masked(text: str, secret: str) -> None:
    out = R.text(text)
    assert out is not None
    assert secret not in out
    assert MASK in out


def test_text_without_secrets_is_unchanged() -> None:
    text = "RuntimeException: SMTP timeout after 30 s (queue: emails, attempts=3)"
    assert R.text(text) == text


def test_php_serialized_command_values_are_masked_with_valid_lengths() -> None:
    secret = "hünter2"  # multi-byte: PHP counts bytes
    command = (
        'O:19:"App\\Jobs\\LoginJob":3:{'
        + php_string("email")
        + php_string("ann@example.com")
        + php_string("\x00*\x00password")
        + php_string(secret)
        + php_string("apiToken")
        + "i:12345;"
        + "}"
    )
    out = R.text(command)
    assert out is not None
    assert secret not in out and "12345" not in out
    assert "ann@example.com" in out
    assert out.count(php_string(MASK)) == 2


def test_custom_globs_and_substrings() -> None:
    redactor = Redactor(["iban", "customer_*"])
    assert redactor.sensitive("IBAN") and redactor.sensitive("customer_email")
    assert not redactor.sensitive("email_customer")


def test_job_and_detail_are_masked_everywhere() -> None:
    detail = FailedJobDetail(
        project="shop",
        id="1",
        exception_message="login failed for password=hunter2",
        payload={"data": {"command": php_string("password") + php_string("hunter2")}},
        exception="Traceback\n  token='abc'\nValueError: password=hunter2",
        args=[{"password": "hunter2"}, "plain"],
        extra={"meta": {"secret": "s"}},
    )
    out = R.job(detail)
    assert "hunter2" not in json.dumps(out.model_dump(mode="json"))
    assert "abc" not in (out.exception or "")
    assert out.args == [{"password": MASK}, "plain"]
    listed = R.job(FailedJob(project="shop", id="1", exception_message="token=abc"))
    assert listed.exception_message == f"token={MASK}"


def test_raw_text_payload_is_masked() -> None:
    detail = FailedJobDetail(project="p", id="1", payload='not json, "password": "x1"')
    assert "x1" not in str(R.job(detail).payload)


def test_huge_and_hostile_texts_stay_linear() -> None:
    # A 5 MB run of letters once cost 47 s (every start inside the word scanned 64 chars ahead).
    # Not a timing assertion: the output must be right, and the suite's timeout bounds the rest.
    blob = "password=hunter2 " + "A" * 5_000_000 + ' token: "unclosed'
    out = R.text(blob)
    assert out is not None
    assert out.startswith(f"password={MASK} ") and "hunter2" not in out
    assert out.endswith(f'token: "{MASK}"') and "unclosed" not in out
