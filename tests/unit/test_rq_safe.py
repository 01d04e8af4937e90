"""The rq driver's decoding of untrusted bytes: never runs anything, never raises."""

from __future__ import annotations

import base64
import os
import pickle
import zlib
from typing import Any

import pytest
from pydantic import ValidationError

from failboard.drivers.rq.options import Options
from failboard.drivers.rq.reader import job_name
from failboard.drivers.rq.safe import Unreadable, describe_serialized, read_pickle
from failboard.drivers.rq.store import decode_exc_string, inflate, parse_time

CALLED: list[str] = []


class Evil:
    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, ("echo pwned > /tmp/failboard-pwned",))


def test_a_pickle_that_would_run_code_is_read_without_running_it() -> None:
    data = zlib.compress(pickle.dumps(("app.jobs.send", None, (Evil(), 3), {"to": "a@b"})))
    out = describe_serialized(data, compressed=True)
    assert out is not None
    assert out["func"] == "app.jobs.send"
    assert out["args"] == ["<object posix.system>", 3]
    assert out["kwargs"] == {"to": "a@b"}
    assert not os.path.exists("/tmp/failboard-pwned")


# rq pickles with the highest protocol; 0-2 write bytes as a call to _codecs.encode (an object).
@pytest.mark.parametrize("protocol", range(3, pickle.HIGHEST_PROTOCOL + 1))
def test_plain_values_read_back(protocol: int) -> None:
    value = {"a": [1, 2.5, None, True], "b": (b"x", "é"), "c": {"n": -(10**30)}}
    assert read_pickle(pickle.dumps(value, protocol=protocol)) == value


@pytest.mark.parametrize("data", [b"", b"garbage", b"\x80\x05\x95", pickle.dumps([1])[:-3]])
def test_broken_pickles_are_unreadable_not_errors(data: bytes) -> None:
    with pytest.raises(Unreadable):
        read_pickle(data)
    out = describe_serialized(zlib.compress(data) or b"x", compressed=True)
    assert out is None or out["serializer"] == "unknown"


def test_json_serialized_jobs_read_as_json() -> None:
    data = zlib.compress(b'["app.f", null, [1, "x"], {"k": 2}]')
    out = describe_serialized(data, compressed=True)
    assert out is not None and out["serializer"] == "json"
    assert (out["func"], out["args"], out["kwargs"]) == ("app.f", [1, "x"], {"k": 2})


def test_exc_string_decoding_is_total_and_bounded() -> None:
    text = "Traceback (most recent call last):\nValueError: bad\n"
    packed = base64.b64encode(zlib.compress(text.encode()))
    assert decode_exc_string(packed) == text
    assert decode_exc_string(b"not base64 at all!") == "not base64 at all!"
    assert (
        decode_exc_string(base64.b64encode(b"not zlib")) == base64.b64encode(b"not zlib").decode()
    )
    assert decode_exc_string(None) is None
    bomb = zlib.compress(b"A" * 50_000_000)
    out, raw = inflate(bomb, limit=1000)
    assert len(out) == 1000 and not raw


def test_times_and_names() -> None:
    assert parse_time(b"2026-12-04T15:00:00.123456Z") is not None
    assert parse_time(b"2026-12-04T15:00:00Z") is not None
    assert parse_time(b"yesterday") is None and parse_time(None) is None
    assert job_name("app.jobs.send_mail('a@b', 3)") == "app.jobs.send_mail"
    assert job_name("tests.rq_jobs.Charge.run()") == "tests.rq_jobs.Charge.run"
    assert job_name("Nightly report for <b>ops</b>") is None
    assert job_name(None) is None


def test_options() -> None:
    assert Options().prefix == "rq:"
    assert Options(prefix="myapp").prefix == "myapp:"
    assert Options(failure_ttls={"emails": 60}).ttl("emails") == 60
    assert Options().ttl("other") == 31_536_000
    for bad in ({"prefix": "rq queue"}, {"failure_ttl": 0}, {"failure_ttls": {"q": -1}}):
        with pytest.raises(ValidationError):
            Options.model_validate(bad)
    with pytest.raises(ValidationError):
        Options.model_validate({"url2": "x"})
