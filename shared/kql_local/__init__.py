"""huntwire's additions to duckdb-kql, one module per construct (entry: ``kql_local_ext``)."""
