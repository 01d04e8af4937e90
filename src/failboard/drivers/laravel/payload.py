"""Laravel job payloads: build them as Laravel does, read them tolerantly, reset them for retry.

A payload is the JSON text Laravel's ``Queue::createPayload`` writes (``json_encode`` with
``JSON_UNESCAPED_UNICODE``: no spaces, ``/`` escaped as ``\\/``, non-ASCII kept as is). The failed
job row keeps it byte for byte, and ``queue:retry`` pushes it back after resetting two fields.
"""

from __future__ import annotations

import json
import re
import secrets
import string
import time
import uuid as uuid_module
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

__all__ = [
    "CALL_QUEUED_HANDLER",
    "PayloadError",
    "build_payload",
    "decode_payload",
    "json_string",
    "payload_summary",
    "php_json_encode",
    "php_serialize_object",
    "reset_for_retry",
]

CALL_QUEUED_HANDLER = "Illuminate\\Queue\\CallQueuedHandler@call"
_ALNUM = string.ascii_letters + string.digits


class PayloadError(ValueError):
    """A payload that cannot be retried as it is (not a JSON object)."""


def php_json_encode(value: Any, *, unescaped_unicode: bool = True) -> str:
    """``json_encode($value, JSON_UNESCAPED_UNICODE)`` as PHP writes it.

    PHP escapes ``/`` (JSON_UNESCAPED_SLASHES is not set) and, even with unescaped unicode, the
    line terminators U+2028 and U+2029. ``/`` only ever occurs inside strings in JSON, so a
    textual replace is exact.
    """
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=not unescaped_unicode)
    text = text.replace("/", "\\/")
    if unescaped_unicode:
        text = text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    return text


def json_string(value: str, *, unescaped_unicode: bool = True) -> str:
    """A string as PHP's ``json_encode`` writes it, quotes included (for LIKE needles)."""
    return php_json_encode(value, unescaped_unicode=unescaped_unicode)


def php_serialize_object(class_name: str, properties: Mapping[str, Any] | None = None) -> str:
    """PHP's ``serialize()`` of an object with public scalar properties (what
    ``data.command`` holds for a job that is not encrypted)."""

    def scalar(value: Any) -> str:
        if value is None:
            return "N;"
        if isinstance(value, bool):
            return f"b:{int(value)};"
        if isinstance(value, int):
            return f"i:{value};"
        if isinstance(value, float):
            return f"d:{value!r};"
        text = str(value)
        return f's:{len(text.encode())}:"{text}";'

    props = properties or {}
    body = "".join(scalar(str(key)) + scalar(value) for key, value in props.items())
    return f'O:{len(class_name.encode())}:"{class_name}":{len(props)}:{{{body}}}'


def build_payload(
    display_name: str,
    *,
    uuid: str | None = None,
    command_name: str | None = None,
    command: str | None = None,
    properties: Mapping[str, Any] | None = None,
    max_tries: int | None = None,
    max_exceptions: int | None = None,
    fail_on_timeout: bool = False,
    backoff: str | None = None,
    timeout: int | None = None,
    retry_until: int | None = None,
    batch_id: str | None = None,
    created_at: int | None = None,
    redis: bool = False,
    attempts: int | None = None,
    horizon: bool = False,
    tags: Sequence[str] = (),
    pushed_at: float | None = None,
) -> dict[str, Any]:
    """A job payload with Laravel's keys in Laravel's order (``Queue::createObjectPayload``).

    ``command`` defaults to the PHP ``serialize()`` of the job class with ``properties``.
    ``redis`` adds what ``RedisQueue`` appends (``id``, ``attempts``); ``horizon`` adds what
    Horizon's ``JobPayload::prepare`` appends (``type``, ``tags``, ``silenced``, ``pushedAt``).
    The database queue keeps attempts in its ``jobs`` row, not in the payload: ``attempts``
    alone adds the key only when given. Encode the result with :func:`php_json_encode`.
    """
    job_uuid = uuid or str(uuid_module.uuid4())
    name = command_name or display_name
    payload: dict[str, Any] = {
        "uuid": job_uuid,
        "displayName": display_name,
        "job": CALL_QUEUED_HANDLER,
        "maxTries": max_tries,
        "maxExceptions": max_exceptions,
        "failOnTimeout": fail_on_timeout,
        "backoff": backoff,
        "timeout": timeout,
        "retryUntil": retry_until,
        "data": {
            "commandName": name,
            "command": command if command is not None else php_serialize_object(name, properties),
            "batchId": batch_id,
        },
        "createdAt": int(time.time()) if created_at is None else created_at,
    }
    if redis or horizon:
        # RedisQueue::getRandomId(): Str::random(32).
        payload["id"] = "".join(secrets.choice(_ALNUM) for _ in range(32))
        payload["attempts"] = attempts or 0
    elif attempts is not None:
        payload["attempts"] = attempts
    if horizon:
        payload["type"] = "job"
        payload["tags"] = list(tags)
        payload["silenced"] = False
        stamp = time.time() if pushed_at is None else pushed_at
        payload["pushedAt"] = f"{stamp:.4f}"
    return payload


def decode_payload(text: str | None) -> Any:
    """The payload as JSON where it parses, else the raw text (never raises)."""
    if text is None:
        return None
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return text


# A key is a quote not escaped by a backslash. That test is made on each match (_unescaped)
# rather than with a leading lookbehind: a pattern that starts with one loses the re module's
# literal-prefix search and tries every position of the text, ten times slower on a 4 KB head
# (0.3 ms per key and row, most of a list row's cost).
_DISPLAY_NAME = re.compile(r'"displayName"\s*:\s*("(?:[^"\\]|\\.)*")')
_COMMAND_NAME = re.compile(r'"commandName"\s*:\s*("(?:[^"\\]|\\.)*")')
_INT_KEY = {
    key: re.compile(rf'"{key}"\s*:\s*(-?\d+)')
    for key in ("attempts", "maxTries", "timeout", "retryUntil", "createdAt")
}


