// Checks KQL with Microsoft's own Kusto.Language parser (npm @kusto/language-service-next).
// stdin: {"tables": {"Name": {"Col": "type", ...}}, "functions": {"Name(params)": {"Col": "type"}},
//         "queries": [{"id": "...", "query": "..."}]}
// stdout: [{"id", "diagnostics": [{code, severity, start, length, message, syntax}],
//           "columns": [{name, type}], "summarize": {"keys": [...], "aggregates": [...]} | null,
//           "tables": [names of the database tables the query reads]}]
'use strict';
require('@kusto/language-service-next/bridge.min.js');
require('@kusto/language-service-next/Kusto.Language.Bridge.min.js');

const K = Kusto.Language;
const S = K.Syntax;

function columnSpec(columns) {
  return '(' + Object.entries(columns).map(([c, t]) => `['${c}']:${t}`).join(', ') + ')';
}

function buildGlobals(tables, functions) {
  const symbols = Object.entries(tables).map(
    ([name, columns]) => K.Symbols.TableSymbol.From(columnSpec(columns)).WithName(name));
  for (const [signature, columns] of Object.entries(functions || {})) {
    const open = signature.indexOf('(');
    // Watchlist-style functions end in bag_unpack: their own columns are open, as in Sentinel.
    const unpack = columns.WatchlistItem ? " | evaluate bag_unpack(WatchlistItem)" : "";
    const body = `{ datatable${columnSpec(columns)} [] ${unpack} }`;
    // FunctionSymbol(name, parameters, body): the overload the bridge names $ctor15
    symbols.push(new K.Symbols.FunctionSymbol.$ctor15(
      signature.slice(0, open), signature.slice(open), body));
  }
  const database = new K.Symbols.DatabaseSymbol.ctor('huntwire', symbols);
  return K.GlobalState.Default.WithDatabase(database);
}

function toArray(list) {
  const out = [];
  if (!list) return out;
  for (let i = 0; i < list.Count; i++) out.push(list.getItem(i));
  return out;
}

function columnsOf(type) {
  return type && type.Columns
    ? toArray(type.Columns).map((c) => ({ name: c.Name, type: c.Type.Name })) : [];
}

// The query's last statement, then its pipeline spine from the right: the last summarize that
// shapes the result. Its output lists the by-keys first, then the aggregates.
function lastSummarize(code) {
  const statements = code.Syntax.Statements ? toArray(code.Syntax.Statements) : [];
  if (!statements.length) return null;
  let node = statements[statements.length - 1].Element;
  node = node && node.Expression ? node.Expression : node;
  while (node) {
    if (node instanceof S.ParenthesizedExpression) { node = node.Expression; continue; }
    if (!(node instanceof S.PipeExpression)) return null;
    if (node.Operator instanceof S.SummarizeOperator) {
      const op = node.Operator;
      const keyCount = op.ByClause ? op.ByClause.Expressions.Count : 0;
      const names = columnsOf(op.ResultType).map((c) => c.name);
      return { keys: names.slice(0, keyCount), aggregates: names.slice(keyCount) };
    }
    node = node.Expression;
  }
  return null;
}

function tablesRead(code, database) {
  const names = new Set();
  code.Syntax.WalkElements((element) => {
    const symbol = element.ReferencedSymbol;
    if (symbol instanceof K.Symbols.TableSymbol && database.GetTable(symbol.Name)) {
      names.add(symbol.Name);
    }
  });
  return [...names];
}

function check(globals, query) {
  const code = K.KustoCode.ParseAndAnalyze(query, globals);
  // Syntax diagnostics (the parser's own) mark the root causes that semantic errors cascade from.
  const syntax = new Set(toArray(K.KustoCode.Parse(query, globals).GetDiagnostics())
    .map((d) => `${d.Code}@${d.Start}`));
  const diagnostics = toArray(code.GetDiagnostics()).map((d) => ({
    code: d.Code, severity: d.Severity, start: d.Start, length: d.Length, message: d.Message,
    syntax: syntax.has(`${d.Code}@${d.Start}`),
  }));
  let summarize = null;
  let tables = [];
  try {
    summarize = lastSummarize(code);
    tables = tablesRead(code, globals.Database);
  } catch (e) {
    summarize = null;
  }
  return { diagnostics, columns: columnsOf(code.ResultType), summarize, tables };
}

const chunks = [];
process.stdin.on('data', (c) => chunks.push(c));
process.stdin.on('end', () => {
  const request = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  const globals = buildGlobals(request.tables, request.functions);
  const answers = request.queries.map((q) => ({ id: q.id, ...check(globals, q.query) }));
  process.stdout.write(JSON.stringify(answers));
});
