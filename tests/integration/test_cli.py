"""The command line as a user meets it: exit codes, stderr, --json, check, migrate."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from failboard.cli import app, common
from failboard.db import create_engine
from failboard.drivers.laravel import payload as laravel_payload
from failboard.drivers.laravel import schema as laravel_schema

runner = CliRunner()


def _config(tmp_path: Path, projects: str) -> Path:
    file = tmp_path / "failboard.toml"
    file.write_text(f'[spool]\nurl = "sqlite:///spool.db"\n{projects}')
    return file


GOOD = '[[projects]]\nkey = "shop"\ndriver = "laravel"\nurl = "sqlite:///shop.db"\n'
DOWN = (
    '[[projects]]\nkey = "down"\ndriver = "laravel"\n'
    'url = "mysql+pymysql://nobody:wrong@127.0.0.1:1/none"\n'
)


def test_check_reports_one_line_per_store_and_fails_when_one_is_down(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path}/shop.db")
    laravel_schema.create_tables(engine)
    engine.dispose()
    config = _config(tmp_path, GOOD + DOWN)

    before = runner.invoke(app, ["check", "--config", str(config)])
    assert before.exit_code == 1
    assert "FAIL spool" in before.stdout and "failboard migrate" in before.stdout

    migrated = runner.invoke(app, ["migrate", "--config", str(config)])
    assert migrated.exit_code == 0, migrated.output
    assert "spool schema at revision" in migrated.stdout
    again = runner.invoke(app, ["migrate", "--config", str(config)])
    assert again.exit_code == 0

    after = runner.invoke(app, ["check", "--config", str(config)])
    lines = after.stdout.splitlines()
    assert after.exit_code == 1
    assert any(line.startswith("ok") and "shop (laravel): 0 failed jobs" in line for line in lines)
    assert any(line.startswith("FAIL down (laravel)") for line in lines)


def test_errors_go_to_stderr_with_exit_1_and_usage_errors_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[spool]\nurll = "x"\n')
    # A real process, so stdout and stderr are really apart.
    out = subprocess.run(
        [sys.executable, "-m", "failboard", "jobs", "list", "--json", "--config", str(bad)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 1
    assert out.stdout == ""
    assert "spool.urll: unknown key" in out.stderr

    usage = runner.invoke(app, ["retry", "shop"])  # neither ids nor --queue
    assert usage.exit_code == 2

    config = _config(tmp_path, GOOD)
    runner.invoke(app, ["migrate", "--config", str(config)])
    unknown = runner.invoke(app, ["retry", "nope", "1", "--config", str(config)])
    assert unknown.exit_code == 1 and "unknown project 'nope'" in unknown.output
    hours = runner.invoke(app, ["prune", "shop", "--hours", "0", "--config", str(config)])
    assert hours.exit_code == 2


def test_json_output_is_one_document(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path}/shop.db")
    laravel_schema.create_tables(engine)
    engine.dispose()
    config = _config(tmp_path, GOOD)
    runner.invoke(app, ["migrate", "--config", str(config)])
    created = runner.invoke(app, ["delete", "shop", "a", "b", "--json", "--config", str(config)])
    action = json.loads(created.stdout)
    assert action["params"] == {"job_ids": ["a", "b"]} and action["status"] == "pending"
    listed = json.loads(runner.invoke(app, ["actions", "--json", "--config", str(config)]).stdout)
    assert [a["id"] for a in listed] == [action["id"]]
    jobs = json.loads(
        runner.invoke(app, ["jobs", "list", "--json", "--config", str(config)]).stdout
    )
    assert jobs == []
    cancelled = runner.invoke(app, ["cancel", str(action["id"]), "--json", "--config", str(config)])
    assert json.loads(cancelled.stdout)["status"] == "cancelled"


def test_new_token_prints_a_token_and_its_sha256() -> None:
    out = runner.invoke(app, ["new-token"])
    fields = dict(line.split(":", 1) for line in out.stdout.splitlines() if ":" in line)
    token, digest = fields["token"].strip(), fields["sha256"].strip()
    assert hashlib.sha256(token.encode()).hexdigest() == digest


def test_serve_refuses_a_public_address_without_auth(tmp_path: Path) -> None:
    config = _config(tmp_path, GOOD)
    runner.invoke(app, ["migrate", "--config", str(config)])
    out = runner.invoke(app, ["serve", "--host", "0.0.0.0", "--config", str(config)])
    assert out.exit_code == 1 and "refusing to listen on 0.0.0.0" in out.output


def test_hash_password_reads_stdin_and_prints_an_argon2_hash() -> None:
    from failboard.auth import verify_password

    out = runner.invoke(app, ["hash-password"], input="correct horse battery\n")
    assert out.exit_code == 0, out.output
    hashed = out.stdout.strip()
    assert hashed.startswith("$argon2id$") and verify_password(hashed, "correct horse battery")
    short = runner.invoke(app, ["hash-password"], input="short\n")
    assert short.exit_code == 1


def test_serve_allows_a_public_address_once_sign_in_is_configured(tmp_path: Path) -> None:
    from failboard.cli.ops import _auth_configured
    from failboard.config import parse_settings

    assert not _auth_configured(parse_settings(""))
    token = '[[tokens]]\nname = "ci"\nsha256 = "' + "0" * 64 + '"\n'
    assert _auth_configured(parse_settings(token))


def test_serve_warns_once_when_the_session_cookie_would_go_out_without_secure(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from failboard.auth import hash_password
    from failboard.config import parse_settings
    from failboard.web.security import warn_plain_cookies

    source = tmp_path / "failboard.toml"
    secret = "k" * 40
    admin = f'[[users]]\nname = "admin"\npassword_hash = "{hash_password("a long password")}"\n'
    signed = parse_settings(f'[server]\nsecret_key = "{secret}"\n{admin}', source=source)
    secure = parse_settings(
        f'[server]\nsecret_key = "{secret}"\nsecure_cookies = true\n{admin}', source=source
    )
    sso = parse_settings(
        f'[server]\nsecret_key = "{secret}"\nproxy_user_header = "X-User"\n'
        'trusted_proxies = ["10.0.0.1"]\n[[users]]\nname = "alice"\n',
        source=source,
    )
    token = parse_settings('[[tokens]]\nname = "ci"\nsha256 = "' + "0" * 64 + '"\n')

    with caplog.at_level("INFO"):
        assert warn_plain_cookies(signed, "0.0.0.0")
    [record] = caplog.records
    assert record.levelname == "WARNING"
    message = record.getMessage()
    assert "0.0.0.0" in message and "not marked Secure" in message
    assert f"secure_cookies = true under [server] in {source}" in message

    caplog.clear()
    with caplog.at_level("INFO"):
        # On this machine only, with the key set, or with no password sign-in: nothing to say.
        for host in ("127.0.0.1", "::1", "localhost"):
            assert not warn_plain_cookies(signed, host)
        assert not warn_plain_cookies(secure, "0.0.0.0")
        assert not warn_plain_cookies(sso, "10.1.2.3")
        assert not warn_plain_cookies(token, "::")
    assert caplog.records == []


def test_serve_on_a_public_address_says_the_cookie_is_not_secure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import uvicorn

    from failboard.auth import hash_password

    served: list[str] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, host, **_: served.append(host))
    config = _config(
        tmp_path,
        f'[server]\nsecret_key = "{"k" * 40}"\n'
        f'[[users]]\nname = "admin"\npassword_hash = "{hash_password("a long password")}"\n',
    )
    assert runner.invoke(app, ["migrate", "--config", str(config)]).exit_code == 0
    with caplog.at_level("WARNING"):
        out = runner.invoke(app, ["serve", "--host", "0.0.0.0", "--config", str(config)])
    assert out.exit_code == 0, out.output
    assert served == ["0.0.0.0"]
    assert any("not marked Secure" in r.getMessage() for r in caplog.records)


def test_text_from_stores_configs_and_users_prints_as_written_never_as_markup(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rich reads "[...]" as markup: a queue named "[b]m[/]" would print bold, and a stray
    "[/]" would crash the command. Every such text prints literally."""
    engine = create_engine(f"sqlite:///{tmp_path}/shop.db")
    laravel_schema.create_tables(engine)
    with engine.begin() as connection:
        laravel_schema.insert_failed_jobs(
            connection,
            [
                {
                    "uuid": "u-1",
                    "connection": "database",
                    "queue": "[b]m[/]",
                    "payload": laravel_payload.build_payload("App\\Jobs\\[/]Send", uuid="u-1"),
                    "exception": "RuntimeException: [SQL: select 1] closing [/] tag",
                    "failed_at": datetime(2026, 12, 4, 12),
                }
            ],
        )
    engine.dispose()
    config = _config(tmp_path, GOOD)
    runner.invoke(app, ["migrate", "--config", str(config)])
    monkeypatch.setattr(common.console, "width", 250)  # wide: the queue and job columns show
    wide = runner.invoke(app, ["jobs", "list", "--config", str(config)])
    assert wide.exit_code == 0, wide.output
    assert "[b]m[/]" in wide.stdout and "App\\Jobs\\[/]Send" in wide.stdout
    assert "[SQL: select 1] closing [/] tag" in wide.stdout
    asked = runner.invoke(app, ["delete", "shop", "u-1", "--by", "[/]eve", "--config", str(config)])
    assert asked.exit_code == 0, asked.output
    listed = runner.invoke(app, ["actions", "--config", str(config)])
    assert listed.exit_code == 0 and "[/]eve" in listed.stdout
    # A config error quotes the key as projects[shop], brackets and all.
    typo = _config(tmp_path, GOOD.replace('"laravel"', '"laravle"'))
    bad = runner.invoke(app, ["check", "--config", str(typo)])
    assert bad.exit_code == 1 and "projects[shop]: unknown driver 'laravle'" in bad.output
    # Help texts name config sections: [[tokens]], [server] host.
    assert "[[tokens]]" in runner.invoke(app, ["new-token", "--help"]).stdout
    assert "[server] host" in runner.invoke(app, ["serve", "--help"]).stdout
