"""huntwire's additions to duckdb-kql (the local engine of ``eval``), one module per concern:
``functions`` (install, function registrations, refusals, macros), ``columns``
(``column_ifexists``), ``let_functions`` (tabular ``let`` functions)."""
