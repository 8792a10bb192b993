"""What `helm template` rendered, checked for what the chart promises, and
split into the files the other checks read.

    python rendered.py RENDERED.yaml OUT_DIR [--expect-monitoring]

Asserts the operator's security posture, the NetworkPolicies' intent and
that the operator's RBAC is exactly files/*-rbac.yaml; writes to OUT_DIR:
dashboard.json (from the ConfigMap), <Kind>.json for a ServiceMonitor and a
PrometheusRule, rules.yaml (the PrometheusRule's groups, as promtool and
Prometheus read them) and dashboard-rules.yaml (every dashboard query as a
recording rule, Grafana's variables given values, so promtool parses them).
Prints one line per check; exits 1 if any failed.
"""

import json
import os
import re
import sys

import yaml

CHART = os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../charts/remediator")
# What Grafana puts in place of its variables, for parsing and for queries
# against a real Prometheus.
GRAFANA_VARIABLES = {
    "$__rate_interval": "1m",
    "$__range": "10m",
    "$__interval": "15s",
    '"$policy"': '".*"',
}

passed = failed = 0


def collector_only(egress, operator_container):
    """Whether scenario Pods' egress is tracing.collectorEgress alone: only
    with traces exported, every rule naming its peers and ports, none open
    to every address."""
    env = {e["name"] for e in operator_container.get("env", [])}
    return "OTEL_EXPORTER_OTLP_ENDPOINT" in env and all(
        rule.get("to") and rule.get("ports")
        and not any(peer.get("ipBlock", {}).get("cidr") in ("0.0.0.0/0", "::/0") for peer in rule["to"])
        for rule in egress
    )


def check(name, problems):
    global passed, failed
    if problems:
        failed += 1
        print(f"FAIL {name}")
        for p in problems:
            print(f"     {p}")
    else:
        passed += 1
        print(f"ok   {name}")


def grafana_to_promql(expr):
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    return expr


