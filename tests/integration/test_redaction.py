"""Sensitive values never leave failboard: the API, the pages, the raw view and the CLI all mask
them, for a real Laravel-shaped job whose payload and exception carry secrets."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from failboard.cli import app as cli_app
from failboard.config import parse_settings
from failboard.db import create_engine
from failboard.drivers.laravel import payload as laravel_payload
from failboard.drivers.laravel import schema as laravel_schema
from failboard.web import create_app

SECRETS = ("hunter2-secret", "4111111111111111", "tok-abc-secret", "ann@example.com")


def _store(path: Path) -> tuple[str, str]:
    url = f"sqlite:///{path}"
    engine = create_engine(url)
    laravel_schema.create_tables(engine)
    job_uuid = str(uuid.uuid4())
    payload = laravel_payload.build_payload(
        "App\\Jobs\\ChargeCustomer",
        uuid=job_uuid,
        properties={
            "password": "hunter2-secret",
            "card_number": "4111111111111111",
            "email": "ann@example.com",
            "order": 42,
        },
    )
    row = {
        "uuid": job_uuid,
        "connection": "database",
        "queue": "billing",
        "payload": payload,
        "exception": (
            "Illuminate\\Http\\Client\\RequestException: HTTP 401 for "
            "https://pay.example/charge?token=tok-abc-secret in /app/Pay.php:12\n"
            "Stack trace:\n#0 /app/Pay.php(12): charge(password='hunter2-secret')"
        ),
        "failed_at": datetime.now(UTC).replace(tzinfo=None, microsecond=0),
    }
    with engine.begin() as connection:
        laravel_schema.insert_failed_jobs(connection, [row])
    engine.dispose()
    return url, job_uuid


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[TestClient, str, Path]]:
    url, job_uuid = _store(tmp_path / "shop.db")
    config = tmp_path / "failboard.toml"
    config.write_text(
        f"""
[spool]
url = "sqlite:///{tmp_path}/spool.db"
[[projects]]
key = "shop"
driver = "laravel"
url = "{url}"
redact = ["email"]
"""
    )
    settings = parse_settings(config.read_text(), source=config)
    app = create_app(settings, inline=False)
    app.state.board.spool.migrate()
    with TestClient(app) as client:
        yield client, job_uuid, config


def _assert_clean(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"{secret!r} leaked"
    assert "[redacted]" in text


def test_api_list_and_detail_mask_secrets(setup: tuple[TestClient, str, Path]) -> None:
    client, job_uuid, _ = setup
    listing = client.get("/api/v1/jobs")
    assert listing.status_code == 200
    _assert_clean(listing.text)
    detail = client.get(f"/api/v1/jobs/shop/{job_uuid}")
    assert detail.status_code == 200
    _assert_clean(detail.text)
    # What is not sensitive is still there to debug with.
    assert "App\\\\Jobs\\\\ChargeCustomer" in detail.text
    assert "pay.example/charge" in detail.text


def test_pages_and_raw_views_mask_secrets(setup: tuple[TestClient, str, Path]) -> None:
    client, job_uuid, _ = setup
    _assert_clean(client.get("/").text)
    _assert_clean(client.get("/groups").text)
    _assert_clean(client.get("/api/v1/groups").text)
    _assert_clean(client.get(f"/jobs/shop/{job_uuid}").text)
    for part in ("payload", "exception"):
        raw = client.get(f"/raw/shop/{job_uuid}", params={"part": part})
        assert raw.status_code == 200
        _assert_clean(raw.text)


def test_cli_masks_secrets(setup: tuple[TestClient, str, Path]) -> None:
    _, job_uuid, config = setup
    runner = CliRunner()
    shown = runner.invoke(cli_app, ["jobs", "show", "shop", job_uuid, "--json", "-c", str(config)])
    assert shown.exit_code == 0, shown.output
    _assert_clean(shown.stdout)
    assert json.loads(shown.stdout)["id"] == job_uuid
    listed = runner.invoke(cli_app, ["jobs", "list", "--json", "-c", str(config)])
    assert listed.exit_code == 0, listed.output
    assert "tok-abc-secret" not in listed.stdout
