"""Checks of k8s/components/monitoring for check_manifests.py. The PodMonitor and PrometheusRule
are Prometheus Operator CRDs, whose schemas live in the cluster, not in kubernetes-validate: their
shape is checked here (known fields only, the types the operator expects), together with what
ties them to the rest: the PodMonitor selects every service's pods on a port they have, the rules
are exactly monitoring/prometheus/rules, and the NetworkPolicies let the `monitoring` namespace in.

Each check takes rendered objects and returns a list of problems (empty = pass).
"""

from __future__ import annotations

import copy
import glob
from pathlib import Path
from typing import Any

import yaml

Obj = dict[str, Any]

ROOT = Path(__file__).resolve().parents[2]
RULES_DIR = ROOT / "monitoring" / "prometheus" / "rules"
API = "monitoring.coreos.com/v1"
MONITORING_NAMESPACE = "monitoring"

# The fields this component uses, with the types the operator's CRDs give them. Anything else
# is a typo the API server would reject (or, worse, silently drop).
PODMONITOR_SPEC = {"jobLabel": str, "selector": dict, "podMetricsEndpoints": list, "namespaceSelector": dict,
                   "podTargetLabels": list, "sampleLimit": int}
ENDPOINT = {"port": str, "path": str, "interval": str, "scrapeTimeout": str, "scheme": str,
            "relabelings": list, "metricRelabelings": list, "honorLabels": bool}
RELABELING = {"sourceLabels": list, "targetLabel": str, "regex": str, "replacement": str, "action": str,
              "separator": str, "modulus": int}
RULE = {"alert": str, "record": str, "expr": str, "for": str, "labels": dict, "annotations": dict,
        "keep_firing_for": str}


def of_kind(objects: list[Obj], kind: str) -> list[Obj]:
    return [o for o in objects if o.get("kind") == kind]


def pod_labels(workload: Obj) -> dict[str, str]:
    return ((workload.get("spec", {}).get("template") or {}).get("metadata") or {}).get("labels") or {}


def selector_matches(selector: Obj | None, labels: dict[str, str]) -> bool:
    if selector is None:
        return False
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        if (op == "In" and labels.get(key) not in values) or (op == "NotIn" and labels.get(key) in values) \
                or (op == "Exists" and key not in labels) or (op == "DoesNotExist" and key in labels):
            return False
    return True


def shape(obj: Any, fields: dict[str, type], where: str) -> list[str]:
    if not isinstance(obj, dict):
        return [f"{where}: expected a mapping, got {type(obj).__name__}"]
    problems = []
    for key, value in obj.items():
        if key not in fields:
            problems.append(f"{where}: unknown field {key!r} (known: {', '.join(sorted(fields))})")
        elif not isinstance(value, fields[key]):
            problems.append(f"{where}.{key}: expected {fields[key].__name__}, got {type(value).__name__}")
    return problems


def servers(objects: list[Obj]) -> list[Obj]:
    return [d for d in of_kind(objects, "Deployment") if pod_labels(d).get("app.kubernetes.io/component") == "server"]


def container_ports(dep: Obj) -> dict[str, int]:
    spec = dep.get("spec", {}).get("template", {}).get("spec", {})
    return {p.get("name"): p.get("containerPort") for c in spec.get("containers", []) or [] for p in c.get("ports", []) or []}


