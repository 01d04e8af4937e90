"""``failboard.toml`` → frozen, validated :class:`Settings` (CONTRACT §2).

Read once at start and passed down explicitly. Anything wrong is refused with one line that names
the file, the key and the fix: nothing starts half-configured.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from failboard.drivers import registry
from failboard.exceptions import ConfigError

__all__ = [
    "AgentSettings",
    "ProjectSettings",
    "ServerSettings",
    "Settings",
    "SpoolSettings",
    "TokenSettings",
    "UserSettings",
    "find_config",
    "load_settings",
    "parse_settings",
]

PROJECT_KEY = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_VAR = re.compile(r"\$(\$)|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-(.*?))?\}")


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SpoolSettings(_Section):
    url: str = "sqlite:///failboard.db"
    lease_seconds: int = Field(default=60, ge=5, le=86_400)
    max_attempts: int = Field(default=3, ge=1, le=100)
    retry_delay_seconds: int = Field(default=10, ge=0, le=86_400)
    table_prefix: str = Field(default="failboard_", pattern=r"^[a-z][a-z0-9_]{0,30}$")


class ServerSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65_535)
    secret_key: str | None = None
    store_timeout_seconds: float = Field(default=2.0, gt=0, le=120)
    count_cap: int = Field(default=10_000, ge=1)
    # Sign-in (see docs/security.md): how long a session lasts, whether its cookie is marked
    # Secure even over plain http (behind a TLS-terminating proxy), and the trusted proxy mode.
    session_hours: float = Field(default=12.0, gt=0, le=24 * 90)
    secure_cookies: bool = False
    proxy_user_header: str | None = Field(default=None, pattern=r"^[A-Za-z0-9-]{1,64}$")
    trusted_proxies: tuple[str, ...] = ()

    @field_validator("trusted_proxies")
    @classmethod
    def _cidrs(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for entry in value:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(
                    f'{entry!r} is not an address or network; write e.g. "10.0.0.0/8"'
                ) from None
        return value

    @model_validator(mode="after")
    def _proxy_needs_peers(self) -> ServerSettings:
        # A user header honoured from anywhere would let anyone claim to be anyone.
        if self.proxy_user_header and not self.trusted_proxies:
            raise ValueError(
                "proxy_user_header needs trusted_proxies: list the proxy's addresses, "
                'e.g. trusted_proxies = ["127.0.0.1/32"]'
            )
        return self


class AgentSettings(_Section):
    server: str | None = None
    token: str | None = None
    interval_seconds: float = Field(default=5.0, gt=0, le=3_600)
    limit: int = Field(default=100, ge=1, le=1_000)
    batch_size: int = Field(default=1_000, ge=1, le=10_000)
    grace_seconds: float = Field(default=30.0, ge=0)


Role = Literal["viewer", "operator", "admin"]


class UserSettings(_Section):
    name: str = Field(min_length=1, max_length=128)
    # None: the user signs in only through the trusted proxy ([server] proxy_user_header).
    password_hash: str | None = None
    role: Role = "viewer"
    projects: tuple[str, ...] = ("*",)


class TokenSettings(_Section):
    name: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    role: Literal["viewer", "operator", "admin", "agent"] = "viewer"
    projects: tuple[str, ...] = ("*",)

    @model_validator(mode="after")
    def _agent_scope(self) -> TokenSettings:
        # An agent token must not be able to claim a second project's actions.
        if self.role == "agent" and (len(self.projects) != 1 or self.projects[0] == "*"):
            raise ValueError(
                f"token {self.name!r}: an agent token names exactly one project, "
                'e.g. projects = ["shop"]'
            )
        return self


class ProjectSettings(_Section):
    """One project. Driver options sit beside the common keys in the file and end up, validated by
    the driver's own model, in ``options``."""

    key: str
    name: str = ""
    driver: str
    url: str
    agent: Literal["remote", "inline"] = "remote"
    # Key patterns masked in every view, the API and the CLI, on top of redaction.DEFAULT_PATTERNS
    # (which always apply: a config typo must not expose passwords).
    redact: tuple[str, ...] = ()
    options: Any = None

    @field_validator("key")
    @classmethod
    def _key_shape(cls, value: str) -> str:
        if not PROJECT_KEY.match(value):
            raise ValueError(
                f"{value!r} is not a project key: use 1-64 of a-z 0-9 _ -, starting with a "
                "letter or digit"
            )
        return value

    @model_validator(mode="before")
    @classmethod
    def _split_options(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        common = {k: v for k, v in data.items() if k in _COMMON_KEYS}
        extra = {k: v for k, v in data.items() if k not in _COMMON_KEYS}
        driver = common.get("driver")
        if not isinstance(driver, str):
            return common  # pydantic reports the missing/invalid driver
        model = registry.options_model(driver)  # raises ValueError naming the known drivers
        common["options"] = model.model_validate(extra)
        common.setdefault("name", common.get("key", ""))
        return common


_COMMON_KEYS = frozenset({"key", "name", "driver", "url", "agent", "redact", "options"})


class Settings(_Section):
    spool: SpoolSettings = SpoolSettings()
    server: ServerSettings = ServerSettings()
    agent: AgentSettings = AgentSettings()
    projects: tuple[ProjectSettings, ...] = ()
    users: tuple[UserSettings, ...] = ()
    tokens: tuple[TokenSettings, ...] = ()
    source: str | None = Field(default=None, description="The file these settings came from.")

    @model_validator(mode="before")
    @classmethod
    def _single_project(cls, data: Any) -> Any:
        # Single-project mode (the seed plugin's): [project] instead of [[projects]].
        if isinstance(data, Mapping) and "project" in data:
            data = dict(data)
            single = data.pop("project")
            if data.get("projects"):
                raise ValueError("use either [project] or [[projects]], not both")
            data["projects"] = [single]
        return data

    @model_validator(mode="after")
    def _unique_projects(self) -> Settings:
        seen: set[str] = set()
        for project in self.projects:
            if project.key in seen:
                raise ValueError(f"project key {project.key!r} appears twice: keys must be unique")
            seen.add(project.key)
        return self

    @model_validator(mode="after")
    def _users_can_sign_in(self) -> Settings:
        names: set[str] = set()
        for user in self.users:
            if user.name in names:
                raise ValueError(f"user {user.name!r} appears twice: names must be unique")
            names.add(user.name)
            if user.password_hash is None and not self.server.proxy_user_header:
                raise ValueError(
                    f"user {user.name!r} has no password_hash; add one (failboard "
                    "hash-password prints it), or sign in through a proxy with [server] "
                    "proxy_user_header"
                )
        return self

    def project(self, key: str) -> ProjectSettings:
        """The project with this key; NotFound names the configured ones."""
        from failboard.exceptions import NotFound

        for project in self.projects:
            if project.key == key:
                return project
        known = ", ".join(p.key for p in self.projects) or "none"
        raise NotFound(f"unknown project {key!r} (configured: {known})")


def find_config(path: str | os.PathLike[str] | None = None) -> Path:
    """``--config PATH``, else ``$FAILBOARD_CONFIG``, else ``./failboard.toml``."""
    if path:
        return Path(path)
    env = os.environ.get("FAILBOARD_CONFIG")
    return Path(env) if env else Path("failboard.toml")


def load_settings(
    path: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Read, interpolate and validate a config file."""
    file = find_config(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"{file}: no such file; pass --config PATH, set FAILBOARD_CONFIG, or create "
            "failboard.toml (see examples/failboard.toml)"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"{file}: cannot be read ({exc}); check the path and its permissions"
        ) from exc
    return parse_settings(text, source=file, environ=environ)


def parse_settings(
    text: str, source: str | os.PathLike[str] = "<config>", environ: Mapping[str, str] | None = None
) -> Settings:
    """Validate config text. Relative SQLite paths are taken from the file's folder."""
    where = str(source)
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # tomllib reports duplicate keys here too ("Cannot overwrite a value").
        raise ConfigError(f"{where}: not valid TOML: {exc}; fix the syntax at that line") from exc
    env = os.environ if environ is None else environ
    data = _interpolate(raw, env, where, ())
    base = Path(source).resolve().parent if Path(where).exists() else Path.cwd()
    data = _anchor_sqlite_paths(data, base)
    data["source"] = where
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_first_error(where, exc, data)) from None


def _interpolate(
    value: Any, env: Mapping[str, str], where: str, path: tuple[str | int, ...]
) -> Any:
    if isinstance(value, dict):
        return {k: _interpolate(v, env, where, (*path, k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, env, where, (*path, i)) for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        if match.group(1):  # "$$" is a literal "$"
            return "$"
        name, default = match.group(2), match.group(3)
        if name in env:
            return env[name]
        if default is not None:
            return default
        raise ConfigError(
            f"{where}: {_dotted(path)}: environment variable {name} is not set; set it, or "
            f"write ${{{name}:-default}} to fall back"
        )

    return _VAR.sub(substitute, value)


def _anchor_sqlite_paths(data: dict[str, Any], base: Path) -> dict[str, Any]:
    def anchor(url: Any) -> Any:
        if (
            isinstance(url, str)
            and url.startswith("sqlite:///")
            and not url.startswith("sqlite:////")
        ):
            rest = url[len("sqlite:///") :]
            if rest and not rest.startswith(":memory:") and not Path(rest).is_absolute():
                return "sqlite:///" + str(base / rest)
        return url

    def anchored(section: Any) -> Any:
        if isinstance(section, dict) and "url" in section:
            return {**section, "url": anchor(section["url"])}
        return section

    data = dict(data)
    for key in ("spool", "project"):
        if key in data:
            data[key] = anchored(data[key])
    if isinstance(data.get("projects"), list):
        data["projects"] = [anchored(p) for p in data["projects"]]
    return data


def _dotted(path: tuple[str | int, ...]) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part.startswith("["):
            out += part
        else:
            out += f".{part}" if out else part
    return out or "(top level)"


_FIXES = {
    "extra_forbidden": "remove it or check its spelling",
    "missing": "add it",
}


def _first_error(where: str, exc: ValidationError, data: Mapping[str, Any]) -> str:
    error = exc.errors()[0]
    loc = tuple(p for p in error["loc"] if p not in ("options",))
    # pydantic reports a "before" validator's failure at the section; name the project by its key.
    key = _dotted(_name_projects(loc, data))
    kind = error["type"]
    message = str(error["msg"]).removeprefix("Value error, ")
    if kind == "extra_forbidden":
        message = "unknown key"
    fix = _FIXES.get(kind)
    more = len(exc.errors()) - 1
    line = f"{where}: {key}: {message}"
    if fix:
        line += f"; {fix}"
    if more:
        line += f" (and {more} more problem{'s' if more > 1 else ''})"
    return line


def _name_projects(loc: tuple[Any, ...], data: Mapping[str, Any]) -> tuple[str | int, ...]:
    """``projects[shop].driver`` reads better than ``projects[3].driver``."""
    out: list[str | int] = [p if isinstance(p, int) else str(p) for p in loc]
    if len(out) >= 2 and out[0] == "projects" and isinstance(out[1], int):
        projects = data.get("projects") or [data.get("project")]
        index = out[1]
        entry = projects[index] if 0 <= index < len(projects) else None
        key = entry.get("key") if isinstance(entry, Mapping) else None
        if isinstance(key, str) and key:
            out[1] = f"[{key}]"
    return tuple(out)
