"""Where hunts run: Defender XDR (Graph), Sentinel (Log Analytics), or locally over JSON lines."""

from .base import Column, QueryError, QueryResult, QuerySource

__all__ = ["Column", "QueryError", "QueryResult", "QuerySource"]