def check_podmonitor(objects: list[Obj]) -> list[str]:
    """One PodMonitor that scrapes every server pod's /metrics on a port it has, with job = the
    service and platform = longship."""
    monitors = of_kind(objects, "PodMonitor")
    if len(monitors) != 1:
        return [f"expected one PodMonitor, rendered {len(monitors)}"]
    pm = monitors[0]
    problems = [] if pm.get("apiVersion") == API else [f"PodMonitor apiVersion {pm.get('apiVersion')!r}, expected {API}"]
    spec = pm.get("spec") or {}
    problems += shape(spec, PODMONITOR_SPEC, "PodMonitor.spec")
    endpoints = spec.get("podMetricsEndpoints") or []
    if not endpoints:
        problems.append("PodMonitor has no podMetricsEndpoints")
    for i, ep in enumerate(endpoints):
        problems += shape(ep, ENDPOINT, f"PodMonitor.spec.podMetricsEndpoints[{i}]")
        for j, r in enumerate(ep.get("relabelings") or []):
            problems += shape(r, RELABELING, f"PodMonitor.spec.podMetricsEndpoints[{i}].relabelings[{j}]")
        if ep.get("path", "/metrics") != "/metrics":
            problems.append(f"PodMonitor endpoint path {ep.get('path')!r}: the services serve /metrics")
        platform = [r for r in ep.get("relabelings") or [] if r.get("targetLabel") == "platform"]
        if not any("__meta_kubernetes_pod_label_app_kubernetes_io_part_of" in (r.get("sourceLabels") or []) for r in platform):
            problems.append("PodMonitor endpoint does not set platform from the pods' app.kubernetes.io/part-of "
                            "(LongshipServiceDown selects up{platform=\"longship\"})")
    deployments = servers(objects)
    if not deployments:
        problems.append("no server Deployments rendered")
    for dep in deployments:
        name = dep["metadata"]["name"]
        if dep.get("metadata", {}).get("namespace") != pm.get("metadata", {}).get("namespace") and not spec.get("namespaceSelector"):
            problems.append(f"PodMonitor is in another namespace than {name} and has no namespaceSelector")
        labels = pod_labels(dep)
        if not selector_matches(spec.get("selector"), labels):
            problems.append(f"PodMonitor does not select {name}'s pods ({labels})")
            continue
        for ep in endpoints:
            if ep.get("port") not in container_ports(dep):
                problems.append(f"PodMonitor port {ep.get('port')!r} is not a named port of {name} ({sorted(container_ports(dep))})")
        job_label = spec.get("jobLabel")
        if labels.get(job_label or "") != name:
            problems.append(f"PodMonitor jobLabel {job_label!r} gives {name}'s pods job={labels.get(job_label or '')!r}, "
                            f"the dashboards and rules expect job={name!r}")
    return problems


def rule_groups() -> list[Obj]:
    groups: list[Obj] = []
    for path in sorted(glob.glob(str(RULES_DIR / "*.yml"))):
        with open(path, encoding="utf-8") as f:
            groups += (yaml.safe_load(f) or {}).get("groups") or []
    return groups


def check_prometheusrule(objects: list[Obj], groups: list[Obj] | None = None) -> list[str]:
    """One PrometheusRule whose groups are exactly those of monitoring/prometheus/rules."""
    rules = of_kind(objects, "PrometheusRule")
    if len(rules) != 1:
        return [f"expected one PrometheusRule, rendered {len(rules)}"]
    pr = rules[0]
    problems = [] if pr.get("apiVersion") == API else [f"PrometheusRule apiVersion {pr.get('apiVersion')!r}, expected {API}"]
    spec = pr.get("spec") or {}
    problems += shape(spec, {"groups": list}, "PrometheusRule.spec")
    for gi, group in enumerate(spec.get("groups") or []):
        problems += shape(group, {"name": str, "rules": list, "interval": str}, f"PrometheusRule.spec.groups[{gi}]")
        for ri, rule in enumerate(group.get("rules") or []):
            where = f"PrometheusRule {group.get('name')}[{ri}]"
            problems += shape(rule, RULE, where)
            if ("alert" in rule) == ("record" in rule) or not rule.get("expr"):
                problems.append(f"{where}: a rule has exactly one of alert/record, and an expr")
    expected = rule_groups() if groups is None else groups
    if spec.get("groups") != expected:
        problems.append("the PrometheusRule's groups differ from monitoring/prometheus/rules/*.yml: "
                        "run `just monitoring-k8s-rules` and commit k8s/components/monitoring/prometheusrule.yaml")
    return problems


