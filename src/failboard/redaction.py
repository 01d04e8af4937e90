"""Masking of sensitive values (passwords, tokens, card numbers…) before anything is displayed.

Failed-job payloads are full of customer data. Every view, the API and the CLI read jobs through
the :class:`~failboard.board.Board`, which passes them through a project's :class:`Redactor`
first, so a value whose key matches a pattern never leaves the process.

A pattern matches a key case-insensitively, ignoring ``_``, ``-`` and ``.``: ``api_key`` matches
``apiKey``, ``API-KEY`` and ``x_api_key``. A pattern with ``*`` or ``?`` is a glob over the whole
(normalised) key instead of a substring. Keys are found in decoded JSON (any depth), in text that
carries ``key=value``, ``key: value``, ``"key": "value"`` or ``'key': 'value'`` (tracebacks, call
descriptions, query strings, headers) and in PHP-serialized objects (Laravel's ``data.command``).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable
from typing import Any, TypeVar

from failboard.models import FailedJob, FailedJobDetail

__all__ = ["DEFAULT_PATTERNS", "MASK", "Job", "Redactor"]

MASK = "[redacted]"

DEFAULT_PATTERNS: tuple[str, ...] = (
    "password",
    "passwd",
    "pwd",
    "secret",
    "token",
    "authorization",
    "apikey",
    "accesskey",
    "privatekey",
    "credential",
    "cookie",
    "session",
    "cardnumber",
    "cvv",
    "cvc",
    "iban",
    "ssn",
)

_NORMALISE = re.compile(r"[_\-.\s]")

# A key and its separator: "key": , 'key': , key= , key: . The lookbehind makes a start inside a
# word fail at once, so a search costs O(length) even over a 5 MB run of letters; the value is
# matched only after a sensitive key (bounded, so an unclosed quote cannot make it quadratic).
_KEY = re.compile(
    r"""(?<![\w.\-])(?P<q>["']?)(?P<key>[A-Za-z_][\w.\-]{0,63})(?P=q)(?P<sep>[ \t]*[=:][ \t]*)"""
)
_VALUE = re.compile(
    r""""(?:[^"\\\n]|\\.){0,4096}"|'(?:[^'\\\n]|\\.){0,4096}'"""
    r"""|(?:Bearer|Basic|Token|Digest)[ \t]+[^\s,;&)}\]"']{1,4096}|[^\s,;&)}\]"']{1,4096}"""
    # A quote never closed (a cut message): mask to the end of the line rather than show it.
    r"""|["'][^\n]{0,4096}"""
)
# Dropped before the quick "could any pattern be in here?" test, as in key normalisation.
_DROP = str.maketrans("", "", "_-. \t\r\n")

# A PHP-serialized string key followed by its value: s:8:"password";s:6:"hunter";  Private and
# protected properties carry NUL-wrapped prefixes ("\0*\0password").
_PHP_KEY = re.compile(r's:\d+:"(?P<key>(?:\x00[^\x00"]*\x00)?[^"\x00]{1,64})";')
_PHP_SCALAR = re.compile(r"i:-?\d+;|d:[^;]*;|b:[01];|N;")
_PHP_STRING = re.compile(r's:(?P<length>\d+):"')

Job = TypeVar("Job", FailedJob, FailedJobDetail)


class Redactor:
    def __init__(self, patterns: Iterable[str] = DEFAULT_PATTERNS) -> None:
        self._substrings: list[str] = []
        self._globs: list[str] = []
        for pattern in patterns:
            normal = _NORMALISE.sub("", pattern.lower())
            if not normal:
                continue
            (self._globs if any(c in normal for c in "*?[") else self._substrings).append(normal)

    def sensitive(self, key: str) -> bool:
        normal = _NORMALISE.sub("", key.lower())
        return any(s in normal for s in self._substrings) or any(
            fnmatch.fnmatchcase(normal, g) for g in self._globs
        )

    # -- values ------------------------------------------------------------------------------

    def value(self, value: Any) -> Any:
        """A copy of decoded JSON (or any nest of dicts, lists and scalars) with sensitive keys'
        values masked and every string passed through :meth:`text`."""
        if isinstance(value, dict):
            return {
                key: MASK if self.sensitive(str(key)) else self.value(item)
                for key, item in value.items()
            }
        if isinstance(value, list | tuple):
            return [self.value(item) for item in value]
        if isinstance(value, str):
            return self.text(value)
        return value

    def text(self, text: str | None) -> str | None:
        """``text`` with the values of sensitive keys masked, wherever a key=value shape or a
        PHP-serialized pair shows them."""
        if not text:
            return text
        if "s:" in text:
            text = self._php(text)
        return self._pairs(text)

    def job(self, job: Job) -> Job:
        update: dict[str, Any] = {"exception_message": self.text(job.exception_message)}
        if isinstance(job, FailedJobDetail):
            payload = job.payload
            update["payload"] = (
                self.text(payload) if isinstance(payload, str) else self.value(payload)
            )
            update["exception"] = self.text(job.exception)
            update["args"] = self.value(job.args)
            update["extra"] = self.value(job.extra)
        return job.model_copy(update=update)

    # -- helpers -----------------------------------------------------------------------------

    def _may_hold_secrets(self, text: str) -> bool:
        # Most texts name no sensitive key at all: one C-speed pass settles them.
        if self._globs:
            return True
        flat = text.lower().translate(_DROP)
        return any(pattern in flat for pattern in self._substrings)

    def _pairs(self, text: str) -> str:
        # Not re.sub: after a pair whose key is not sensitive, the search resumes right after
        # its separator, since the "value" may itself hold a pair ("failed: password=x").
        out: list[str] = []
        position = start = 0
        while (match := _KEY.search(text, position)) is not None:
            position = match.end()
            if not self.sensitive(match["key"]):
                continue
            value = _VALUE.match(text, position)
            if value is None:
                continue
            found = value[0]
            if found[:1] in "\"'":
                masked = f"{found[0]}{MASK}{found[0]}"
            elif " " in found or "\t" in found:  # "Bearer abc": the scheme says what it was
                masked = f"{found.split(None, 1)[0]} {MASK}"
            else:
                masked = MASK
            out.append(text[start : value.start()] + masked)
            position = start = value.end()
        out.append(text[start:])
        return "".join(out)

    def _php(self, text: str) -> str:
        out: list[str] = []
        position = 0
        for match in _PHP_KEY.finditer(text):
            if match.start() < position:
                continue  # inside a value already masked
            key = match["key"].rsplit("\x00", 1)[-1]
            if not self.sensitive(key):
                continue
            start = match.end()
            end = _php_value_end(text, start)
            if end is None:
                continue
            out.append(text[position:start])
            out.append(f's:{len(MASK)}:"{MASK}";')
            position = end
        out.append(text[position:])
        return "".join(out)


def _php_value_end(text: str, start: int) -> int | None:
    """Where the PHP-serialized scalar at ``start`` ends, or None for anything else (arrays and
    objects are left alone; their own sensitive keys are masked one by one)."""
    scalar = _PHP_SCALAR.match(text, start)
    if scalar is not None:
        return scalar.end()
    string = _PHP_STRING.match(text, start)
    if string is None:
        return None
    # PHP counts bytes, not characters.
    remaining = int(string["length"])
    index = string.end()
    while remaining > 0 and index < len(text):
        remaining -= len(text[index].encode("utf-8", "surrogatepass"))
        index += 1
    if remaining != 0 or text[index : index + 2] != '";':
        return None
    return index + 2
