#!/usr/bin/env node
// check-docs.mjs CHART_DIR: the chart documents every value.
//   - values.yaml: every leaf key outside list items is commented, directly or through a commented parent
//     (`resources:` covers `resources.requests.cpu`; `multiCluster:` needs none when its keys have theirs);
//   - README.md lists every commented key as `key` in its values table;
//   - values.schema.json declares every key of values.yaml (the renderer's schema check would refuse an
//     undeclared one anyway; this names it without rendering).
// Prints one PASS/FAIL line per check; exits 1 if any failed.
import fs from "node:fs";
import path from "node:path";
import { Report } from "./lib.mjs";

const dir = process.argv[2];
if (!dir) {
  console.error("usage: check-docs.mjs CHART_DIR");
  process.exit(2);
}
const chart = path.basename(dir);
const report = new Report(`docs ${chart}`);

// keys: [{path, commented}] for every `key:` line of values.yaml that is not inside a list item.
function valueKeys(text) {
  const keys = [];
  const stack = []; // {indent, key, commented}
  let comment = false;
  let listIndent = -1; // inside a list item started at this indent: its keys are data, not values
  for (const line of text.split("\n")) {
    if (line.trim() === "") {
      comment = false;
      continue;
    }
    const indent = line.length - line.trimStart().length;
    if (listIndent >= 0 && indent > listIndent) continue;
    listIndent = -1;
    if (line.trimStart().startsWith("#")) {
      comment = true;
      continue;
    }
    if (line.trimStart().startsWith("- ")) {
      listIndent = indent;
      comment = false;
      continue;
    }
    const m = /^\s*([A-Za-z0-9_.\/-]+):/.exec(line);
    if (!m) {
      comment = false;
      continue;
    }
    while (stack.length > 0 && stack[stack.length - 1].indent >= indent) stack.pop();
    const parentCovered = stack.some((s) => s.commented);
    const entry = { indent, key: m[1], commented: comment };
    const parts = [...stack.map((s) => s.key), m[1]];
    keys.push({ parts, path: parts.join("."), commented: comment, covered: comment || parentCovered });
    stack.push(entry);
    comment = false;
  }
  return keys;
}

function schemaHas(schema, parts) {
  let node = schema;
  for (const part of parts) {
    if (node.properties && part in node.properties) node = node.properties[part];
    else if (node.additionalProperties && typeof node.additionalProperties === "object") node = node.additionalProperties;
    else if (node.additionalProperties === true) return true;
    else return false;
  }
  return true;
}

try {
  const values = fs.readFileSync(path.join(dir, "values.yaml"), "utf8");
  const readme = fs.readFileSync(path.join(dir, "README.md"), "utf8");
  const schema = JSON.parse(fs.readFileSync(path.join(dir, "values.schema.json"), "utf8"));
  const keys = valueKeys(values);
  if (keys.length === 0) report.fail("values.yaml", "no keys found");
  // A key holding other keys (multiCluster:) needs no comment of its own; its leaves do.
  const isLeaf = (k) => !keys.some((o) => o.parts.length > k.parts.length && o.path.startsWith(`${k.path}.`));
  const uncovered = keys.filter((k) => isLeaf(k) && !k.covered).map((k) => k.path);
  if (uncovered.length === 0) report.pass(`every key of values.yaml is commented (${keys.length} keys)`);
  else report.fail("every key of values.yaml is commented", `uncommented: ${uncovered.join(", ")}`);
  const undocumented = keys.filter((k) => k.commented && !readme.includes(`| \`${k.path}\` |`)).map((k) => k.path);
  if (undocumented.length === 0) report.pass("README.md lists every value");
  else report.fail("README.md lists every value", `missing rows: ${undocumented.join(", ")}`);
  const undeclared = keys.filter((k) => !schemaHas(schema, k.parts)).map((k) => k.path);
  if (undeclared.length === 0) report.pass("values.schema.json declares every value");
  else report.fail("values.schema.json declares every value", `undeclared: ${undeclared.join(", ")}`);
} catch (e) {
  report.fail(dir, e.message);
}
report.finish();