def check_scrape_allowed(objects: list[Obj]) -> list[str]:
    """Some NetworkPolicy admits the `monitoring` namespace to every server pod's scraped port."""
    problems = []
    monitors = of_kind(objects, "PodMonitor")
    ports = [ep.get("port") for pm in monitors for ep in (pm.get("spec") or {}).get("podMetricsEndpoints") or []]
    for dep in servers(objects):
        named = container_ports(dep)
        for port in ports:
            number = named.get(port)
            admitted = False
            for np in of_kind(objects, "NetworkPolicy"):
                if not selector_matches(np["spec"].get("podSelector"), pod_labels(dep)):
                    continue
                for rule in np["spec"].get("ingress") or []:
                    rule_ports = [p.get("port") for p in rule.get("ports") or []]
                    port_ok = not rule_ports or number in rule_ports or port in rule_ports
                    # A rule without `from` admits every source, the monitoring namespace too.
                    from_monitoring = not rule.get("from") or any(
                        "namespaceSelector" in peer and selector_matches(
                            peer["namespaceSelector"], {"kubernetes.io/metadata.name": MONITORING_NAMESPACE})
                        and "podSelector" not in peer
                        for peer in rule.get("from") or [])
                    admitted |= port_ok and from_monitoring
            if not admitted:
                problems.append(f"no NetworkPolicy admits the {MONITORING_NAMESPACE} namespace to {dep['metadata']['name']}:{port}")
    return problems


def self_checks(objects: list[Obj]) -> list[tuple[str, list[str]]]:
    """(what was broken, what the check said) for broken copies of the render: each must be noticed."""
    def broken(kind: str, mutate) -> list[Obj]:
        objs = copy.deepcopy(objects)
        mutate(next(o for o in objs if o.get("kind") == kind))
        return objs

    def drop_monitoring_ingress(objs: list[Obj]) -> list[Obj]:
        # only pods of the namespace may reach the servers: Prometheus in `monitoring` may not
        for np in of_kind(objs, "NetworkPolicy"):
            for rule in np["spec"].get("ingress") or []:
                rule["from"] = [p for p in rule.get("from") or [] if "namespaceSelector" not in p] or [{"podSelector": {}}]
        return objs

    first_rule = lambda pr: pr["spec"]["groups"][0]["rules"][0]  # noqa: E731
    return [
        ("PodMonitor selecting other pods", check_podmonitor(broken(
            "PodMonitor", lambda pm: pm["spec"]["selector"]["matchLabels"].update({"app.kubernetes.io/component": "worker"})))),
        ("PodMonitor on a port the pods lack", check_podmonitor(broken(
            "PodMonitor", lambda pm: pm["spec"]["podMetricsEndpoints"][0].update(port="metrics")))),
        ("PodMonitor with a misspelt field", check_podmonitor(broken(
            "PodMonitor", lambda pm: pm["spec"].update(podMetricEndpoints=pm["spec"]["podMetricsEndpoints"])))),
        ("PodMonitor without the platform label", check_podmonitor(broken(
            "PodMonitor", lambda pm: pm["spec"]["podMetricsEndpoints"][0].pop("relabelings", None)))),
        ("PrometheusRule out of step with the rule files", check_prometheusrule(broken(
            "PrometheusRule", lambda pr: first_rule(pr).update(expr="vector(1)")))),
        ("PrometheusRule with a misspelt field", check_prometheusrule(broken(
            "PrometheusRule", lambda pr: first_rule(pr).update(annotation={})))),
        ("NetworkPolicies closed to the monitoring namespace", check_scrape_allowed(drop_monitoring_ingress(copy.deepcopy(objects)))),
    ]


def run(report: Any, objects: list[Obj]) -> None:
    """Records every check and self-check of the component in check_manifests' report."""
    report.record("dev+monitoring podmonitor", check_podmonitor(objects))
    report.record("dev+monitoring prometheusrule", check_prometheusrule(objects))
    report.record("dev+monitoring scrape allowed", check_scrape_allowed(objects))
    for what, problems in self_checks(objects):
        report.record(f"self-check {what}", [] if problems else [f"the check did not notice: {what}"])

