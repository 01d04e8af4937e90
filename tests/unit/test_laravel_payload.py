from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from failboard.drivers.laravel.payload import (
    CALL_QUEUED_HANDLER,
    PayloadError,
    build_payload,
    decode_payload,
    payload_summary,
    php_json_encode,
    php_serialize_object,
    reset_for_retry,
)

UUID = "9f1c2b3a-0000-4000-8000-00000000abcd"


def test_php_json_encode_matches_php() -> None:
    # php -r 'echo json_encode(["a/b" => "Café \u{2028} App\\Jobs\\X", "n" => null, "t" => true,
    #          "f" => 1.5, "l" => [1, 2]], JSON_UNESCAPED_UNICODE);'
    value = {"a/b": "Café \u2028 App\\Jobs\\X", "n": None, "t": True, "f": 1.5, "l": [1, 2]}
    assert php_json_encode(value) == (
        '{"a\\/b":"Café \\u2028 App\\\\Jobs\\\\X","n":null,"t":true,"f":1.5,"l":[1,2]}'
    )
    assert php_json_encode("é", unescaped_unicode=False) == '"\\u00e9"'


def test_build_payload_has_laravels_keys_in_laravels_order() -> None:
    payload = build_payload(
        "App\\Jobs\\SendInvoice", uuid=UUID, max_tries=3, timeout=60, created_at=1_700_000_000
    )
    assert list(payload) == [
        "uuid",
        "displayName",
        "job",
        "maxTries",
        "maxExceptions",
        "failOnTimeout",
        "backoff",
        "timeout",
        "retryUntil",
        "data",
        "createdAt",
    ]
    assert list(payload["data"]) == ["commandName", "command", "batchId"]
    assert payload["job"] == CALL_QUEUED_HANDLER == "Illuminate\\Queue\\CallQueuedHandler@call"
    assert payload["data"]["command"] == 'O:20:"App\\Jobs\\SendInvoice":0:{}'
    text = php_json_encode(payload)
    assert text.startswith(
        '{"uuid":"9f1c2b3a-0000-4000-8000-00000000abcd","displayName":"App\\\\Jobs\\\\SendInvoice",'
        '"job":"Illuminate\\\\Queue\\\\CallQueuedHandler@call","maxTries":3,"maxExceptions":null,'
        '"failOnTimeout":false,"backoff":null,"timeout":60,"retryUntil":null,"data":{'
    )
    assert text.endswith('"batchId":null},"createdAt":1700000000}')


def test_build_payload_for_redis_and_horizon() -> None:
    redis = build_payload("App\\Jobs\\X", uuid=UUID, redis=True, attempts=2)
    assert list(redis)[-2:] == ["id", "attempts"] and redis["attempts"] == 2
    assert len(redis["id"]) == 32 and redis["id"].isalnum()
    horizon = build_payload("App\\Jobs\\X", horizon=True, tags=["order:1"], pushed_at=1.5)
    assert list(horizon)[-6:] == ["id", "attempts", "type", "tags", "silenced", "pushedAt"]
    assert horizon["pushedAt"] == "1.5000" and horizon["tags"] == ["order:1"]
    assert "attempts" not in build_payload("App\\Jobs\\X")


def test_php_serialize_object() -> None:
    assert php_serialize_object("App\\Jobs\\X", {"id": 7, "name": "é", "ok": True, "n": None}) == (
        'O:10:"App\\Jobs\\X":4:{s:2:"id";i:7;s:4:"name";s:2:"é";s:2:"ok";b:1;s:1:"n";N;}'
    )


def test_decode_payload_is_tolerant() -> None:
    assert decode_payload('{"a":1}') == {"a": 1}
    assert decode_payload("{not json") == "{not json"
    assert decode_payload("") == ""
    assert decode_payload(None) is None
    assert decode_payload("[" * 100_000) == "[" * 100_000


def test_reset_for_retry_keeps_a_database_payload_byte_for_byte() -> None:
    text = php_json_encode(build_payload("App\\Jobs\\Café/X", uuid=UUID, created_at=1_700_000_000))
    assert reset_for_retry(text, 1_800_000_000) == text


