"""Where hunts run: Defender XDR (Graph), Sentinel (Log Analytics), or locally over JSON lines.

The registry (:mod:`.catalog`) says which sources exist; :mod:`.base` holds the interface. This
package imports nothing itself, so light modules (hunt files, cards) can read the registry.
"""
