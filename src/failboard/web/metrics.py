"""``/metrics`` through prometheus-client: a collector that asks the Board at scrape time.

Values are read when Prometheus scrapes (never cached between scrapes), each store under its own
timeout, so an unreachable project shows as ``failboard_project_up 0`` instead of a failed scrape.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from failboard.board import Board
from failboard.drivers.base import Reader
from failboard.models import JobQuery

__all__ = ["BoardCollector", "render_metrics"]

MAX_QUEUES = 50
"""Queues per project given their own series; more would make the scrape slow and wide."""


class BoardCollector(Collector):
    def __init__(self, board: Board) -> None:
        self.board = board

    def collect(self) -> Iterator[Metric]:
        board = self.board
        statuses = board.projects_status()
        up = GaugeMetricFamily(
            "failboard_project_up",
            "1 when the project's failure store answered.",
            labels=["project"],
        )
        failed = GaugeMetricFamily(
            "failboard_failed_jobs",
            "Failed jobs per project (capped at [server] count_cap).",
            labels=["project"],
        )
        per_queue = GaugeMetricFamily(
            "failboard_failed_jobs_by_queue",
            "Failed jobs per project and queue (capped at [server] count_cap).",
            labels=["project", "queue"],
        )
        open_actions = GaugeMetricFamily(
            "failboard_open_actions", "Pending or processing actions.", labels=["project"]
        )
        seen = GaugeMetricFamily(
            "failboard_agent_last_seen_seconds",
            "Unix time of the project's last agent heartbeat.",
            labels=["project"],
        )
        for status in statuses:
            up.add_metric([status.key], 1 if status.status == "ok" else 0)
            open_actions.add_metric([status.key], status.pending_actions)
            if status.failed_count is not None:
                failed.add_metric([status.key], status.failed_count)
            if status.agent_last_seen is not None:
                seen.add_metric([status.key], status.agent_last_seen.timestamp())
        reachable = [s.key for s in statuses if s.status == "ok"]
        queues = board.queues(reachable)
        cap = board.settings.server.count_cap

        def by_queue(reader: Reader) -> dict[str, int]:
            names = queues.get(reader.project, [])[:MAX_QUEUES]
            return {q: reader.count(JobQuery(queue=q), cap).value for q in names}

        counted, _ = board.aggregator.fan_out(list(queues), by_queue)
        for project, values in sorted(counted.items()):
            for queue, number in values.items():
                per_queue.add_metric([project, queue], number)
        actions = GaugeMetricFamily(
            "failboard_actions",
            "Actions in the spool by project, kind and status.",
            labels=["project", "action", "status"],
        )
        for (project, kind, state), number in sorted(board.action_counts().items()):
            actions.add_metric([project, kind, state], number)
        errors = CounterMetricFamily(
            "failboard_store_errors",
            "Store errors and timeouts the dashboard met, per project, since it started.",
            labels=["project"],
        )
        for key in board.projects:
            errors.add_metric([key], board.store_errors.get(key, 0))
        yield from (up, failed, per_queue, open_actions, seen, actions, errors)


def render_metrics(board: Board) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(BoardCollector(board))
    return generate_latest(registry)
