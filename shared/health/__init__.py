"""Hunt health: per-hunt records, failure and recovery notices, auto-disable, the daily heartbeat
and ``huntwire status``.

Entry points: :func:`shared.health.runner_hooks.build_health` (the runner's hooks) and
:mod:`shared.cli.status` (the CLI command). This module imports nothing, so
importing a submodule never pulls in the runner.
"""
