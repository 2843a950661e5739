// Validate an AsyncAPI document with the official parser (its JSON Schema and its rules).
// Usage: node scripts/validate-asyncapi.mjs FILE. Prints {"errors": [...], "warnings": [...]} and
// exits 1 if there is any error (diagnostic severity 0).
import { readFileSync } from "node:fs";
import { Parser } from "@asyncapi/parser";

const text = readFileSync(process.argv[2], "utf8");
const { document, diagnostics } = await new Parser().parse(text);
const shown = (d) => ({ code: d.code, message: d.message, path: d.path.join(".") });
const errors = diagnostics.filter((d) => d.severity === 0).map(shown);
const warnings = diagnostics.filter((d) => d.severity === 1).map(shown);
console.log(JSON.stringify({ parsed: document !== undefined, version: document?.version(), errors, warnings }));
process.exit(errors.length || document === undefined ? 1 : 0);
