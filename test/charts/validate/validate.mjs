#!/usr/bin/env node
// validate.mjs FILE...: checks every object of rendered YAML streams against the Kubernetes OpenAPI schemas
// (kubernetes-models) and the Gateway API CRD schemas (@kubernetes-models/gateway-api), as the API server
// would with strict field validation:
//   - a wrong type, a missing required field or a value outside an enum fails (the packages' ajv validators);
//   - a field the schema does not know fails too: the packages' validators accept unknown fields, so each
//     object is validated through a Proxy that records which keys the validator read; a key it never read
//     (in an object whose keys it did not enumerate as a map) is unknown to the schema;
//   - a kind with no schema in these packages (another CRD, a typo in apiVersion) fails: nothing passes
//     unchecked.
// Prints one PASS/FAIL line per object; exits 1 if any failed.
import { Report, loadStream, describe } from "./lib.mjs";

// API groups and the package that has their schemas; "" is the core group (apiVersion v1).
const PACKAGES = new Map([
  ["gateway.networking.k8s.io", "@kubernetes-models/gateway-api"],
]);
const BUILTIN_PACKAGE = "kubernetes-models";

async function modelClass(apiVersion, kind) {
  if (typeof apiVersion !== "string" || typeof kind !== "string" || !/^[A-Za-z0-9]+$/.test(kind)) {
    throw new Error(`apiVersion and kind must be strings, got ${JSON.stringify(apiVersion)} ${JSON.stringify(kind)}`);
  }
  const slash = apiVersion.indexOf("/");
  const group = slash < 0 ? "" : apiVersion.slice(0, slash);
  const pkg = PACKAGES.get(group) ?? (group === "" || !group.includes(".") || group.endsWith(".k8s.io") ? BUILTIN_PACKAGE : null);
  if (pkg === null) throw new Error(`no schema for ${apiVersion} ${kind}: API group ${group} is not known to this validator`);
  let mod;
  try {
    mod = await import(`${pkg}/${apiVersion}/${kind}`);
  } catch (e) {
    throw new Error(`no schema for ${apiVersion} ${kind} in ${pkg} (${e.code ?? e.message})`);
  }
  const cls = mod[kind];
  if (typeof cls !== "function" || cls.apiVersion !== apiVersion || cls.kind !== kind) {
    throw new Error(`no schema for ${apiVersion} ${kind} in ${pkg}`);
  }
  return cls;
}

// tracked(value) wraps a plain JSON tree; unknownPaths() lists the keys no validator read.
function tracked(root) {
  const records = new Map(); // target object -> { read: Set of keys, enumerated: bool }
  const proxies = new Map();
  const wrap = (value) => {
    if (value === null || typeof value !== "object") return value;
    if (proxies.has(value)) return proxies.get(value);
    const rec = { read: new Set(), enumerated: false };
    records.set(value, rec);
    const note = (key) => { if (typeof key === "string") rec.read.add(key); };
    const proxy = new Proxy(value, {
      get(target, key, receiver) { note(key); return wrap(Reflect.get(target, key, receiver)); },
      has(target, key) { note(key); return Reflect.has(target, key); },
      getOwnPropertyDescriptor(target, key) { note(key); return Reflect.getOwnPropertyDescriptor(target, key); },
      ownKeys(target) { rec.enumerated = true; return Reflect.ownKeys(target); },
    });
    proxies.set(value, proxy);
    return proxy;
  };
  const unknownPaths = () => {
    const out = [];
    const walk = (value, path) => {
      if (Array.isArray(value)) {
        value.forEach((item, i) => walk(item, `${path}/${i}`));
        return;
      }
      if (value === null || typeof value !== "object") return;
      const rec = records.get(value);
      if (rec === undefined) return; // not reached by the validator: a parent is already reported
      for (const key of Object.keys(value)) {
        if (!rec.enumerated && !rec.read.has(key)) out.push(`${path}/${key}`);
        else walk(value[key], `${path}/${key}`);
      }
    };
    walk(root, "");
    return out;
  };
  return { proxy: wrap(root), unknownPaths };
}

async function validateObject(object) {
  const cls = await modelClass(object?.apiVersion, object?.kind);
  const problems = [];
  const t = tracked(object);
  try {
    cls.prototype.validate.call(t.proxy);
  } catch (e) {
    problems.push(e.message);
  }
  for (const p of t.unknownPaths()) problems.push(`${p}: unknown field (not in the ${object.apiVersion} ${object.kind} schema)`);
  return problems;
}

const files = process.argv.slice(2);
if (files.length === 0) {
  console.error("usage: validate.mjs FILE...");
  process.exit(2);
}
const report = new Report("validate");
for (const file of files) {
  let docs;
  try {
    docs = loadStream(file);
  } catch (e) {
    report.fail(file, e.message);
    continue;
  }
  if (docs.length === 0) report.fail(file, "no objects");
  for (const { source, object } of docs) {
    const what = `${file}: ${describe(object)} (${source})`;
    try {
      const problems = await validateObject(object);
      if (problems.length === 0) report.pass(what);
      else report.fail(what, problems.join("; "));
    } catch (e) {
      report.fail(what, e.message);
    }
  }
}
report.finish();
