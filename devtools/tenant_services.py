"""Local Graph and Log Analytics stand-ins that serve several customer tenants at once (the MSSP
demo and tests): each tenant's own telemetry, chosen the way the services choose it.

* :class:`TenantGraph` answers each query from the telemetry of the token's tenant (``tid``, as
  :class:`devtools.service_model.TenantTokens` issues it); a tenant in *unconsented* gets
  Graph's 403 ``Authorization_RequestDenied`` (the app has no consented permission there).
* :class:`TenantLogs` answers each workspace from its own telemetry; a workspace it does not hold
  (deleted, or its Lighthouse delegation removed) gets the service's 404
  ``WorkspaceNotFoundError``.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

from devtools.fake_graph import (
    FakeGraph,
    LocalEngine,
    _casefold_keys,
    _results_document,
    _window,
    graph_error,
    parse_interval,
)
from devtools.fake_loganalytics import (
    QUERY_PATH,
    FakeLogAnalytics,
    _body_refusal,
    logs_error,
)
from devtools.identity import Reply, Request, token_audience
from devtools.service_model import token_tenant

Events = Mapping[str, Path | str]


class TenantGraph(FakeGraph):
    """``TenantGraph({tenant_id: {table: path}}, unconsented={tenant_id})``."""

    def __init__(self, tenants: Mapping[str, Events], *, unconsented: Collection[str] = (),
                 **options: Any) -> None:
        super().__init__(**options)
        self.engines = {tenant: LocalEngine(events) for tenant, events in tenants.items()}
        self.unconsented = set(unconsented)
        self.calls: dict[str, int] = {}

    def _run_locally(self, request: Request) -> Reply:
        tenant = token_tenant(request.headers.get("authorization"))
        self.calls[tenant] = self.calls.get(tenant, 0) + 1
        if tenant in self.unconsented:
            return graph_error(403, "Authorization_RequestDenied",
                               "Insufficient privileges to complete the operation.")
        parameters = _casefold_keys(request.json())
        window = _window(parameters.get("timespan"), self._clock())
        engine = self.engines.get(tenant)
        if window is None or engine is None:
            return graph_error(400, "BadRequest", "unknown tenant or timespan")
        try:
            result = engine.run(parameters["query"], window, "defender")
        except ValueError as exc:
            return graph_error(400, "BadRequest", str(exc))
        return Reply(200, _results_document(result, self.row_limit))


class TenantLogs(FakeLogAnalytics):
    """``TenantLogs({workspace_id: {table: path}})``: every listed workspace answers."""

    def __init__(self, workspaces: Mapping[str, Events], **options: Any) -> None:
        first = next(iter(workspaces))
        super().__init__(first, **options)
        self.engines = {workspace: LocalEngine(events) for workspace, events in workspaces.items()}

    def _refusal(self, request: Request) -> Reply | None:
        match = QUERY_PATH.match(request.path)
        if match is None or request.method != "POST":
            return logs_error(404, "PathNotFoundError", "The requested path does not exist")
        audience = token_audience(request.headers.get("authorization"))
        if audience is None or audience.rstrip("/") != (self.audience or self.url).rstrip("/"):
            return logs_error(401, "InvalidTokenError",
                              "The provided authentication is not valid for this resource")
        if match.group("workspace") not in self.engines:
            return logs_error(404, "WorkspaceNotFoundError", "The workspace could not be found")
        return _body_refusal(request)

    def _run_locally(self, request: Request) -> Reply:
        match = QUERY_PATH.match(request.path)
        body = request.json()
        window = parse_interval(body.get("timespan"))
        if match is None or window is None:
            return logs_error(400, "BadArgumentError", "The fake takes timespan as start/end only")
        missing = [w for w in body.get("workspaces") or [] if w not in self.engines]
        if missing:
            return logs_error(404, "WorkspaceNotFoundError", "The workspace could not be found")
        try:
            result = self.engines[match.group("workspace")].run(body["query"], window, "sentinel")
        except ValueError as exc:
            return logs_error(400, "BadArgumentError", "The request had some invalid properties",
                              inner=("SemanticError", str(exc)))
        return Reply(200, self._document(result))
