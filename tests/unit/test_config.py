from __future__ import annotations

from pathlib import Path

import pytest

from failboard.config import load_settings, parse_settings
from failboard.exceptions import ConfigError, NotFound

GOOD = """
[spool]
url = "sqlite:///spool.db"
lease_seconds = 30

[server]
secret_key = "${SECRET:-dev}"

[[projects]]
key = "shop"
name = "Shop API"
driver = "laravel"
url = "mysql+pymysql://reader:${SHOP_DB_PASSWORD}@db.shop/shop"
table = "failed_jobs"
horizon = false

[[projects]]
key = "billing"
driver = "laravel"
url = "sqlite:///billing.db"
agent = "inline"
"""


def test_a_good_file_parses_with_interpolation(tmp_path: Path) -> None:
    file = tmp_path / "failboard.toml"
    file.write_text(GOOD)
    settings = load_settings(file, environ={"SHOP_DB_PASSWORD": "s3cret"})
    assert settings.spool.lease_seconds == 30
    assert settings.server.secret_key == "dev"
    shop, billing = settings.projects
    assert shop.url == "mysql+pymysql://reader:s3cret@db.shop/shop"
    assert shop.name == "Shop API" and shop.options.table == "failed_jobs"
    assert billing.name == "billing" and billing.agent == "inline"
    # Relative SQLite paths are anchored at the config file's folder, not the cwd.
    assert settings.spool.url == f"sqlite:///{tmp_path}/spool.db"
    assert billing.url == f"sqlite:///{tmp_path}/billing.db"
    assert settings.project("shop") is shop
    with pytest.raises(NotFound, match="configured: shop, billing"):
        settings.project("nope")


def _error(text: str, environ: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        parse_settings(text, source="f.toml", environ=environ or {})
    message = info.value.message
    assert "\n" not in message, "one line"
    assert message.startswith("f.toml: ")
    return message


def test_a_missing_variable_names_the_key_and_the_fix() -> None:
    message = _error(GOOD)
    assert "projects[0].url" in message
    assert "SHOP_DB_PASSWORD is not set" in message
    assert "${SHOP_DB_PASSWORD:-default}" in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            '[spool]\nurll = "x"\n',
            "f.toml: spool.urll: unknown key; remove it or check its spelling",
        ),
        (
            "[spool]\nlease_seconds = 1\n",
            "spool.lease_seconds: Input should be greater than or equal to 5",
        ),
        (
            '[[projects]]\nkey = "Bad Key"\ndriver = "laravel"\nurl = "sqlite:///x.db"\n',
            "is not a project key",
        ),
        (
            '[[projects]]\nkey = "a"\ndriver = "nosuch"\nurl = "sqlite:///x.db"\n',
            "unknown driver 'nosuch'; use one of: ",
        ),
        (
            '[[projects]]\nkey = "a"\ndriver = "laravel"\nurl = "sqlite:///x.db"\ntabel = "x"\n',
            "projects[a].tabel: unknown key",
        ),
        (
            '[[projects]]\nkey = "a"\ndriver = "laravel"\nurl = "sqlite:///x.db"\n'
            '[[projects]]\nkey = "a"\ndriver = "laravel"\nurl = "sqlite:///y.db"\n',
            "project key 'a' appears twice",
        ),
        (
            '[[projects]]\nkey = "a"\ndriver = "laravel"\n',
            "projects[a].url: Field required; add it",
        ),
        ('[spool]\nurl = "x"\nurl = "y"\n', "not valid TOML"),
        ("[server\n", "not valid TOML"),
        (
            '[project]\nkey = "a"\ndriver = "laravel"\nurl = "sqlite:///x.db"\n'
            '[[projects]]\nkey = "b"\ndriver = "laravel"\nurl = "sqlite:///x.db"\n',
            "use either [project] or [[projects]], not both",
        ),
    ],
)
def test_bad_input_is_refused_with_one_clear_line(text: str, expected: str) -> None:
    assert expected in _error(text)


def test_single_project_mode() -> None:
    settings = parse_settings(
        '[project]\nkey = "local"\ndriver = "laravel"\nurl = "sqlite:////tmp/x.db"\n', environ={}
    )
    assert [p.key for p in settings.projects] == ["local"]


def test_defaults_and_escapes() -> None:
    settings = parse_settings('[server]\nsecret_key = "$${NOT_A_VAR}-${X:-fallback}"\n', environ={})
    assert settings.server.secret_key == "${NOT_A_VAR}-fallback"
    assert settings.spool.url.startswith("sqlite:///")


def test_an_unreadable_file_says_how_to_fix(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file; pass --config PATH"):
        load_settings(tmp_path / "missing.toml")


@pytest.mark.parametrize("name", ["failboard.toml", "agent-shop.toml"])
def test_the_example_configs_parse(name: str) -> None:
    example = Path(__file__).parents[2] / "examples" / name
    env = {
        "FAILBOARD_SPOOL_PASSWORD": "x",
        "SHOP_DB_PASSWORD": "x",
        "BILLING_DB_PASSWORD": "x",
    }
    settings = load_settings(example, environ=env)
    assert settings.projects
