from __future__ import annotations

import random
import uuid

import pytest

from failboard.fingerprint import ExceptionParts, fingerprint, mask_message, split_exception

PHP_CHAINED = (
    "PDOException: SQLSTATE[HY000] [2002] Connection refused in "
    "/var/www/vendor/laravel/framework/src/Illuminate/Database/Connectors/Connector.php:65\n"
    "Stack trace:\n"
    "#0 /var/www/vendor/laravel/framework/src/Illuminate/Database/Connectors/Connector.php(65): "
    "PDO->__construct('mysql:host=db;p...', 'app', Object(SensitiveParameterValue), Array)\n"
    "#1 {main}\n"
    "\n"
    "Next Illuminate\\Database\\QueryException: SQLSTATE[HY000] [2002] Connection refused "
    "(Connection: mysql, SQL: select * from `users` where `id` = 42) in "
    "/var/www/vendor/laravel/framework/src/Illuminate/Database/Connection.php:825\n"
    "Stack trace:\n"
    "#0 {main}"
)

PY_CHAINED = """\
Traceback (most recent call last):
  File "/app/tasks.py", line 10, in charge
    card = cards[user_id]
           ~~~~~^^^^^^^^^
KeyError: 42

During handling of the above exception, another exception occurred:

Traceback (most recent call last):
  File "/app/tasks.py", line 12, in charge
    raise PaymentError(f"no card for user {user_id}")
billing.errors.PaymentError: no card for user 42
"""


def test_php_exception_with_namespace_and_location() -> None:
    text = (
        "Illuminate\\Queue\\MaxAttemptsExceededException: App\\Jobs\\SendInvoice has been "
        "attempted too many times. in /var/www/vendor/laravel/framework/src/Illuminate/Queue/"
        "Worker.php:785\nStack trace:\n#0 /var/www/x.php(12): foo()\n#1 {main}"
    )
    parts = split_exception(text)
    assert parts.exception_class == "Illuminate\\Queue\\MaxAttemptsExceededException"
    assert parts.message == "App\\Jobs\\SendInvoice has been attempted too many times."
    assert parts.trace.startswith("/var/www/vendor/laravel/framework/src/Illuminate/Queue/Worker")
    assert "#1 {main}" in parts.trace


def test_php_chain_takes_the_first_block_the_root_cause() -> None:
    parts = split_exception(PHP_CHAINED)
    assert parts.exception_class == "PDOException"
    assert parts.message == "SQLSTATE[HY000] [2002] Connection refused"
    assert "Next" not in parts.trace


def test_php_message_saying_in_and_spanning_lines() -> None:
    parts = split_exception(
        "Exception: failed in step 2\nsee log in /app/x.php:3\nStack trace:\n#0"
    )
    assert parts == ExceptionParts(
        "Exception", "failed in step 2\nsee log", "/app/x.php:3\nStack trace:\n#0"
    )


def test_php_empty_message_and_php5_format() -> None:
    assert split_exception("RuntimeException:  in /x.php:3\nStack trace:\n#0 {main}")[:2] == (
        "RuntimeException",
        None,
    )
    old = split_exception("exception 'Exception' with message 'boom' in /x.php:3\nStack trace:\n#0")
    assert old[:2] == ("Exception", "boom")


def test_php_prefix_cut_before_stack_trace_still_gives_class() -> None:
    text = "Illuminate\\Database\\QueryException: SQLSTATE[23000]: Integrity constraint " + "x" * 50
    parts = split_exception(text)
    assert parts.exception_class == "Illuminate\\Database\\QueryException"
    assert parts.message is not None and parts.message.startswith("SQLSTATE[23000]")


def test_python_chained_traceback_takes_the_last_exception() -> None:
    parts = split_exception(PY_CHAINED)
    assert parts.exception_class == "billing.errors.PaymentError"
    assert parts.message == "no card for user 42"
    assert "KeyError: 42" in parts.trace and parts.trace.startswith("Traceback")


def test_python_exception_without_message_and_multiline_message() -> None:
    bare = split_exception(
        'Traceback (most recent call last):\n  File "x.py", line 1\nKeyboardInterrupt\n'
    )
    assert bare == ExceptionParts(
        "KeyboardInterrupt", None, 'Traceback (most recent call last):\n  File "x.py", line 1'
    )
    multi = split_exception(
        'Traceback (most recent call last):\n  File "x.py", line 1, in <module>\n'
        "ValueError: first line\n  second line\nthird line\n"
    )
    assert multi.exception_class == "ValueError"
    assert multi.message == "first line\n  second line\nthird line"


