// check-env.mjs RENDERED.yaml BIN_DIR: every environment variable a chart gives a container (env, and the keys of
// ConfigMaps it takes with envFrom) is one that container's binary reads. A misspelt name would otherwise be
// ignored without a word (the binaries read only the variables they declare). What a binary reads is what its
// --help lists as "(env NAME)", plus the variables it reads outside its flag table (listed below with the reason).
import { execFileSync } from "node:child_process";
import { Report, loadStream, describe } from "./lib.mjs";

const [file, binDir] = process.argv.slice(2);
const report = new Report(`env ${file.split("/").pop()}`);

// command[0] -> [binary under BIN_DIR, args that print its usage]
const binaries = {
  ztunnel: ["ztunnel/ztunnel", ["--help"]],
  waypoint: ["waypoint/waypoint", ["--help"]],
  "cni-agent": ["cni/agent/cni-agent", ["run", "--help"]],
};
// Read outside the flag tables, or set for the pod's own sake (Istio's charts set them too).
const extra = {
  common: ["POD_NAME", "SERVICE_ACCOUNT", "KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT"], // downward API / informational
  ztunnel: ["INPOD_ENABLED", "RUST_LOG", "TERMINATION_GRACE_PERIOD_SECONDS", "ZTUNNEL_CPU_LIMIT"], // ztunnel/app/config.cpp
  waypoint: [],
  "cni-agent": [],
};
const prefixes = ["ISTIO_META_", "XDS_HEADER_", "CA_HEADER_"]; // common/control_plane/settings.cpp

const declared = {};
function declaredBy(command) {
  if (!declared[command]) {
    const [path, args] = binaries[command];
    const usage = execFileSync(`${binDir}/${path}`, args, { encoding: "utf8" });
    declared[command] = new Set([...usage.matchAll(/\(env ([A-Z0-9_]+)\)/g)].map((m) => m[1]));
    if (declared[command].size < 5) throw new Error(`${path} ${args.join(" ")}: no "(env NAME)" in its usage`);
  }
  return declared[command];
}

const docs = loadStream(file).map((d) => d.object);
const configMaps = Object.fromEntries(docs.filter((o) => o.kind === "ConfigMap").map((o) => [o.metadata.name, o]));
let containers = 0;
for (const o of docs) {
  const spec = o.spec?.template?.spec;
  if (!spec) continue;
  for (const c of spec.containers ?? []) {
    const command = (c.command ?? [])[0];
    if (!binaries[command]) {
      report.fail(`${describe(o)} container ${c.name}`, `command ${JSON.stringify(c.command)} is not one of ours`);
      continue;
    }
    containers++;
    const names = (c.env ?? []).map((e) => e.name);
    for (const from of c.envFrom ?? []) {
      const cm = configMaps[from.configMapRef?.name];
      if (!cm) {
        report.fail(`${describe(o)} container ${c.name}`, `envFrom ConfigMap ${from.configMapRef?.name} is not rendered`);
        continue;
      }
      names.push(...Object.keys(cm.data ?? {}));
    }
    const known = declaredBy(command);
    for (const name of names) {
      const ok = known.has(name) || extra.common.includes(name) || extra[command].includes(name) ||
        prefixes.some((p) => name.startsWith(p));
      if (ok) report.pass(`${describe(o)} ${command}: ${name} is read`);
      else report.fail(`${describe(o)} ${command}: ${name}`, `${command} does not read it (not in its --help, not a known extra)`);
    }
  }
}
if (containers === 0) report.fail(file, "no container of ours in this render");
report.finish();
