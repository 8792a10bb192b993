// Validates what the chart renders against schemas published by others:
// the Grafana dashboard against @grafana/schema's Dashboard type (and each
// panel's options against its panel type's Options), the ServiceMonitor and
// PrometheusRule against the prometheus-operator CRD schemas; then checks
// the dashboard shows the scorecard per Policy.
//
//   node validate.mjs TOOLS_DIR RENDERED_DIR
//
// RENDERED_DIR holds dashboard.json and one <Kind>.json per monitoring
// object (scripts/check-chart writes them). Prints one line per check and
// exits 1 if any failed.
import { readFileSync, existsSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";

const [toolsDir, renderedDir] = process.argv.slice(2);
const require = createRequire(join(toolsDir, "package.json"));
const Ajv = require("ajv").default;
const { ServiceMonitor, PrometheusRule } = await import(
  join(toolsDir, "node_modules/@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/index.js")
);

let failed = 0;
let passed = 0;
function check(name, problems) {
  if (problems.length === 0) {
    passed++;
    console.log(`ok   ${name}`);
  } else {
    failed++;
    console.log(`FAIL ${name}`);
    for (const p of problems) console.log(`     ${p}`);
  }
}
const json = (path) => JSON.parse(readFileSync(path, "utf8"));
const ajv = new Ajv({ allErrors: true, strict: false });
const errorsOf = (validate) =>
  (validate.errors || []).map((e) => `${e.instancePath || "/"} ${e.message} ${JSON.stringify(e.params)}`);

// -- the dashboard against Grafana's schema
const dashboard = json(join(renderedDir, "dashboard.json"));
const dashboardSchema = ajv.compile(json(join(toolsDir, "dashboard.schema.json")));
check("dashboard matches @grafana/schema Dashboard", dashboardSchema(dashboard) ? [] : errorsOf(dashboardSchema));

const panels = (dashboard.panels || []).filter((p) => p.type !== "row");
for (const panel of panels) {
  const schemaPath = join(toolsDir, `panel-${panel.type}.schema.json`);
  if (!existsSync(schemaPath)) {
    check(`panel "${panel.title}" has a known type`, [`no Options schema for panel type ${panel.type}`]);
    continue;
  }
  const validate = ajv.compile(json(schemaPath));
  check(`panel "${panel.title}" options match @grafana/schema ${panel.type} Options`,
    validate(panel.options) ? [] : errorsOf(validate));
}

// -- the scorecard per Policy
const exprs = (panel) => (panel.targets || []).map((t) => t.expr || "");
const byPolicy = (e) => /\bby\s*\(([^)]*\bpolicy\b[^)]*)\)/.test(e);
const wanted = [
  ["fix rate", /remediator_incidents_total\{[^}]*outcome="Resolved"/],
  ["mean steps", /remediator_incident_steps_sum/],
  ["p95 time to resolve", /histogram_quantile\(0\.95,[^]*remediator_time_to_resolve_seconds_bucket/],
  ["actions by risk and decision", /by \(policy, risk, decision\)[^]*remediator_actions_total/],
  ["pending approvals", /remediator_approvals_pending/],
];
for (const [what, pattern] of wanted) {
  const found = panels.filter((p) => exprs(p).some((e) => pattern.test(e)));
  const problems = [];
  if (found.length === 0) problems.push(`no panel queries ${pattern}`);
  for (const p of found) {
    for (const e of exprs(p).filter((e) => pattern.test(e))) {
      if (!byPolicy(e)) problems.push(`"${p.title}" does not group by policy: ${e}`);
      if (!e.includes('policy=~"$policy"')) problems.push(`"${p.title}" ignores the $policy variable: ${e}`);
    }
  }
  check(`dashboard shows ${what} per Policy`, problems);
}
const variables = (dashboard.templating?.list || []).map((v) => v.name);
check("dashboard has datasource and policy variables",
  ["datasource", "policy"].filter((v) => !variables.includes(v)).map((v) => `missing variable ${v}`));
const ids = panels.map((p) => p.id);
check("panel ids are unique", ids.length === new Set(ids).size ? [] : [`ids ${ids}`]);

// -- ServiceMonitor and PrometheusRule against the prometheus-operator CRDs
for (const [kind, Model] of [["ServiceMonitor", ServiceMonitor], ["PrometheusRule", PrometheusRule]]) {
  const path = join(renderedDir, `${kind}.json`);
  if (!existsSync(path)) {
    check(`${kind} rendered`, [`${path} is missing`]);
    continue;
  }
  const problems = [];
  try {
    new Model(json(path)).validate();
  } catch (e) {
    problems.push(e.message);
  }
  check(`${kind} matches the prometheus-operator CRD schema`, problems);
}

console.log(`grafana and prometheus-operator schemas: ${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
