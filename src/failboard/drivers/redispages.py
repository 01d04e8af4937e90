"""Keyset pages over per-queue sorted sets of failures, merged across queues, paged in Redis.

Shared by the Redis-native drivers: RQ's failed registries (scored by expiry, failure time +
failure_ttl) and Dramatiq's dead-letter sets (scored by dead-letter time in ms). Either way the
score orders one queue's failures in time; a :class:`ScoredSets` says how a score maps to a time.
A page asks every queue for at most ``n`` entries past the position (``ZREVRANGEBYSCORE … LIMIT``,
all queues in one pipeline) and merges them by ``(failed_at, sort_key)``, the order
:class:`~failboard.models.Seek` describes. The sort key is ``queue \\x1f member``: within one
queue and one score, Redis orders members lexicographically, which is the sort key's order too.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import redis

from failboard.drivers.redisstore import text
from failboard.models import JobQuery, Seek, to_utc

__all__ = [
    "FILTER_BATCH",
    "SCAN_CAP",
    "SEP",
    "Entry",
    "ScoredSets",
    "Walk",
    "Window",
    "fetch",
    "locate",
    "score_range",
    "split_sort_key",
]

SEP = "\x1f"
INF = float("inf")
SCAN_CAP = 10_000
"""Entries one request reads at most to apply the filters Redis cannot (job name, exception,
free text); a page may come back short when they match nothing among them."""
FILTER_BATCH = 200
"""Entries per page while filtering in Python: fewer round trips than a 50-row page."""


class ScoredSets(Protocol):
    """A driver's per-queue sorted sets of failures and what their scores mean."""

    redis: redis.Redis

    def zset(self, queue: str) -> str:
        """The key of ``queue``'s sorted set."""
        ...

    def score_of(self, queue: str, at: datetime) -> float:
        """The score of a failure at ``at`` in ``queue``."""
        ...

    def time_of(self, queue: str, score: float) -> datetime | None:
        """When the failure with this score happened; None when the score says no time."""
        ...

    def floor(self, now: float) -> float | None:
        """Scores at or below this are not shown (RQ: expired); None shows every score."""
        ...


@dataclass(frozen=True, slots=True)
class Entry:
    """One member of a queue's sorted set of failures."""

    queue: str
    job_id: str
    score: float
    failed_at: datetime | None  # None: kept forever (failure_ttl = -1, score +inf)

    @property
    def sort_key(self) -> str:
        return f"{self.queue}{SEP}{self.job_id}"

    def order(self) -> tuple[float, str]:
        when = INF if self.failed_at is None else self.failed_at.timestamp()
        return (when, self.sort_key)


def split_sort_key(key: str | None) -> tuple[str, str] | None:
    if not key or SEP not in key:
        return None
    queue, _, job_id = key.partition(SEP)
    return queue, job_id


@dataclass(frozen=True, slots=True)
class Window:
    """What a page covers: an optional time range and a position to resume past."""

    newest: bool = True
    failed_after: datetime | None = None
    failed_before: datetime | None = None
    seek: Seek | None = None

    @classmethod
    def of(cls, query: JobQuery, seek: Seek | None) -> Window:
        """The query's order and time range, resuming past ``seek``."""
        return cls(
            newest=query.order == "newest",
            failed_after=query.failed_after,
            failed_before=query.failed_before,
            seek=seek,
        )


@dataclass(slots=True)
class _Range:
    lo: float = -INF
    lo_open: bool = False
    hi: float = INF
    hi_open: bool = False
    member: str | None = None  # resume strictly past this member at the seek's score

    def clip_hi(self, value: float, open_: bool) -> None:
        if value < self.hi or (value == self.hi and open_):
            self.hi, self.hi_open = value, open_

    def clip_lo(self, value: float, open_: bool) -> None:
        if value > self.lo or (value == self.lo and open_):
            self.lo, self.lo_open = value, open_

    def spec(self, value: float, open_: bool) -> str:
        if value in (INF, -INF):
            return "+inf" if value > 0 else "-inf"
        return f"({value!r}" if open_ else repr(value)

    def holds(self, score: float) -> bool:
        above = score > self.lo or (score == self.lo and not self.lo_open)
        below = score < self.hi or (score == self.hi and not self.hi_open)
        return above and below


def _score(store: ScoredSets, queue: str, at: datetime) -> float:
    # Scores are whole seconds (rq) or ms (dramatiq); rounding undoes a datetime trip's error.
    return round(store.score_of(queue, to_utc(at)), 6)


def score_range(store: ScoredSets, queue: str, window: Window, now: float) -> _Range:
    r = _Range()
    floor = store.floor(now)
    if floor is not None:
        r.clip_lo(floor, True)
    if window.failed_after is not None:
        r.clip_lo(_score(store, queue, window.failed_after), False)
    if window.failed_before is not None:
        r.clip_hi(_score(store, queue, window.failed_before), False)
    seek = window.seek
    if seek is None:
        return r
    at = _score(store, queue, seek.failed_at)
    own = split_sort_key(seek.sort_key)
    if own is not None and own[0] == queue:
        r.member = own[1]
        inclusive = True
    elif own is not None:
        # Same time, another queue: its rows sort by queue name within that second.
        inclusive = queue < own[0] if window.newest else queue > own[0]
    else:
        inclusive = seek.ties == "keep"
    if window.newest:
        r.clip_hi(at, not inclusive)
    else:
        r.clip_lo(at, not inclusive)
    return r


