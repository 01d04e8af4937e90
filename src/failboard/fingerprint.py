"""Exception text → (class, message, trace), and the fingerprint that groups the same bug.

Failure stores keep exceptions as text: PHP's ``(string) $e`` for Laravel, Python's formatted
traceback for Celery, RQ, Dramatiq and the rest. :func:`split_exception` reads both (and anything
else without raising), and :func:`fingerprint` hashes what stays the same when the same bug
strikes again: the class, the message with its variable parts masked, and the job name.

The text is untrusted and may be huge, cut short, empty or full of replacement characters; every
function here is total (never raises on odd input) and linear in the text it looks at.
"""

from __future__ import annotations

import hashlib
import re
from typing import NamedTuple

__all__ = ["ExceptionParts", "fingerprint", "mask_message", "split_exception"]


class ExceptionParts(NamedTuple):
    """The parts of an exception text: unknown parts are None, ``trace`` is "" when absent."""

    exception_class: str | None
    message: str | None
    trace: str


_EMPTY = ExceptionParts(None, None, "")

# -- Python ----------------------------------------------------------------------------------

_PY_HEADER = re.compile(r"^Traceback \(most recent call last\):[ \t]*$", re.MULTILINE)
_PY_GROUP_HEADER = re.compile(r"^\s*\+ Exception Group Traceback \(most recent call last\):")
_PY_GROUP_LINE = re.compile(r"^\s*\| (?!\s)(?!File \")(.*)$", re.MULTILINE)
_DOTTED = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*")

# -- PHP -------------------------------------------------------------------------------------

# A PHP class name: namespaced with backslashes; anonymous classes print as "Foo@anonymous...".
_PHP_CLASS = re.compile(
    r"\\?[A-Za-z_\x80-\uffff][\w\x80-\uffff]*(?:\\[A-Za-z_\x80-\uffff][\w\x80-\uffff]*)*"
)
_PHP_LOCATION = re.compile(r"\S[^\n]*:\d+")
_PHP5 = re.compile(
    r"^exception '(?P<cls>[^']+)' with message '(?P<msg>.*)' in (?P<loc>[^\n]*:\d+)", re.S
)

# -- anything else ---------------------------------------------------------------------------

_CLASS_SUFFIX = re.compile(r"(?:Error|Exception|Exit|Interrupt|Warning|Exceeded|Timeout|Failure)$")


def split_exception(text: str | bytes | None) -> ExceptionParts:
    """Split an exception text into class, message and trace.

    - Python tracebacks: the last exception of a chain (the one that was raised last), its
      message (all lines of it), and the traceback lines before it as ``trace``.
    - PHP (``Class: message in /file.php:42\\nStack trace:\\n#0 ...``): PHP prints a chain
      innermost first, each outer exception after a blank line and ``Next``. We take the first
      block — the root cause, and the one a reader that only fetched a prefix of the text sees too,
      so that lists and detail pages agree. ``trace`` is its location and stack.
    - Anything else: ``Class: message`` on the first line when it looks like that, else the whole
      text as the message.
    """
    if text is None:
        return _EMPTY
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    text = text.replace("\r\n", "\n").replace("\x00", "")
    if not text.strip():
        return _EMPTY
    if _PY_GROUP_HEADER.match(text):
        return _python_group(text)
    headers = list(_PY_HEADER.finditer(text))
    if headers:
        return _python(text, headers[-1].end())
    php = _php(text)
    if php is not None:
        return php
    return _plain(text)


def _python(text: str, start: int) -> ExceptionParts:
    lines = text[start:].split("\n")
    for index, line in enumerate(lines):
        if not line or line[0] in " \t":
            continue  # frames and source lines are indented
        cls, message = _class_and_message(line, strict=False)
        rest = "\n".join(lines[index + 1 :]).rstrip()
        if rest:
            message = f"{message}\n{rest}" if message else rest.strip() or None
        trace = text[: start + len("\n".join(lines[:index]))].strip()
        return ExceptionParts(cls, message, trace)
    # A traceback cut off before its exception line (a truncated prefix): no class known.
    return ExceptionParts(None, None, text.strip())


def _python_group(text: str) -> ExceptionParts:
    # "  + Exception Group Traceback ..." then "  | File ..." frames, then "  | Group: msg (n
    # sub-exceptions)". The group itself is what was raised; its members follow as sub-tracebacks.
    for match in _PY_GROUP_LINE.finditer(text):
        cls, message = _class_and_message(match.group(1), strict=False)
        if cls is not None:
            return ExceptionParts(cls, message, text[: match.start()].strip())
    return _plain(text)


