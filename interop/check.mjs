// Reads synthq's output with readers that share no code with it and checks
// what they see against what synthq says it wrote.
//
//   node check.mjs expected.json
//
// expected.json: [{"path", "format": "arrow"|"parquet", "columns": [...],
// "rows": N, "lists": {"column": [minLen, maxLen]}, "metadata": {k: v}}].
// Exit 0 when every file agrees; otherwise each disagreement is printed and
// the exit status is 1.
import { readFileSync } from "node:fs";
import { RecordBatchStreamReader } from "apache-arrow";
import { DuckDBInstance } from "@duckdb/node-api";

const expected = JSON.parse(readFileSync(process.argv[2], "utf8"));
const problems = [];
const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);

async function checkArrow(e) {
  // Hugging Face datasets opens .arrow with pyarrow.ipc.open_stream: read it
  // the same way, as a stream (a file-format IPC file fails here).
  const reader = RecordBatchStreamReader.from(readFileSync(e.path));
  reader.open();
  const schema = reader.schema;
  const columns = schema.fields.map((f) => f.name);
  if (!same(columns, e.columns)) problems.push(`${e.path}: columns ${columns} != ${e.columns}`);
  for (const [k, v] of Object.entries(e.metadata ?? {})) {
    if (schema.metadata.get(k) !== v) problems.push(`${e.path}: metadata ${k} = ${schema.metadata.get(k)}, want ${v}`);
  }
  let rows = 0;
  const lens = {};
  for (const batch of reader) {
    rows += batch.numRows;
    for (const col of Object.keys(e.lists ?? {})) {
      const vec = batch.getChild(col);
      for (let i = 0; i < batch.numRows; i++) {
        const n = vec.get(i).length;
        const [lo, hi] = lens[col] ?? [Infinity, -Infinity];
        lens[col] = [Math.min(lo, n), Math.max(hi, n)];
      }
    }
  }
  if (rows !== e.rows) problems.push(`${e.path}: apache-arrow reads ${rows} rows, synthq wrote ${e.rows}`);
  for (const [col, want] of Object.entries(e.lists ?? {})) {
    if (rows > 0 && !same(lens[col], want)) problems.push(`${e.path}: ${col} list lengths ${lens[col]}, want ${want}`);
  }
}

async function checkParquet(e, conn) {
  const path = e.path.replaceAll("'", "''");
  const desc = await conn.runAndReadAll(`DESCRIBE SELECT * FROM read_parquet('${path}')`);
  const columns = desc.getRowObjects().map((r) => r.column_name);
  if (!same(columns, e.columns)) problems.push(`${e.path}: DuckDB sees columns ${columns}, want ${e.columns}`);
  const count = await conn.runAndReadAll(`SELECT count(*)::INTEGER AS n FROM read_parquet('${path}')`);
  const rows = count.getRowObjects()[0].n;
  if (rows !== e.rows) problems.push(`${e.path}: DuckDB counts ${rows} rows, synthq wrote ${e.rows}`);
  for (const [col, want] of Object.entries(e.lists ?? {})) {
    if (rows === 0) continue;
    const q = await conn.runAndReadAll(
      `SELECT min(len("${col}"))::INTEGER AS lo, max(len("${col}"))::INTEGER AS hi FROM read_parquet('${path}')`);
    const { lo, hi } = q.getRowObjects()[0];
    if (!same([lo, hi], want)) problems.push(`${e.path}: DuckDB ${col} list lengths ${[lo, hi]}, want ${want}`);
  }
}

const db = await DuckDBInstance.create(":memory:");
const conn = await db.connect();
for (const e of expected) {
  try {
    if (e.format === "arrow") await checkArrow(e);
    else if (e.format === "parquet") await checkParquet(e, conn);
    else problems.push(`${e.path}: unknown format ${e.format}`);
  } catch (err) {
    problems.push(`${e.path}: ${err.message ?? err}`);
  }
}
if (problems.length > 0) {
  for (const p of problems) console.error(p);
  process.exit(1);
}
console.log(`interop: ${expected.length} files read by apache-arrow and DuckDB agree with synthq`);
