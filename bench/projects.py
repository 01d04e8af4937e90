"""failboard.toml files for projects of any driver (``bench.procs.write_config`` writes Laravel
ones only): each project is a dict of its keys, written as TOML strings, numbers or booleans."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["write_projects_config"]


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(str(value))  # a JSON string is a valid TOML basic string


def write_projects_config(
    path: Path,
    spool_url: str,
    projects: Sequence[Mapping[str, Any]],
    *,
    server: Mapping[str, Any] | None = None,
    agent: Mapping[str, Any] | None = None,
) -> Path:
    """Write a config with ``projects`` (``{"key": ..., "driver": ..., "url": ..., ...}``)."""
    lines = ["[spool]", f"url = {_value(spool_url)}"]
    for section, values in (("server", server), ("agent", agent)):
        if values:
            lines += ["", f"[{section}]", *(f"{k} = {_value(v)}" for k, v in values.items())]
    for project in projects:
        lines += ["", "[[projects]]", *(f"{k} = {_value(v)}" for k, v in project.items())]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
