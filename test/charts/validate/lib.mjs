// Shared by validate.mjs and check.mjs: reading a rendered YAML stream the way the API server's client
// would (YAML 1.1, as sigs.k8s.io/yaml: an unquoted `on` is a boolean), keeping each document's
// `# Source:` comment, and PASS/FAIL reporting.
import fs from "node:fs";
import { parseAllDocuments } from "yaml";

// One line per result; run_chart_tests.sh counts the PASS and FAIL lines.
export class Report {
  constructor(prefix) {
    this.prefix = prefix;
    this.failed = 0;
    this.passed = 0;
  }
  pass(what) {
    this.passed++;
    console.log(`PASS ${this.prefix}: ${what}`);
  }
  fail(what, why) {
    this.failed++;
    console.log(`FAIL ${this.prefix}: ${what}: ${why}`);
  }
  // exit status: 1 when anything failed
  finish() {
    process.exitCode = this.failed > 0 ? 1 : 0;
  }
}

// loadStream returns [{source, object}] or throws with the file and the parser's message.
export function loadStream(file) {
  const text = fs.readFileSync(file, "utf8");
  const docs = parseAllDocuments(text, { version: "1.1", uniqueKeys: true, prettyErrors: true });
  if (!Array.isArray(docs)) throw new Error(`${file}: not a YAML stream`);
  const out = [];
  for (const doc of docs) {
    const problems = [...doc.errors, ...doc.warnings];
    if (problems.length > 0) throw new Error(`${file}: ${problems.map((e) => e.message).join("; ")}`);
    const object = doc.toJS({ maxAliasCount: 0 });
    if (object === null || object === undefined) continue;
    const m = /Source: (\S+)/.exec(`${doc.commentBefore ?? ""}\n${doc.contents?.commentBefore ?? ""}`);
    out.push({ source: m ? m[1] : "(no Source comment)", object });
  }
  return out;
}

export function describe(object) {
  const name = object?.metadata?.name ?? "(no name)";
  return `${object?.kind ?? "(no kind)"}/${name}`;
}
