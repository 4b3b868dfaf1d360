"""Teams Adaptive Cards, safe with hostile telemetry (rules: ``docs/teams-card.md``).

Two layers keep telemetry inert: structure (query results go only into ``TextRun`` text, which
renders as plain text) and content (:func:`escape_text` defangs links, mentions, tags and
invisible characters anyway). Payloads never exceed :data:`MAX_PAYLOAD_BYTES`.

``escape`` text safety, ``links`` portal and ATT&CK links, ``elements`` card building blocks,
``roles`` what each column is to the reader, ``evidence`` one event's evidence, ``incident``
incident posts, ``storm`` the storm summary, ``notice`` a short notice card, ``payload`` the
message, its size and bytes, ``summary`` what a posted card says at a glance.
"""

from .escape import defang, escape_text, to_text
from .links import PortalLinks, technique_url
from .notice import build_notice
from .payload import (
    ADAPTIVE_CARD,
    CARD_VERSION,
    MAX_PAYLOAD_BYTES,
    card_of,
    payload_size,
    serialize,
)
from .summary import DigestSummary, summarize_digest

__all__ = ["ADAPTIVE_CARD", "CARD_VERSION", "MAX_PAYLOAD_BYTES", "DigestSummary", "PortalLinks",
           "build_notice", "card_of", "defang", "escape_text", "payload_size", "serialize",
           "summarize_digest", "technique_url", "to_text"]
