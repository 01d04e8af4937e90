"""Acts on one project's RQ failed jobs, the way rq's own API would, in atomic batches.

- ``retry``       = ``FailedJobRegistry.requeue(id)`` (same id, onto the job's origin queue),
  resetting what rq resets (status, started_at, ended_at, exc_info; enqueued_at = now).
- ``delete``      = ``registry.remove(id, delete_job=True)`` and the job's results stream, which
  rq 2.x leaves behind.
- ``retry_queue`` = requeue every job of a queue (or of every queue) that failed at or before
  the moment the operator asked; jobs that fail later — the retried ones included — have a
  later score and are not touched.
- ``prune``       = delete the failures older than a moment.

Each batch is one Lua script, so a job's claim (``ZREM`` from the failed registry), its reset and
its ``RPUSH`` onto the queue happen together or not at all: two agents never push the same job,
and a crash never loses one. Batches are at most :data:`SCRIPT_CHUNK` jobs, which keeps Redis
busy for a few milliseconds at a time. Registries are walked in score order with ``LIMIT``, one
batch in memory at a time, whatever their size.

rq 3 jobs with a rate limit (``rate_limit_key``) go through rq's rate-limit registry when they
are enqueued; the scripts do not reproduce that bookkeeping, so such jobs are answered as
*failed* with a reason, untouched.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime

import redis

from failboard.drivers.base import JobOutcome, Progress, ResultTally, no_progress
from failboard.drivers.rq.options import CAPABILITIES, Options
from failboard.drivers.rq.store import RqStore
from failboard.models import ActionResult

__all__ = ["SCRIPT_CHUNK", "RqExecutor"]

SCRIPT_CHUNK = 500
"""Jobs per Lua script call: about 2-5 ms of Redis time."""

MISSING, DONE, REFUSED = 0, 1, 2
RATE_LIMITED = (
    "rq 3 rate-limited job: requeue it with rq's API (FailedJobRegistry.requeue); not retried"
)

# ARGV: prefix, now (rq's timestamp format), queue ("" = the job's origin), job ids...
# Returns one code per id: 0 missing, 1 requeued, 2 refused (rate limited, left in place).
_RETRY = """
local prefix, now, given = ARGV[1], ARGV[2], ARGV[3]
local out = {}
for i = 4, #ARGV do
  local id = ARGV[i]
  local key = prefix .. 'job:' .. id
  local origin = redis.call('HGET', key, 'origin')
  local queue = given ~= '' and given or origin
  if not queue then
    out[#out + 1] = 0
  elseif not origin then
    -- The hash is gone (expired or deleted): nothing to run; drop the stale entry.
    redis.call('ZREM', prefix .. 'failed:' .. queue, id)
    out[#out + 1] = 0
  else
    local limited = redis.call('HGET', key, 'rate_limit_key')
    if limited and limited ~= '' then
      out[#out + 1] = 2
    elseif redis.call('ZREM', prefix .. 'failed:' .. queue, id) == 0 then
      out[#out + 1] = 0
    else
      redis.call('HSET', key, 'status', 'queued', 'started_at', '', 'ended_at', '',
                 'enqueued_at', now)
      redis.call('HDEL', key, 'exc_info')
      -- A queued rq job lives until it runs, or for its own ttl: not the failure's expiry.
      local ttl = tonumber(redis.call('HGET', key, 'ttl') or '')
      if ttl and ttl > 0 then redis.call('EXPIRE', key, ttl) else redis.call('PERSIST', key) end
      redis.call('RPUSH', prefix .. 'queue:' .. origin, id)
      redis.call('SADD', prefix .. 'queues', prefix .. 'queue:' .. origin)
      out[#out + 1] = 1
    end
  end
end
return out
"""

# ARGV: prefix, queue ("" = the job's origin), job ids... Returns 1 removed, 0 missing, and -1
# when the hash is gone and no queue was given (the caller looks in every registry).
_DELETE = """
local prefix, given = ARGV[1], ARGV[2]
local out = {}
for i = 3, #ARGV do
  local id = ARGV[i]
  local key = prefix .. 'job:' .. id
  local origin = redis.call('HGET', key, 'origin')
  local queue = given ~= '' and given or origin
  if not queue then
    out[#out + 1] = -1
  elseif redis.call('ZREM', prefix .. 'failed:' .. queue, id) == 0 then
    out[#out + 1] = 0
  else
    redis.call('DEL', key, key .. ':dependents', prefix .. 'job::' .. id .. ':dependencies',
               prefix .. 'results:' .. id, prefix .. 'executions:' .. id)
    out[#out + 1] = 1
  end
end
return out
"""


class RqExecutor:
    """The Executor (see :class:`failboard.drivers.base.Executor`) of one RQ project, and its
    grouped face (:class:`failboard.drivers.base.GroupedExecutor`): each chunk is one atomic
    script, so a Redis error raises with the chunks before it done (a rerun counts them
    missing)."""

    capabilities = CAPABILITIES

    def __init__(
        self,
        project: str,
        url: str,
        options: Options | None = None,
        *,
        batch_size: int = 1_000,
        client: redis.Redis | None = None,
    ) -> None:
        self.project = project
        self.options = options or Options()
        self.batch_size = max(1, batch_size)
        self._chunk = min(self.batch_size, SCRIPT_CHUNK)
        self.group_size = self.batch_size
        self.capabilities = replace(CAPABILITIES, grouped=True)
        self._store = RqStore(project, url, self.options, timeout=30.0, client=client)
        self._retry = self._store.redis.register_script(_RETRY)
        self._delete = self._store.redis.register_script(_DELETE)

    # -- Executor --------------------------------------------------------------------------

    def retry(self, job_ids: Sequence[str], progress: Progress = no_progress) -> ActionResult:
        """Requeue the jobs onto their origin queue (same id); gone ones count as missing."""
        ids = _unique(job_ids)
        tally = ResultTally()
        for chunk in _chunks(ids, self._chunk):
            codes = self._run_retry(chunk, "")
            self._count_retry(tally, chunk, codes)
            progress(tally.done, len(ids))
        return tally.result()

    def delete(self, job_ids: Sequence[str], progress: Progress = no_progress) -> ActionResult:
        """Remove the jobs from their failed registry, with their hash and results stream."""
        ids = _unique(job_ids)
        tally = ResultTally()
        for chunk in _chunks(ids, self._chunk):
            done = self._delete_chunk(chunk)
            tally.succeeded += sum(done)
            tally.missing += len(done) - sum(done)
            progress(tally.done, len(ids))
        return tally.result()

    def retry_queue(
        self, queue: str | None, failed_before: datetime, progress: Progress = no_progress
    ) -> ActionResult:
        """Requeue every job of ``queue`` (every queue when None) that failed at or before
        ``failed_before``."""
        tally = ResultTally()
        store = self._store
        with store.errors():
            queues = [queue] if queue is not None else store.queue_names()
            bounds = {q: repr(store.score_of(q, failed_before)) for q in queues}
            total = self._total(bounds)
        for name, bound in bounds.items():
            left_behind = 0  # refused jobs stay in the registry: walk past them
            while True:
                ids = self._window(name, bound, left_behind)
                if not ids:
                    break
                codes = self._run_retry(ids, name)
                self._count_retry(tally, ids, codes)
                left_behind += codes.count(REFUSED)
                progress(tally.done, total)
        return tally.result()

    def prune(self, older_than: datetime, progress: Progress = no_progress) -> ActionResult:
        """Delete the failures (registry entry, hash, results) older than ``older_than``."""
        tally = ResultTally()
        store = self._store
        with store.errors():
            queues = store.queue_names()
            bounds = {q: "(" + repr(store.score_of(q, older_than)) for q in queues}
            total = self._total(bounds)
        for name, bound in bounds.items():
            while True:
                ids = self._window(name, bound, 0)
                if not ids:
                    break
                codes = self._run_delete(ids, name)
                tally.succeeded += codes.count(DONE)
                tally.missing += len(ids) - codes.count(DONE)
                progress(tally.done, total)
        return tally.result()

    def retry_each(self, job_ids: Sequence[str]) -> dict[str, JobOutcome]:
        """:meth:`retry`'s work for the jobs of several actions, answered per job."""
        answers: dict[str, JobOutcome] = {}
        for chunk in _chunks(_unique(job_ids), self._chunk):
            for job_id, code in zip(chunk, self._run_retry(chunk, ""), strict=True):
                if code == DONE:
                    answers[job_id] = JobOutcome("succeeded")
                elif code == REFUSED:
                    answers[job_id] = JobOutcome("failed", RATE_LIMITED)
                else:
                    answers[job_id] = JobOutcome("missing")
        return answers

    def delete_each(self, job_ids: Sequence[str]) -> dict[str, JobOutcome]:
        """:meth:`delete`'s work for the jobs of several actions, answered per job."""
        answers: dict[str, JobOutcome] = {}
        for chunk in _chunks(_unique(job_ids), self._chunk):
            for job_id, done in zip(chunk, self._delete_chunk(chunk), strict=True):
                answers[job_id] = JobOutcome("succeeded" if done else "missing")
        return answers

    def close(self) -> None:
        self._store.close()

    def _delete_chunk(self, ids: list[str]) -> list[bool]:
        """Delete one chunk of jobs; whether each was there."""
        codes = self._run_delete(ids, "")
        orphans = [job_id for job_id, code in zip(ids, codes, strict=True) if code == -1]
        removed = dict(zip(orphans, self._delete_orphans(orphans), strict=True)) if orphans else {}
        return [
            code == DONE or removed.get(job_id, False)
            for job_id, code in zip(ids, codes, strict=True)
        ]

    # -- batches ---------------------------------------------------------------------------

    def _run_retry(self, ids: list[str], queue: str) -> list[int]:
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        with self._store.errors():
            codes = self._retry(args=[self.options.prefix, now, queue, *ids])
        return [int(code) for code in codes]

    def _run_delete(self, ids: list[str], queue: str) -> list[int]:
        with self._store.errors():
            codes = self._delete(args=[self.options.prefix, queue, *ids])
        return [int(code) for code in codes]

    def _count_retry(self, tally: ResultTally, ids: list[str], codes: list[int]) -> None:
        for job_id, code in zip(ids, codes, strict=True):
            if code == DONE:
                tally.succeeded += 1
            elif code == REFUSED:
                tally.fail(job_id, RATE_LIMITED)
            else:
                tally.missing += 1

    def _delete_orphans(self, ids: list[str]) -> list[bool]:
        """Jobs whose hash is gone: remove their entry from whichever registry holds it;
        whether each was in one."""
        store = self._store
        with store.errors():
            queues = store.queue_names()
            pipe = store.redis.pipeline(transaction=False)
            for job_id in ids:
                for queue in queues:
                    pipe.zrem(store.failed(queue), job_id)
                pipe.delete(store.results(job_id))
            replies = pipe.execute()
        step = len(queues) + 1
        return [any(replies[i * step : i * step + len(queues)]) for i in range(len(ids))]

    def _window(self, queue: str, bound: str, offset: int) -> list[str]:
        """The oldest ``batch`` ids of ``queue``'s registry up to ``bound``, past ``offset``."""
        store = self._store
        with store.errors():
            raw = store.redis.zrangebyscore(
                store.failed(queue), "-inf", bound, start=offset, num=self._chunk
            )
        return [m.decode("utf-8", "surrogateescape") for m in raw]  # type: ignore[union-attr]

    def _total(self, bounds: dict[str, str]) -> int:
        store = self._store
        pipe = store.redis.pipeline(transaction=False)
        for queue, bound in bounds.items():
            pipe.zcount(store.failed(queue), "-inf", bound)
        return sum(int(n) for n in pipe.execute()) if bounds else 0


def _unique(job_ids: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(str(job_id) for job_id in job_ids))


def _chunks(items: list[str], size: int) -> list[list[str]]:
    return [items[i : i + size] for i in range(0, len(items), size)]
