"""The findings ledger: every hit remembered in Azure Table Storage, so each finding is posted
once. Design, tables and guarantees: docs/ledger.md."""

from .keys import (
    ROW_SUMMARY_MAX_BYTES,
    finding_key,
    identity_includes_time,
    observe,
    summarize_row,
)
from .ledger import Ledger
from .model import (
    NOTIFIED,
    PENDING,
    Checkpoint,
    Deadline,
    Finding,
    LedgerError,
    RecordResult,
    oldest_first,
)
from .tables import MAX_BATCH, Operation, transact

__all__ = [
    "MAX_BATCH",
    "NOTIFIED",
    "PENDING",
    "ROW_SUMMARY_MAX_BYTES",
    "Checkpoint",
    "Deadline",
    "Finding",
    "Ledger",
    "LedgerError",
    "Operation",
    "RecordResult",
    "finding_key",
    "identity_includes_time",
    "observe",
    "oldest_first",
    "summarize_row",
    "transact",
]
