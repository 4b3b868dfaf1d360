"""Incidents: the findings of a run correlated per device and process chain, one post each.

Entry point: :func:`process_run` (see ``docs/incidents.md``). Notifiers render the posts
(:class:`IncidentPost`); the Teams cards are ``shared.cards.incident``.
"""

from .correlate import DEFAULT_WINDOW, Evidence, Group, correlate
from .model import HuntRef, Incident, IncidentPost, StormLine
from .pipeline import IncidentOutcome, IncidentSettings, Post, evidence_of, process_run
from .store import IncidentStore, IncidentStoreError

__all__ = ["DEFAULT_WINDOW", "Evidence", "Group", "HuntRef", "Incident", "IncidentOutcome",
           "IncidentPost", "IncidentSettings", "IncidentStore", "IncidentStoreError", "Post",
           "StormLine", "correlate", "evidence_of", "process_run"]
