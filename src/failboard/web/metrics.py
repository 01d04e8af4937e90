"""``/metrics`` in the Prometheus text format, written by hand: a handful of gauges does not
earn a client library."""

from __future__ import annotations

from failboard.board import Board

__all__ = ["render_metrics"]


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render_metrics(board: Board) -> str:
    lines = [
        "# HELP failboard_project_up 1 when the project's failure store answered.",
        "# TYPE failboard_project_up gauge",
    ]
    statuses = board.projects_status()
    for status in statuses:
        lines.append(
            f'failboard_project_up{{project="{_label(status.key)}"}} '
            f"{1 if status.status == 'ok' else 0}"
        )
    lines += [
        "# HELP failboard_failed_jobs Failed jobs per project (capped at [server] count_cap).",
        "# TYPE failboard_failed_jobs gauge",
    ]
    for status in statuses:
        if status.failed_count is not None:
            lines.append(
                f'failboard_failed_jobs{{project="{_label(status.key)}"}} {status.failed_count}'
            )
    lines += [
        "# HELP failboard_open_actions Pending or processing actions per project.",
        "# TYPE failboard_open_actions gauge",
    ]
    for status in statuses:
        lines.append(
            f'failboard_open_actions{{project="{_label(status.key)}"}} {status.pending_actions}'
        )
    return "\n".join(lines) + "\n"