def _unescaped(pattern: re.Pattern[str], text: str) -> list[re.Match[str]]:
    """Matches of ``pattern`` whose opening quote is not preceded by a backslash."""
    return [m for m in pattern.finditer(text) if m.start() == 0 or text[m.start() - 1] != "\\"]


def payload_summary(head: str | None, tail: str | None = None, *, complete: bool) -> dict[str, Any]:
    """``displayName``, ``commandName``, ``attempts`` and ``maxTries`` from a payload's text.

    ``head`` is the start of the payload (all of it when ``complete``), ``tail`` its end: lists
    read only those, never whole payloads. A complete payload is parsed; a cut one is searched
    with patterns (Redis appends ``attempts`` at the very end, hence the tail).
    """
    if complete and head is not None:
        decoded = decode_payload(head)
        if isinstance(decoded, dict):
            data = decoded.get("data")
            command_name = data.get("commandName") if isinstance(data, dict) else None
            return {
                "displayName": _str_or_none(decoded.get("displayName")),
                "commandName": _str_or_none(command_name),
                "attempts": _int_or_none(decoded.get("attempts")),
                "maxTries": _int_or_none(decoded.get("maxTries")),
            }
        return {}
    found: dict[str, Any] = {}
    text = head or ""
    for key, pattern in (("displayName", _DISPLAY_NAME), ("commandName", _COMMAND_NAME)):
        match = next(iter(_unescaped(pattern, text)), None)
        if match:
            found[key] = _str_or_none(decode_payload(match.group(1)))
    for key in ("attempts", "maxTries"):
        matches = _unescaped(_INT_KEY[key], text) + _unescaped(_INT_KEY[key], tail or "")
        if matches:
            found[key] = int(matches[-1].group(1))
    return found


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _top_level(text: str) -> dict[str, tuple[int, int, Any]]:
    """Each top-level key of a JSON object → (start, end, value) of its value in ``text``."""
    decoder = json.JSONDecoder()
    spans: dict[str, tuple[int, int, Any]] = {}

    def skip(at: int) -> int:
        while at < len(text) and text[at] in " \t\r\n":
            at += 1
        return at

    at = skip(0)
    if not text.startswith("{", at):
        raise PayloadError("the payload is not a JSON object")
    at = skip(at + 1)
    if text.startswith("}", at):
        at += 1
    else:
        while True:
            key, at = decoder.raw_decode(text, at)
            at = skip(at)
            if not isinstance(key, str) or not text.startswith(":", at):
                raise PayloadError("the payload is not a JSON object")
            start = skip(at + 1)
            value, end = decoder.raw_decode(text, start)
            spans[key] = (start, end, value)  # a repeated key: the last wins, as in PHP
            at = skip(end)
            if text.startswith(",", at):
                at = skip(at + 1)
                continue
            if text.startswith("}", at):
                at += 1
                break
            raise PayloadError("the payload is not a JSON object")
    if skip(at) != len(text):
        raise PayloadError("the payload has text after its JSON object")
    return spans


def reset_for_retry(payload: str, now: datetime | float) -> str:
    """The payload as ``php artisan queue:retry`` pushes it back; raises PayloadError when the
    payload is not a JSON object (Laravel would push ``null``; we refuse the job instead).

    What Laravel does (``RetryCommand::resetAttempts`` and ``refreshRetryUntil``):

    - ``attempts`` → 0 when the key is set (Redis payloads; database payloads have none);
    - when ``data.command`` is there, it unserializes the command and, if the job class has a
      ``retryUntil()`` method, stores what it returns now as ``retryUntil``.

    We cannot run PHP, so for a job that has a ``retryUntil`` we keep its original window: the
    new deadline is ``now + (retryUntil - createdAt)`` (``pushedAt`` for payloads without
    ``createdAt``); with neither, ``retryUntil`` stays as it was. The ``uuid`` stays, so the
    retried job is the same job. Everything else is kept byte for byte — Laravel re-encodes the
    whole payload with plain ``json_encode``, which changes nothing a worker reads.
    """
    try:
        # One C-speed parse answers the common case (a database-queue payload: no attempts, no
        # retryUntil) without walking the text key by key — most of a bulk retry's time before.
        whole = json.loads(payload)
    except (ValueError, RecursionError) as exc:
        raise PayloadError("the payload is not valid JSON") from exc
    if not isinstance(whole, dict):
        raise PayloadError("the payload is not a JSON object")
    if whole.get("attempts") is None and whole.get("retryUntil") is None:
        return payload
    try:
        spans = _top_level(payload)
    except PayloadError:
        raise
    except (ValueError, RecursionError) as exc:
        raise PayloadError("the payload is not valid JSON") from exc
    moment = now.timestamp() if isinstance(now, datetime) else float(now)
    edits: list[tuple[int, int, str]] = []
    if "attempts" in spans and spans["attempts"][2] is not None:
        start, end, _ = spans["attempts"]
        edits.append((start, end, "0"))
    if "retryUntil" in spans:
        start, end, value = spans["retryUntil"]
        created = _number(spans.get("createdAt", (0, 0, None))[2])
        if created is None:
            created = _number(spans.get("pushedAt", (0, 0, None))[2])
        until = _number(value)
        if until is not None and created is not None and until > created:
            edits.append((start, end, str(round(moment + (until - created)))))
    for start, end, replacement in sorted(edits, reverse=True):
        payload = payload[:start] + replacement + payload[end:]
    return payload


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None
