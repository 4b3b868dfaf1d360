"""Table Storage for every store: one client with bounded timeouts and retries, tables created on
first use, one error translation, one conflict-retry helper, the run's deadline on every call.
``shared.storage.settings`` is the only code that reads the storage settings."""

from .deadline import Deadline
from .errors import CONFLICTS, Conflict, DeadlinePassed, reason_of, retry_conflicts, storage_errors
from .layer import BOUNDS, BoundedTransport, Bounds, Meter, Storage
from .settings import needs_credential, open_storage, storage_configured

__all__ = ["BOUNDS", "CONFLICTS", "BoundedTransport", "Bounds", "Conflict", "Deadline",
           "DeadlinePassed", "Meter", "Storage", "needs_credential", "open_storage", "reason_of",
           "retry_conflicts", "storage_configured", "storage_errors"]
