"""Fan-out on Storage queues (``HUNTWIRE_FANOUT=queue``; docs/fanout.md): one message per
(tenant, due hunt), a fan-in counter per (tenant, cycle) in Table Storage, one delivery per
(tenant, cycle), and the poison queues announced. The in-process run stays the default."""

from .cycle import Cycle, CycleStore
from .messages import (
    DELIVERY_QUEUE,
    HUNTS_QUEUE,
    POISON_SUFFIX,
    DeliveryMessage,
    HuntMessage,
    MessageError,
    decode,
    encode,
)
from .work import CYCLE_DEADLINE, DELIVERY_LEASE, FANOUT, Fanout, queue_mode

__all__ = ["CYCLE_DEADLINE", "DELIVERY_LEASE", "DELIVERY_QUEUE", "FANOUT", "HUNTS_QUEUE",
           "POISON_SUFFIX", "Cycle", "CycleStore", "DeliveryMessage", "Fanout", "HuntMessage",
           "MessageError", "decode", "encode", "queue_mode"]