def _php(text: str) -> ExceptionParts | None:
    block = text.lstrip().split("\n\nNext ", 1)[0]
    old = _PHP5.match(block)
    if old:
        stack = block[old.end() :].strip()
        trace = f"{old.group('loc')}\n{stack}".strip()
        return ExceptionParts(old.group("cls"), old.group("msg") or None, trace)
    head, marker, stack = block.partition("\nStack trace:")
    location = _php_location(head)
    if not marker and location is None:
        return None
    cls_match = _PHP_CLASS.match(head)
    if cls_match is None:
        return None
    after = head[cls_match.end() :]
    if not (after.startswith(":") or (location and after.startswith(" in "))):
        return None
    message_end, loc = location if location else (len(head), "")
    message = head[cls_match.end() : message_end].removeprefix(":").strip()
    trace = "\n".join(part for part in (loc, ("Stack trace:" + stack) if marker else "") if part)
    return ExceptionParts(cls_match.group(0).lstrip("\\"), message or None, trace.strip())


def _php_location(head: str) -> tuple[int, str] | None:
    """Where ``" in /file.php:42"`` starts at the end of a PHP header, and the location. The
    last ``" in "`` of the last line: messages may say "in" themselves, paths rarely do."""
    line_start = head.rfind("\n") + 1
    at = head.rfind(" in ", line_start)
    if at < 0:
        return None
    loc = head[at + 4 :].strip()
    return (at, loc) if _PHP_LOCATION.fullmatch(loc) else None


def _plain(text: str) -> ExceptionParts:
    stripped = text.strip()
    first, _, rest = stripped.partition("\n")
    cls, message = _class_and_message(first, strict=True)
    if cls is None:
        return ExceptionParts(None, stripped, "")
    return ExceptionParts(cls, message, rest.strip())


def _class_and_message(line: str, *, strict: bool) -> tuple[str | None, str | None]:
    """``"pkg.Error: msg"`` → ("pkg.Error", "msg"). ``strict`` demands a class-looking name, for
    text that is not known to be an exception line."""
    line = line.strip()
    name, colon, message = line.partition(":")
    name = name.strip()
    if colon and message and not message.startswith((" ", "\t")) and "\\" not in name:
        # "http://host:80/..." or "a:b" is not "Class: message".
        return (None, line) if strict else (None, line or None)
    is_name = bool(_DOTTED.fullmatch(name) or _PHP_CLASS.fullmatch(name))
    if not is_name:
        return None, line or None
    if strict and not _looks_like_class(name, has_message=bool(colon)):
        return None, line or None
    return name, message.strip() or None


def _looks_like_class(name: str, *, has_message: bool) -> bool:
    last = re.split(r"[.\\]", name)[-1]
    if not last[:1].isupper():
        return False
    if has_message:
        return True
    return bool(_CLASS_SUFFIX.search(last)) or "." in name or "\\" in name


# -- fingerprint -----------------------------------------------------------------------------

_MASKS: tuple[tuple[re.Pattern[str], str], ...] = (
    # Quoted values: 'x', "x" (not apostrophes inside words: "can't").
    (re.compile(r"(?<![\w])'[^'\n]{0,200}'(?![\w])"), "'?'"),
    (re.compile(r'(?<![\w\\])"[^"\n]{0,200}"(?![\w])'), '"?"'),
    (
        re.compile(
            r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b"
        ),
        "<uuid>",
    ),
    (re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"), "<email>"),
    (re.compile(r"\b0x[0-9a-fA-F]+\b"), "<hex>"),
    # Hex ids (sha, ObjectId, request ids): long runs of hex with at least one digit.
    (re.compile(r"\b(?=[0-9a-fA-F]*\d)[0-9a-fA-F]{8,}\b"), "<hex>"),
    (re.compile(r"\d+(?:\.\d+)?"), "#"),
    (re.compile(r"\s+"), " "),
)

_MESSAGE_HEAD = 1_000
"""Only the start of a message counts: readers that fetch a prefix of the text agree with
detail pages, and a huge message costs no more than a short one."""

_MASKED_HEAD = 300


def mask_message(message: str | None) -> str:
    """The message with numbers, uuids, hex ids, e-mail addresses and quoted values masked."""
    if not message:
        return ""
    text = message[:_MESSAGE_HEAD]
    for pattern, replacement in _MASKS:
        text = pattern.sub(replacement, text)
    return text.strip()[:_MASKED_HEAD]


def fingerprint(exception_class: str | None, message: str | None, name: str | None) -> str:
    """A short (12 hex digits) stable hash of class + masked message + job name.

    The same bug gives the same fingerprint whatever the ids, amounts, addresses or quoted values
    in its message; another exception class or another job gives another one.
    """
    basis = "\x1f".join(
        ((exception_class or "").strip().lstrip("\\"), mask_message(message), (name or "").strip())
    )
    return hashlib.sha256(basis.encode("utf-8", "backslashreplace")).hexdigest()[:12]
