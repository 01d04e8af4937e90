"""Acts on one Dramatiq project's dead letters in Redis, in atomic batches.

- ``retry``       = what ``RedisBroker.enqueue`` does with the decoded message (a new redis
  message id, ``HSET <ns>:<queue>.msgs`` + ``RPUSH <ns>:<queue>``), with its retries reset,
  a fresh timestamp (an actor's ``max_age`` counts from it) and the previous traceback dropped,
  then the dead letter removed (``ZREM`` + ``HDEL``) with the middleware's error record. The
  message keeps its ``message_id``.
- ``delete``      = remove the dead letter, its message and its error record.
- ``retry_queue`` = retry every dead letter of a queue (or of every queue) dead-lettered at or
  before the moment the operator asked; a retried message that fails again is dead-lettered
  later and is not touched.
- ``prune``       = delete the dead letters older than a moment.

Why one Lua script per batch rather than ``broker.enqueue`` followed by ``ZREM``: the claim
(``ZREM``) and the push happen together or not at all, so a crash between them loses nothing
and two agents retrying the same message (two actions, or an action taken back from a killed
agent) never push it twice: the second finds it gone and counts it missing. A ``RedisBroker``
built in the agent would carry none of the project's middleware anyway, so calling it would add
no behaviour, only the gap. Messages are rebuilt in Python with the standard JSON encoder
dramatiq uses by default; a message that is not JSON (a project with another encoder) is
answered as failed, untouched. ``broker.flush`` is never called (it drops the live queue too).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import redis

from failboard.drivers import sqltable
from failboard.drivers.base import Progress, ResultTally, no_progress
from failboard.drivers.dramatiq.keys import TRANSIENT_OPTIONS, canonical
from failboard.drivers.dramatiq.options import CAPABILITIES, Options
from failboard.drivers.dramatiq.store import DramatiqStore
from failboard.models import ActionResult

__all__ = ["SCRIPT_CHUNK", "DramatiqExecutor", "requeued_message"]

SCRIPT_CHUNK = 500
"""Messages per Lua script call: a few ms of Redis time."""

# ARGV: ns, then (queue, old id, new id, data) per message; data "" = the message is gone, drop
# the stale entry. Returns one code per message: 1 requeued, 0 missing.
_RETRY = """
local ns = ARGV[1]
local out = {}
for i = 2, #ARGV, 4 do
  local queue, old, new, data = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local xq = ns .. ':' .. queue .. '.XQ'
  if redis.call('ZREM', xq, old) == 1 then
    redis.call('HDEL', xq .. '.msgs', old)
    redis.call('DEL', ns .. ':failboard:error:' .. old)
    if data ~= '' then
      redis.call('HSET', ns .. ':' .. queue .. '.msgs', new, data)
      redis.call('RPUSH', ns .. ':' .. queue, new)
      out[#out + 1] = 1
    else
      out[#out + 1] = 0
    end
  else
    out[#out + 1] = 0
  end
end
return out
"""

# ARGV: ns, then (queue, id) per message. Returns 1 removed, 0 missing.
_DELETE = """
local ns = ARGV[1]
local out = {}
for i = 2, #ARGV, 2 do
  local queue, id = ARGV[i], ARGV[i + 1]
  local xq = ns .. ':' .. queue .. '.XQ'
  if redis.call('ZREM', xq, id) == 1 then
    redis.call('HDEL', xq .. '.msgs', id)
    redis.call('DEL', ns .. ':failboard:error:' .. id)
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
return out
"""


def requeued_message(raw: bytes, queue: str, new_id: str) -> bytes:
    """The message to enqueue again: retries reset, on its canonical queue, under ``new_id``.

    Raises ValueError when ``raw`` is not a JSON dramatiq message."""
    fields: Any = json.loads(raw)
    if not isinstance(fields, dict) or not isinstance(fields.get("actor_name"), str):
        raise ValueError("not a dramatiq message")
    options = fields.get("options")
    options = {k: v for k, v in options.items() if k not in TRANSIENT_OPTIONS} if options else {}
    options["redis_message_id"] = new_id
    # A fresh timestamp: an actor's max_age (AgeLimit) counts from it, and an operator's retry
    # of a days-old message must run, not be skipped as too old at once.
    stamp = int(time.time() * 1000)
    again = {
        **fields,
        "queue_name": canonical(queue),
        "options": options,
        "message_timestamp": stamp,
    }
    # Same separators as dramatiq's JSONEncoder: the bytes look like any message it enqueues.
    return json.dumps(again, separators=(",", ":")).encode("utf-8")


class DramatiqExecutor:
    """The Executor (see :class:`failboard.drivers.base.Executor`) of one Dramatiq project
    whose broker is Redis."""

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
        self._chunk = min(max(1, batch_size), SCRIPT_CHUNK)
        self._store = DramatiqStore(project, url, self.options, timeout=30.0, client=client)
        self._retry = self._store.redis.register_script(_RETRY)
        self._delete = self._store.redis.register_script(_DELETE)

    # -- Executor --------------------------------------------------------------------------

    def retry(self, job_ids: Sequence[str], progress: Progress = no_progress) -> ActionResult:
        """Enqueue the messages again (retries reset), then drop their dead letters; ids not in
        any dead-letter set count as missing."""
        ids = sqltable.unique(job_ids)
        tally = ResultTally()
        for chunk in sqltable.chunks(ids, self._chunk):
            with self._store.errors():
                where = self._store.locate(chunk)
            tally.missing += len(chunk) - len(where)
            self._retry_batch(tally, [(where[rid][0], rid) for rid in chunk if rid in where])
            progress(tally.done, len(ids))
        return tally.result()

    def delete(self, job_ids: Sequence[str], progress: Progress = no_progress) -> ActionResult:
        """Remove the dead letters, their messages and their error records."""
        ids = sqltable.unique(job_ids)
        tally = ResultTally()
        for chunk in sqltable.chunks(ids, self._chunk):
            with self._store.errors():
                where = self._store.locate(chunk)
            removed = self._run_delete([(where[rid][0], rid) for rid in chunk if rid in where])
            tally.succeeded += removed
            tally.missing += len(chunk) - removed
            progress(tally.done, len(ids))
        return tally.result()

    def retry_queue(
        self, queue: str | None, failed_before: datetime, progress: Progress = no_progress
    ) -> ActionResult:
        """Retry every dead letter of ``queue`` (every queue when None) dead-lettered at or
        before ``failed_before``."""
        tally = ResultTally()
        bounds, total = self._bounds(queue, failed_before, inclusive=True)
        for name, bound in bounds.items():
            left_behind = 0  # refused messages stay in the set: walk past them
            while ids := self._oldest(name, bound, left_behind):
                before = tally.failed
                self._retry_batch(tally, [(name, rid) for rid in ids])
                left_behind += tally.failed - before
                progress(tally.done, total)
        return tally.result()

    def prune(self, older_than: datetime, progress: Progress = no_progress) -> ActionResult:
        """Delete the dead letters older than ``older_than``."""
        tally = ResultTally()
        bounds, total = self._bounds(None, older_than, inclusive=False)
        for name, bound in bounds.items():
            while ids := self._oldest(name, bound, 0):
                removed = self._run_delete([(name, rid) for rid in ids])
                tally.succeeded += removed
                tally.missing += len(ids) - removed
                progress(tally.done, total)
        return tally.result()

    def close(self) -> None:
        self._store.close()

    # -- batches ---------------------------------------------------------------------------

    def _retry_batch(self, tally: ResultTally, batch: list[tuple[str, str]]) -> None:
        if not batch:
            return
        store = self._store
        with store.errors():
            pipe = store.redis.pipeline(transaction=False)
            for queue, rid in batch:
                pipe.hget(store.xq_messages(queue), rid)
            raws = pipe.execute()
        args: list[str | bytes] = [store.ns]
        for (queue, rid), raw in zip(batch, raws, strict=True):
            if raw is None:
                args += [queue, rid, "", ""]  # the entry outlived its message: drop it
                continue
            new_id = str(uuid.uuid4())
            try:
                data = requeued_message(raw, queue, new_id)
            except (ValueError, UnicodeDecodeError):
                tally.fail(
                    rid,
                    "not a JSON message (the project uses another dramatiq encoder): "
                    "re-enqueue it from the application; not retried",
                )
                continue
            args += [queue, rid, new_id, data]
        if len(args) == 1:
            return
        with store.errors():
            codes = [int(code) for code in self._retry(args=args)]
        tally.succeeded += codes.count(1)
        tally.missing += codes.count(0)

    def _run_delete(self, batch: list[tuple[str, str]]) -> int:
        if not batch:
            return 0
        args: list[str] = [self._store.ns]
        for queue, rid in batch:
            args += [queue, rid]
        with self._store.errors():
            return sum(int(code) for code in self._delete(args=args))

    def _bounds(
        self, queue: str | None, moment: datetime, *, inclusive: bool
    ) -> tuple[dict[str, str], int]:
        store = self._store
        with store.errors():
            queues = [canonical(queue)] if queue is not None else store.queue_names()
            score = repr(store.score_of("", moment))
            bounds = {q: score if inclusive else f"({score}" for q in queues}
            pipe = store.redis.pipeline(transaction=False)
            for name, bound in bounds.items():
                pipe.zcount(store.zset(name), "-inf", bound)
            total = sum(int(n) for n in pipe.execute())
        return bounds, total

    def _oldest(self, queue: str, bound: str, offset: int) -> list[str]:
        """The oldest ids of ``queue``'s dead-letter set up to ``bound``, past ``offset``."""
        store = self._store
        with store.errors():
            raw = store.redis.zrangebyscore(
                store.zset(queue), "-inf", bound, start=offset, num=self._chunk
            )
        return [m.decode("utf-8", "surrogateescape") for m in raw]  # type: ignore[union-attr]
