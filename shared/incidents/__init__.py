"""Incidents: the findings of a run correlated per device and process chain, one card each.

Entry point: :func:`process_run` (see ``docs/incidents.md``).
"""

from .card import incident_payload, storm_payload, update_payload
from .correlate import DEFAULT_WINDOW, Evidence, Group, correlate
from .model import HuntRef, Incident
from .pipeline import IncidentOutcome, IncidentSettings, Post, evidence_of, process_run
from .store import IncidentStore, IncidentStoreError

__all__ = ["DEFAULT_WINDOW", "Evidence", "Group", "HuntRef", "Incident", "IncidentOutcome",
           "IncidentSettings", "IncidentStore", "IncidentStoreError", "Post", "correlate",
           "evidence_of", "incident_payload", "process_run", "storm_payload", "update_payload"]
