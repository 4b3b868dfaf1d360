// Checks KQL with Microsoft's own Kusto.Language parser (npm @kusto/language-service-next).
// stdin: {"tables": {"Name": {"Col": "type", ...}}, "queries": [{"id": "...", "query": "..."}]}
// stdout: [{"id", "diagnostics": [{code, severity, start, length, message}], "columns": [{name, type}]}]
'use strict';
require('@kusto/language-service-next/bridge.min.js');
require('@kusto/language-service-next/Kusto.Language.Bridge.min.js');

const K = Kusto.Language;

function buildGlobals(tables) {
  const symbols = Object.entries(tables).map(([name, columns]) => {
    const spec = '(' + Object.entries(columns).map(([c, t]) => `['${c}']:${t}`).join(', ') + ')';
    return K.Symbols.TableSymbol.From(spec).WithName(name);
  });
  const database = new K.Symbols.DatabaseSymbol.ctor('huntwire', symbols);
  return K.GlobalState.Default.WithDatabase(database);
}

function toArray(list) {
  const out = [];
  for (let i = 0; i < list.Count; i++) out.push(list.getItem(i));
  return out;
}

function check(globals, query) {
  const code = K.KustoCode.ParseAndAnalyze(query, globals);
  const diagnostics = toArray(code.GetDiagnostics()).map((d) => ({
    code: d.Code, severity: d.Severity, start: d.Start, length: d.Length, message: d.Message,
  }));
  const result = code.ResultType;
  const columns = result && result.Columns
    ? toArray(result.Columns).map((c) => ({ name: c.Name, type: c.Type.Name }))
    : [];
  return { diagnostics, columns };
}

const chunks = [];
process.stdin.on('data', (c) => chunks.push(c));
process.stdin.on('end', () => {
  const request = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  const globals = buildGlobals(request.tables);
  const answers = request.queries.map((q) => ({ id: q.id, ...check(globals, q.query) }));
  process.stdout.write(JSON.stringify(answers));
});
