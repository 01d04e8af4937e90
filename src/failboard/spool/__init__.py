"""The spool: a table of actions waiting for agents, in a shared SQL database.

The dashboard writes actions (``submit``); the agent inside each project claims its own
(``claim``: atomic, leased, fenced by a per-action claim token), runs them locally and records
the outcome (``complete`` / ``fail``, or many at once: ``settle``). Expired leases are taken
back (``reap``). Every transition is an append-only audit event. See ``Spool`` for the whole API.
"""

from failboard.spool.protocol import AgentSpool
from failboard.spool.records import Event, EventKind
from failboard.spool.settle import Outcome, Settled
from failboard.spool.store import Spool

__all__ = ["AgentSpool", "Event", "EventKind", "Outcome", "Settled", "Spool"]