def test_reset_for_retry_resets_attempts_and_nothing_else() -> None:
    text = (
        '{"uuid":"u","displayName":"App\\\\Jobs\\\\X","data":{"command":"O:1:\\"X\\":1:'
        '{s:8:\\"attempts\\";i:9;}","attempts":7},"createdAt":100, "attempts" : 5 ,"x":"\\u00e9"}'
    )
    out = reset_for_retry(text, 1_000)
    assert out == text.replace('"attempts" : 5 ', '"attempts" : 0 ')
    assert json.loads(out)["data"]["attempts"] == 7  # only the top-level key is Laravel's
    null_attempts = '{"attempts":null}'
    assert reset_for_retry(null_attempts, 1) == null_attempts  # isset() is false for null


def test_reset_for_retry_moves_retry_until_by_the_original_window() -> None:
    payload = build_payload("App\\Jobs\\X", uuid=UUID, retry_until=1_000 + 600, created_at=1_000)
    out = json.loads(reset_for_retry(php_json_encode(payload), 50_000))
    assert out["retryUntil"] == 50_600 and out["createdAt"] == 1_000 and out["uuid"] == UUID
    now = datetime(2026, 1, 1, tzinfo=UTC)
    out = json.loads(reset_for_retry(php_json_encode(payload), now))
    assert out["retryUntil"] == int(now.timestamp()) + 600
    horizon = '{"retryUntil":1600,"pushedAt":"1000.1234"}'
    assert json.loads(reset_for_retry(horizon, 5_000))["retryUntil"] == 5_600
    unknown_start = '{"retryUntil":1600}'
    assert reset_for_retry(unknown_start, 5_000) == unknown_start


@pytest.mark.parametrize("text", ["{not json", "[1,2]", '"x"', "", '{"a":1} trailing', "{"])
def test_reset_for_retry_refuses_what_is_not_a_json_object(text: str) -> None:
    with pytest.raises(PayloadError):
        reset_for_retry(text, 1)


def test_payload_summary_of_a_complete_and_of_a_cut_payload() -> None:
    payload = build_payload('App\\Jobs\\Send"Quoted"', uuid=UUID, max_tries=4, redis=True)
    payload["attempts"] = 3
    text = php_json_encode(payload)
    full = payload_summary(text, complete=True)
    assert full == {
        "displayName": 'App\\Jobs\\Send"Quoted"',
        "commandName": 'App\\Jobs\\Send"Quoted"',
        "attempts": 3,
        "maxTries": 4,
    }
    cut = payload_summary(text[:150], text[-40:], complete=False)
    assert cut["displayName"] == 'App\\Jobs\\Send"Quoted"' and cut["attempts"] == 3
    assert payload_summary("{broken", complete=True) == {}
    assert payload_summary(
        '{"displayName":"App\\\\Jobs\\\\X","maxTries":5,"da', complete=False
    ) == {
        "displayName": "App\\Jobs\\X",
        "maxTries": 5,
    }


def test_a_cut_payload_ignores_keys_quoted_inside_strings() -> None:
    # The head of a long payload is searched, not parsed: a key written inside a string value
    # (escaped quotes, as in a serialized command) is not the payload's own key.
    head = (
        '{"displayName":"App\\\\Jobs\\\\Charge","maxTries":5,"data":{"commandName":"App\\\\Jobs'
        '\\\\Charge","command":"O:16:\\"App\\\\Jobs\\\\Charge\\":1:{s:4:\\"note\\";s:40:\\"'
        '\\"attempts\\":99, \\"maxTries\\":77, \\"displayName\\":\\"Fake\\"\\";}'
    )
    summary = payload_summary(head, ',"attempts":3}', complete=False)
    assert summary == {
        "displayName": "App\\Jobs\\Charge",
        "commandName": "App\\Jobs\\Charge",
        "attempts": 3,
        "maxTries": 5,
    }
    # A payload whose very first character starts a key still counts.
    assert payload_summary('"attempts":2', None, complete=False) == {"attempts": 2}
