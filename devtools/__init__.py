"""Local stand-ins for the network edge (Azurite, Graph, Log Analytics, managed identity, Teams).

Used by the tests and by ``make demo``; never deployed (see ``.funcignore``).
"""