def fetch(
    store: ScoredSets, queues: list[str], window: Window, n: int, now: float | None = None
) -> list[Entry]:
    """Up to ``n`` entries past the window's position, merged across ``queues``."""
    now = time.time() if now is None else now
    ranges = {queue: score_range(store, queue, window, now) for queue in queues}
    per_queue: dict[str, list[Entry]] = {}
    plain = [queue for queue, r in ranges.items() if r.member is None]
    pipe = store.redis.pipeline(transaction=False)
    for queue in plain:
        _page_command(pipe, store.zset(queue), ranges[queue], window.newest, 0, n)
    for queue, raw in zip(plain, pipe.execute() if plain else [], strict=True):
        per_queue[queue] = _entries(store, queue, raw, ranges[queue], window.newest)
    for queue, r in ranges.items():
        if r.member is not None:
            per_queue[queue] = _resume(store, queue, r, window.newest, n)
    merged = heapq.merge(
        *per_queue.values(), key=lambda entry: entry.order(), reverse=window.newest
    )
    out: list[Entry] = []
    for entry in merged:
        out.append(entry)
        if len(out) >= n:
            break
    return out


class Walk:
    """The pages of a query from ``seek`` on, one :func:`fetch` each, each resuming past the
    last entry of the one before; until a short page (the end: :attr:`complete`), SCAN_CAP
    entries, or an entry kept forever (no time to resume from). The readers filter what Redis
    cannot on the way, and stop early once they have enough."""

    def __init__(
        self,
        store: ScoredSets,
        queues: list[str],
        query: JobQuery,
        batch: int,
        seek: Seek | None,
    ) -> None:
        self.store = store
        self.queues = queues
        self.query = query
        self.batch = batch
        self.seek = seek
        self.complete = False

    def __iter__(self) -> Iterator[list[Entry]]:
        seek = self.seek
        scanned = 0
        while True:
            entries = fetch(self.store, self.queues, Window.of(self.query, seek), self.batch)
            self.complete = len(entries) < self.batch
            yield entries
            scanned += len(entries)
            if self.complete or scanned >= SCAN_CAP or entries[-1].failed_at is None:
                return
            seek = Seek(failed_at=entries[-1].failed_at, sort_key=entries[-1].sort_key)


def locate(store: ScoredSets, sort_keys: Sequence[str], now: float | None = None) -> list[Entry]:
    """The entries of these sort keys still in their queue's set and shown (one pipeline); the
    others are left out."""
    wanted = [pair for pair in map(split_sort_key, sort_keys) if pair is not None]
    if not wanted:
        return []
    floor = store.floor(time.time() if now is None else now)
    pipe = store.redis.pipeline(transaction=False)
    for queue, member in wanted:
        pipe.zscore(store.zset(queue), member)
    out = []
    for (queue, member), raw in zip(wanted, pipe.execute(), strict=True):
        if raw is None:
            continue
        score = float(raw)
        if floor is not None and score <= floor:
            continue  # expired, as a page would not show it
        out.append(Entry(queue, member, score, store.time_of(queue, score)))
    return out


def _page_command(pipe: Any, key: str, r: _Range, newest: bool, offset: int, n: int) -> None:
    lo, hi = r.spec(r.lo, r.lo_open), r.spec(r.hi, r.hi_open)
    if newest:
        pipe.zrevrangebyscore(key, hi, lo, start=offset, num=n, withscores=True)
    else:
        pipe.zrangebyscore(key, lo, hi, start=offset, num=n, withscores=True)


def _entries(
    store: ScoredSets, queue: str, raw: list[tuple[bytes, float]], r: _Range, newest: bool
) -> list[Entry]:
    out = []
    for member, score in raw:
        job_id = text(member)
        if r.member is not None and score == (r.hi if newest else r.lo):
            # At the seek's own score: only members past the seek's member.
            if (job_id >= r.member) if newest else (job_id <= r.member):
                continue
        out.append(Entry(queue, job_id, score, store.time_of(queue, score)))
    return out


def _resume(store: ScoredSets, queue: str, r: _Range, newest: bool, n: int) -> list[Entry]:
    """The seek's own queue: past its member. By rank when the member is still there (exact in
    O(log N) however many failures share its second), else by score, skipping the members of
    that second that were already shown."""
    assert r.member is not None
    key = store.zset(queue)
    pipe = store.redis.pipeline(transaction=False)
    (pipe.zrevrank if newest else pipe.zrank)(key, r.member)
    pipe.zscore(key, r.member)
    rank, score = pipe.execute()
    at = r.hi if newest else r.lo
    if rank is not None and score is not None and round(float(score), 6) == at:
        raw: list[tuple[bytes, float]] = (store.redis.zrevrange if newest else store.redis.zrange)(
            key, rank + 1, rank + n, withscores=True
        )  # type: ignore[assignment]
        by_rank: list[Entry] = []
        for member, value in raw:
            if not r.holds(value) and value != at:
                break  # ordered: once past the range, the rest are too
            by_rank.append(Entry(queue, text(member), value, store.time_of(queue, value)))
        return by_rank
    entries: list[Entry] = []
    offset = 0
    fetched = n
    while len(entries) < n and fetched == n:
        pipe = store.redis.pipeline(transaction=False)
        _page_command(pipe, key, r, newest, offset, n)
        (raw,) = pipe.execute()
        fetched = len(raw)
        offset += fetched
        entries += _entries(store, queue, raw, r, newest)
    return entries[:n]