def main():
    rendered, out = sys.argv[1], sys.argv[2]
    expect_monitoring = "--expect-monitoring" in sys.argv
    os.makedirs(out, exist_ok=True)
    with open(rendered) as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    by_kind = {}
    for doc in docs:
        by_kind.setdefault(doc["kind"], []).append(doc)

    [deployment] = [d for d in by_kind["Deployment"] if d["metadata"]["name"].endswith("-operator")]
    pod = deployment["spec"]["template"]["spec"]
    [container] = pod["containers"]
    sc, psc = container.get("securityContext", {}), pod.get("securityContext", {})
    problems = []
    if sc.get("allowPrivilegeEscalation") is not False:
        problems.append("allowPrivilegeEscalation is not false")
    if sc.get("readOnlyRootFilesystem") is not True:
        problems.append("the root filesystem is writable")
    if sc.get("capabilities", {}).get("drop") != ["ALL"]:
        problems.append(f"capabilities drop {sc.get('capabilities')}")
    if psc.get("runAsNonRoot") is not True or not psc.get("runAsUser"):
        problems.append("may run as root")
    if psc.get("seccompProfile", {}).get("type") != "RuntimeDefault":
        problems.append(f"seccomp {psc.get('seccompProfile')}")
    for probe in ("livenessProbe", "readinessProbe"):
        if probe not in container:
            problems.append(f"no {probe}")
    if not container.get("resources", {}).get("requests") or not container["resources"].get("limits"):
        problems.append("no resource requests and limits")
    if pod.get("automountServiceAccountToken") is False:
        problems.append("the operator needs its token")
    check("operator Deployment: non-root, read-only, no escalation, no capabilities, RuntimeDefault, probes, resources", problems)

    args = container["args"]
    replicas = deployment["spec"]["replicas"]
    problems = []
    if replicas > 1 and "--no-leader-election" in args:
        problems.append(f"{replicas} replicas without leader election")
    if replicas > 1 and not any(a.startswith("--lease-name=") for a in args):
        problems.append("no --lease-name")
    env = {e["name"] for e in container.get("env", [])}
    if not {"POD_NAME", "POD_NAMESPACE"} <= env:
        problems.append(f"leader election needs POD_NAME and POD_NAMESPACE, env has {sorted(env)}")
    check(f"operator: {replicas} replica(s), leader election wired", problems)

    # The optimizer's Pods run the sandbox: an unmasked /proc (its private
    # /proc) only where the API server accepts it, in their own user namespace.
    problems = []
    for cronjob in by_kind.get("CronJob", []):
        spec = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        for c in spec["containers"]:
            unmasked = c.get("securityContext", {}).get("procMount") == "Unmasked"
            if unmasked and spec.get("hostUsers") is not False:
                problems.append(f"{cronjob['metadata']['name']}: procMount Unmasked without hostUsers: false")
    check("optimizer: procMount Unmasked only with hostUsers: false", problems)

    # Scenario Pods are the operator's: it is told how to build them.
    problems = []
    proc_mount = [a.split("=", 1)[1] for a in args if a.startswith("--proc-mount=")]
    if proc_mount not in (["Default"], ["Unmasked"]):
        problems.append(f"--proc-mount should be given once as Default or Unmasked, args have {proc_mount}")
    elif proc_mount == ["Unmasked"] and "--host-users=false" not in args:
        problems.append("--proc-mount=Unmasked without --host-users=false: the operator refuses to start")
    check("operator: scenario Pods' procMount passed, Unmasked only with hostUsers: false", problems)

    # RBAC: exactly the files the cluster tier runs the operator under.
    def rules_of(name):
        with open(os.path.join(CHART, "files", name)) as f:
            return yaml.safe_load(f)

    roles = by_kind.get("ClusterRole", []) + by_kind.get("Role", [])
    operator_roles = [r for r in roles if r["metadata"]["name"].endswith("-operator")]
    lease_roles = [r for r in roles if r["metadata"]["name"].endswith("-leader-election")]
    optimizer_roles = [r for r in roles if r["metadata"]["name"].endswith("-optimizer")]
    mcp_roles = [r for r in roles if r["metadata"]["name"].endswith("-mcp")]
    problems = []
    if any(r["rules"] != rules_of("mcp-rbac.yaml") for r in mcp_roles):
        problems.append("the MCP server's role is not files/mcp-rbac.yaml (read-only)")
    if any(r["rules"] != rules_of("optimizer-rbac.yaml") for r in optimizer_roles):
        problems.append("the closed loop's role is not files/optimizer-rbac.yaml")
    if optimizer_roles and optimizer_roles[0]["kind"] != "Role":
        problems.append("the closed loop's rights reach beyond its Policy's namespace")
    if len(operator_roles) != 1 or operator_roles[0]["rules"] != rules_of("operator-rbac.yaml"):
        problems.append("the operator's role is not files/operator-rbac.yaml")
    if "--no-leader-election" not in args and (
        len(lease_roles) != 1 or lease_roles[0]["rules"] != rules_of("leader-election-rbac.yaml")
    ):
        problems.append("the leader-election role is not files/leader-election-rbac.yaml")
    for role in roles:
        for rule in role["rules"]:
            if "*" in rule.get("verbs", []) or "*" in rule.get("resources", []):
                problems.append(f"{role['metadata']['name']} has a wildcard: {rule}")
            if "pods/exec" in rule.get("resources", []) or "delete" in rule.get("verbs", []):
                problems.append(f"{role['metadata']['name']} may exec or delete: {rule}")
    bindings = by_kind.get("ClusterRoleBinding", []) + by_kind.get("RoleBinding", [])
    agent_sas = [
        s
        for s in by_kind.get("ServiceAccount", [])
        if s["metadata"]["name"] != pod["serviceAccountName"]
        and s["metadata"].get("labels", {}).get("app.kubernetes.io/component") not in ("optimizer", "mcp")
    ]
    for binding in bindings:
        for subject in binding["subjects"]:
            if subject["name"] in {s["metadata"]["name"] for s in agent_sas}:
                problems.append(f"{binding['metadata']['name']} gives the agent account rights")
    for sa in agent_sas:
        if sa.get("automountServiceAccountToken") is not False:
            problems.append(f"agent account {sa['metadata']['namespace']}/{sa['metadata']['name']} mounts its token")
    check("RBAC: the operator's, the closed loop's and the MCP server's rules are files/*-rbac.yaml; no wildcard, exec or delete; agents have no rights and no token", problems)

    # NetworkPolicies.
    policies = {(p["metadata"]["namespace"], p["metadata"]["name"].rsplit("-", 1)[-1]): p for p in by_kind.get("NetworkPolicy", [])}
    problems = []
    namespaces = sorted({ns for ns, role in policies if role in ("scenario", "agent")})
    if not namespaces:
        problems.append("no NetworkPolicy for scenario or agent Pods")
    for ns in namespaces:
        scenario = policies.get((ns, "scenario"))
        agent = policies.get((ns, "agent"))
        if not scenario or "Egress" not in scenario["spec"]["policyTypes"]:
            problems.append(f"{ns}: scenario Pods may have egress")
        elif scenario["spec"].get("egress") and not collector_only(scenario["spec"]["egress"], container):
            problems.append(f"{ns}: scenario Pods may have egress beyond a trace collector: {scenario['spec']['egress']}")
        elif any(
            peer.get("podSelector", {}).get("matchLabels", {}).get("app.kubernetes.io/component") != "operator"
            for rule in scenario["spec"]["ingress"]
            for peer in rule["from"]
        ):
            problems.append(f"{ns}: something besides the operator reaches scenario Pods")
        if not agent or agent["spec"].get("ingress") or "Ingress" not in agent["spec"]["policyTypes"]:
            problems.append(f"{ns}: agent Pods accept connections")
    operator_ns = deployment["metadata"]["namespace"]
    operator = policies.get((operator_ns, "operator"))
    api_port = next(p["containerPort"] for p in container["ports"] if p["name"] == "action-api")
    if not operator:
        problems.append("no NetworkPolicy for the operator")
    else:
        api_rules = [r for r in operator["spec"]["ingress"] if any(p["port"] == api_port for p in r.get("ports", []))]
        for rule in api_rules:
            peers = rule.get("from")
            if not peers or any(
                peer.get("podSelector", {}).get("matchLabels", {}).get("remediator.dev/role") != "agent" for peer in peers
            ):
                problems.append(f"the Action API (port {api_port}) is open to more than agent Pods: {rule}")
    check(f"NetworkPolicies: only agents reach the Action API, only the operator reaches scenario Pods, which have no egress but to a trace collector ({', '.join(namespaces)})", problems)

    # The dashboard and the monitoring objects, for the other checks.
    [dashboard_cm] = [c for c in by_kind.get("ConfigMap", []) if c["metadata"]["name"].endswith("-dashboard")]
    dashboard = json.loads(dashboard_cm["data"]["remediator.json"])
    with open(os.path.join(CHART, "files/dashboards/remediator.json")) as f:
        check("the dashboard ConfigMap carries files/dashboards/remediator.json", [] if json.load(f) == dashboard else ["it differs"])
    with open(os.path.join(out, "dashboard.json"), "w") as f:
        json.dump(dashboard, f)
    exprs = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            exprs.append((panel["title"], target["refId"], grafana_to_promql(target["expr"])))
    left = [e for _, _, e in exprs if re.search(r"\$\w+", e)]
    check("every dashboard query has its Grafana variables given values", [f"unreplaced: {e}" for e in left])
    rules = [{"record": f"dashboard:panel_{i}", "expr": e} for i, (_, _, e) in enumerate(exprs)]
    with open(os.path.join(out, "dashboard-rules.yaml"), "w") as f:
        yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}, f, sort_keys=False)
    with open(os.path.join(out, "dashboard-queries.json"), "w") as f:
        json.dump([{"panel": t, "ref": r, "expr": e} for t, r, e in exprs], f, indent=1)

    for kind in ("ServiceMonitor", "PrometheusRule"):
        objects = by_kind.get(kind, [])
        check(f"{kind} rendered: {len(objects)}", [] if len(objects) == (1 if expect_monitoring else 0) else [f"expected {int(expect_monitoring)}"])
        for obj in objects:
            with open(os.path.join(out, f"{kind}.json"), "w") as f:
                json.dump(obj, f)
            if kind == "PrometheusRule":
                with open(os.path.join(out, "rules.yaml"), "w") as f:
                    yaml.safe_dump(obj["spec"], f, sort_keys=False)
    print(f"rendered chart: {passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
