// Validate AsyncAPI documents with the official parser (its JSON Schema and its rules).
// Usage: node scripts/validate-asyncapi.mjs FILE... Prints one line per file,
// {"parsed", "version", "errors": [...], "warnings": [...]}, and exits 1 if any file has an
// error (diagnostic severity 0).
import { readFileSync } from "node:fs";
import { Parser } from "@asyncapi/parser";

const parser = new Parser();
const shown = (d) => ({ code: d.code, message: d.message, path: d.path.join(".") });
let failed = false;
for (const file of process.argv.slice(2)) {
  const { document, diagnostics } = await parser.parse(readFileSync(file, "utf8"));
  const errors = diagnostics.filter((d) => d.severity === 0).map(shown);
  const warnings = diagnostics.filter((d) => d.severity === 1).map(shown);
  console.log(JSON.stringify({ parsed: document !== undefined, version: document?.version(), errors, warnings }));
  failed ||= errors.length > 0 || document === undefined;
}
process.exit(failed ? 1 : 0);