def test_python_traceback_cut_before_its_exception_line() -> None:
    parts = split_exception('Traceback (most recent call last):\n  File "x.py", line 1, in <mo')
    assert parts.exception_class is None and parts.message is None


def test_python_exception_group() -> None:
    text = (
        "  + Exception Group Traceback (most recent call last):\n"
        '  |   File "x.py", line 1, in <module>\n'
        "  | ExceptionGroup: many (2 sub-exceptions)\n"
        "  +-+---------------- 1 ----------------\n"
        "    | ValueError: a\n"
    )
    assert split_exception(text)[:2] == ("ExceptionGroup", "many (2 sub-exceptions)")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (None, (None, None)),
        ("", (None, None)),
        ("   \n\t ", (None, None)),
        ("something went wrong", (None, "something went wrong")),
        ("http://example.com:80/x failed", (None, "http://example.com:80/x failed")),
        ("error: lower case is not a class", (None, "error: lower case is not a class")),
        ("TimeoutError", ("TimeoutError", None)),
        ("Killed", (None, "Killed")),
        ("ValueError: bad value\nmore", ("ValueError", "bad value")),
        (b"\xff\xfe ValueError", (None, "\ufffd\ufffd ValueError")),
        ("\ufffd\ufffd\x00garbage\ufffd", (None, "\ufffd\ufffdgarbage\ufffd")),
    ],
)
def test_odd_input_never_raises(text: str | bytes | None, expected: tuple[object, object]) -> None:
    assert split_exception(text)[:2] == expected


def test_random_garbage_never_raises() -> None:
    rng = random.Random(1)
    alphabet = "ab:\n \\/#.()[]'\"\ufffdTraceback (most recent call last):Stack trace:Next in 0123"
    for _ in range(500):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 200)))
        parts = split_exception(text)
        assert isinstance(parts.trace, str)
        fingerprint(parts.exception_class, parts.message, "job")


def test_mask_message_masks_variable_parts() -> None:
    message = (
        "User 12345 (ann.lee+x@example.co.uk) order 9f1c2b3a-0000-4000-8000-00000000abcd "
        "hash deadbeef42 at 0x7f3a 'quoted value' \"other\" costs 3.50"
    )
    assert mask_message(message) == (
        "User # (<email>) order <uuid> hash <hex> at <hex> '?' \"?\" costs #"
    )
    assert mask_message("can't connect") == "can't connect"
    assert mask_message(None) == ""


def test_same_bug_with_different_ids_gives_the_same_fingerprint() -> None:
    name = "App\\Jobs\\SendInvoice"
    prints = {
        fingerprint(
            "RuntimeException",
            f"Invoice {n} for {uuid.uuid4()} ({n}@example.com) failed: 'ref-{n}' 0x{n:x}",
            name,
        )
        for n in range(1, 50)
    }
    assert len(prints) == 1
    (value,) = prints
    assert len(value) == 12 and int(value, 16) >= 0


def test_different_class_message_or_job_gives_another_fingerprint() -> None:
    base = fingerprint("RuntimeException", "SMTP timeout", "App\\Jobs\\SendInvoice")
    assert base != fingerprint("LogicException", "SMTP timeout", "App\\Jobs\\SendInvoice")
    assert base != fingerprint("RuntimeException", "SMTP refused", "App\\Jobs\\SendInvoice")
    assert base != fingerprint("RuntimeException", "SMTP timeout", "App\\Jobs\\SendReminder")
    assert base == fingerprint("\\RuntimeException", "SMTP  timeout ", "App\\Jobs\\SendInvoice")


def test_fingerprint_is_stable_across_runs() -> None:
    # A pinned value: changing the hash would split every group operators already know.
    assert fingerprint("ValueError", "user 42 not found", "tasks.charge") == "f5df394d2a84"
    assert fingerprint(None, None, None) == fingerprint("", "", "")


def test_fingerprint_of_a_prefix_matches_the_full_text() -> None:
    # Lists read only the first 2000 characters of an exception; detail pages read it all.
    long_sql = "insert into `logs` values " + ", ".join(f"({i}, 'x')" for i in range(2_000))
    text = f"Illuminate\\Database\\QueryException: {long_sql} in /x.php:1\nStack trace:\n#0"
    full, head = split_exception(text), split_exception(text[:2_000])
    assert fingerprint(full.exception_class, full.message, "j") == fingerprint(
        head.exception_class, head.message, "j"
    )
