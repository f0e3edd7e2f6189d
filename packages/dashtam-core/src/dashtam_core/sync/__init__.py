"""The sync engine core: set-based idempotent writes of provider data, change log and outbox.

Every function works on an ``AsyncConnection`` inside the caller's transaction (PostgreSQL or
SQLite) and writes set-based; nothing here talks to a provider or to FastAPI. Entry points:

* :func:`ingest_transactions`: the transactions stage (upsert, pending → posted, removals).
* :func:`snapshot_holdings`: replace an account's positions.
* :func:`upsert_balance_snapshots`: the daily balance series (latest ``as_of`` wins).
* :func:`changes_since`: the change feed, in commit order.
* Outbox, raw payload archive, watermarks and sync runs helpers.
"""

from dashtam_core.sync.archive import (
    archive_raw_payloads,
    get_watermark,
    load_raw_payload,
    set_watermark,
)
from dashtam_core.sync.balances import (
    balance_history,
    balance_snapshot,
    upsert_balance_snapshots,
)
from dashtam_core.sync.changes import ChangePage, changes_since, lock_change_feed
from dashtam_core.sync.engine import DateWindow, TransactionCounts, ingest_transactions
from dashtam_core.sync.holdings import (
    HoldingsCounts,
    SuspiciousEmptyAnswer,
    list_holdings,
    snapshot_holdings,
)
from dashtam_core.sync.outbox import (
    OutboxMessage,
    event_from_payload,
    event_to_payload,
    mark_dispatched,
    pending_events,
    write_events,
)
from dashtam_core.sync.reconcile import Match, MatchRules, match_pending
from dashtam_core.sync.rows import holding_from_row, transaction_from_row
from dashtam_core.sync.runs import (
    SyncRun,
    SyncStatus,
    active_sync_run,
    finish_sync_run,
    get_sync_run,
    queue_sync_run,
    start_sync_run,
)

__all__ = [
    "ChangePage",
    "DateWindow",
    "HoldingsCounts",
    "Match",
    "MatchRules",
    "OutboxMessage",
    "SuspiciousEmptyAnswer",
    "SyncRun",
    "SyncStatus",
    "TransactionCounts",
    "active_sync_run",
    "archive_raw_payloads",
    "balance_history",
    "balance_snapshot",
    "changes_since",
    "event_from_payload",
    "event_to_payload",
    "finish_sync_run",
    "get_sync_run",
    "get_watermark",
    "holding_from_row",
    "ingest_transactions",
    "list_holdings",
    "load_raw_payload",
    "lock_change_feed",
    "mark_dispatched",
    "match_pending",
    "pending_events",
    "queue_sync_run",
    "set_watermark",
    "snapshot_holdings",
    "start_sync_run",
    "transaction_from_row",
    "upsert_balance_snapshots",
    "write_events",
]
