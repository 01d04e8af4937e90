from __future__ import annotations

import pytest
from pydantic import ValidationError

from failboard.config import parse_settings
from failboard.drivers import registry
from failboard.drivers.laravel import CAPABILITIES, LaravelExecutor, LaravelReader, Options
from failboard.exceptions import ConfigError


def test_defaults() -> None:
    options = Options()
    assert options.table == "failed_jobs" and options.jobs_table == "jobs"
    assert options.database_connections == ("database",)
    assert options.timezone == "UTC" and options.executor == "native" and not options.horizon


def test_every_contract_key_is_accepted() -> None:
    options = Options.model_validate(
        {
            "table": "app.failed_jobs",
            "jobs_table": "queue_jobs",
            "database_connections": ["database", "db2"],
            "timezone": "Europe/Berlin",
            "redis_url": "redis://127.0.0.1:6379/0",
            "redis_prefix": "shop_database_",
            "horizon": True,
            "horizon_url": "redis://127.0.0.1:6379/1",
            "horizon_prefix": "shop_horizon:",
            "executor": "artisan",
            "artisan": "/var/www/shop/artisan",
            "php": "/usr/bin/php8.3",
        }
    )
    assert options.database_connections == ("database", "db2")
    assert options.zone.key == "Europe/Berlin"


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ({"tabel": "x"}, "Extra inputs are not permitted"),
        ({"timezone": "Mars/Olympus"}, "is not a time zone"),
        ({"executor": "artisan"}, "needs artisan"),
        ({"executor": "ssh"}, "'native' or 'artisan'"),
        ({"table": "failed jobs; drop"}, "should match pattern"),
    ],
)
def test_bad_options_are_refused(data: dict[str, object], fragment: str) -> None:
    with pytest.raises(ValidationError, match=fragment):
        Options.model_validate(data)


def test_options_are_frozen() -> None:
    with pytest.raises(ValidationError):
        Options().table = "other"  # type: ignore[misc]


def test_config_file_to_reader_and_executor(tmp_path: object) -> None:
    settings = parse_settings(
        '[[projects]]\nkey = "shop"\ndriver = "laravel"\nurl = "sqlite:////tmp/none.db"\n'
        'table = "failed"\ntimezone = "Europe/Paris"\n',
        environ={},
    )
    (project,) = settings.projects
    assert isinstance(project.options, Options) and project.options.table == "failed"
    reader = registry.make_reader(project, timeout=1.0)
    executor = registry.make_executor(project, batch_size=10)
    try:
        assert isinstance(reader, LaravelReader) and reader.project == "shop"
        assert isinstance(executor, LaravelExecutor) and executor.batch_size == 10
        assert registry.capabilities("laravel") == CAPABILITIES == reader.capabilities
    finally:
        reader.close()
        executor.close()


def test_config_error_names_the_project_and_key() -> None:
    with pytest.raises(ConfigError, match=r"projects\[shop\].*timezone"):
        parse_settings(
            '[[projects]]\nkey = "shop"\ndriver = "laravel"\nurl = "sqlite:///x.db"\n'
            'timezone = "Nowhere"\n',
            environ={},
        )


def test_redis_horizon_and_artisan_options() -> None:
    options = Options(redis_url="redis://127.0.0.1:6379/0", horizon=True)
    assert options.redis_connections == ("redis",) and not options.redis_cluster
    assert options.horizon_redis_url == "redis://127.0.0.1:6379/0"
    assert options.horizon_source == "table" and options.artisan_timeout == 300.0
    with pytest.raises(ValidationError, match='horizon_source = "horizon" needs horizon = true'):
        Options(horizon_source="horizon")


def test_registry_picks_the_artisan_executor_and_the_horizon_reader() -> None:
    from failboard.drivers.laravel import ArtisanExecutor, HorizonReader

    settings = parse_settings(
        '[[projects]]\nkey = "shop"\ndriver = "laravel"\nurl = "sqlite:////tmp/none.db"\n'
        'executor = "artisan"\nartisan = "/srv/shop/artisan"\nhorizon = true\n'
        'redis_url = "redis://127.0.0.1:6379/0"\nhorizon_source = "horizon"\n',
        environ={},
    )
    (project,) = settings.projects
    reader = registry.make_reader(project, timeout=1.0)
    executor = registry.make_executor(project, batch_size=10)
    try:
        assert isinstance(reader, HorizonReader) and isinstance(executor, ArtisanExecutor)
    finally:
        reader.close()
        executor.close()
