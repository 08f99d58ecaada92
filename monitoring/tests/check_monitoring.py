#!/usr/bin/env python3
"""Offline checks of monitoring/ (the Grafana dashboards and the Prometheus alert rules), run by
`just test-monitoring` after `promtool check rules` and `promtool test rules`:

- every metric a dashboard query or an alert expression reads is one the services document in
  docs/operations.md's metrics table (so a renamed metric cannot silently blank a panel or mute
  an alert); `up`, which Prometheus itself writes for every target, is the only exception;
- every dashboard query is valid PromQL (promtool parses them as recording rules);
- every dashboard is well-formed: a unique uid and title, the `datasource` variable used by every
  panel, unique panel ids, panels inside the 24-column grid;
- every alert has a severity (page, warning, info), a summary, a description and a runbook, and
  promtool unit tests under monitoring/prometheus/tests/ that show it firing and staying silent;
  every rule file has a test file.

Each check also meets broken copies of its input first (a check that cannot fail fails the run).
Prints `N passed, M failed`; exits 1 on any failure. Needs PyYAML and promtool.
Usage: python3 monitoring/tests/check_monitoring.py
"""

import copy
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

try:
    import yaml
except ImportError:  # pragma: no cover
    sys.exit("error: PyYAML is needed (pip install pyyaml, or apt-get install python3-yaml)")

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
MONITORING = os.path.join(ROOT, "monitoring")
SEVERITIES = {"page", "warning", "info"}
# Series Prometheus writes itself for every scrape target (not exported by the services).
PROMETHEUS_OWN = {"up"}

PROMQL_WORDS = {
    # aggregations, keywords and functions (https://prometheus.io/docs/prometheus/latest/querying/)
    "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values", "bottomk",
    "topk", "quantile", "by", "without", "on", "ignoring", "group_left", "group_right", "and", "or",
    "unless", "offset", "bool", "abs", "absent", "absent_over_time", "ceil", "changes", "clamp",
    "clamp_max", "clamp_min", "day_of_month", "day_of_week", "day_of_year", "days_in_month", "delta",
    "deriv", "exp", "floor", "histogram_quantile", "holt_winters", "hour", "idelta", "increase",
    "irate", "label_join", "label_replace", "ln", "log2", "log10", "minute", "month",
    "predict_linear", "rate", "resets", "round", "scalar", "sgn", "sort", "sort_desc", "sqrt",
    "time", "timestamp", "vector", "year", "avg_over_time", "min_over_time", "max_over_time",
    "sum_over_time", "count_over_time", "quantile_over_time", "stddev_over_time",
    "stdvar_over_time", "last_over_time", "present_over_time", "inf", "nan", "le",
}


# --- inputs ---------------------------------------------------------------------------------------
class Inputs:
    def __init__(self):
        self.operations = read(os.path.join(ROOT, "docs", "operations.md")) or ""
        self.dashboards = {}
        for path in sorted(glob.glob(os.path.join(MONITORING, "grafana", "dashboards", "*.json"))):
            try:
                self.dashboards[rel(path)] = json.loads(read(path))
            except ValueError as exc:
                self.dashboards[rel(path)] = {"__error__": str(exc)}
        self.rules = {rel(p): load_yaml(p) for p in sorted(glob.glob(os.path.join(MONITORING, "prometheus", "rules", "*.yml")))}
        self.tests = {rel(p): load_yaml(p) for p in sorted(glob.glob(os.path.join(MONITORING, "prometheus", "tests", "*.yml")))}


def read(path):
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError:
        return None


def rel(path):
    return os.path.relpath(path, ROOT)


def load_yaml(path):
    try:
        return yaml.safe_load(read(path) or "") or {}
    except yaml.YAMLError as exc:
        return {"__error__": str(exc)}


def documented_metrics(operations_md):
    """Metric names in the first column of docs/operations.md's metrics table."""
    names, in_table = set(), False
    for line in operations_md.splitlines():
        if re.match(r"^\|\s*metric\s*\|", line):
            in_table = True
            continue
        if in_table:
            if not line.startswith("|"):
                break
            m = re.match(r"^\|\s*`([a-z_:][a-z0-9_:]*)`", line)
            if m:
                names.add(m.group(1))
    return names


def metric_names(expr):
    """The metric names a PromQL expression reads (a small tokenizer: strings, label matchers,
    durations and grouping clauses removed, then every identifier that is no PromQL word)."""
    e = re.sub(r'"(?:\\.|[^"\\])*"', '""', expr)
    e = re.sub(r"\{[^}]*\}", " ", e)
    e = re.sub(r"\[[^\]]*\]", " ", e)
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", e)
    e = re.sub(r"\$\{?\w+\}?", " ", e)
    names = set()
    for m in re.finditer(r"(?<![\w.:])([a-zA-Z_:][a-zA-Z0-9_:]*)(?![\w:])(?!\s*\()", e):
        word = m.group(1)
        if word.lower() not in PROMQL_WORDS and not re.fullmatch(r"\d+\w*", word):
            names.add(word)
    return names


def base_family(name, documented):
    """A histogram's _bucket/_sum/_count series belong to their documented family."""
    for suffix in ("_bucket", "_sum", "_count"):
        if name.endswith(suffix) and name[: -len(suffix)] in documented:
            return name[: -len(suffix)]
    return name


def dashboard_queries(board):
    """[(panel title, expr)] of every target of every panel (rows' nested panels too)."""
    out = []
    for panel in board.get("panels", []) or []:
        for p in [panel] + list(panel.get("panels", []) or []):
            for t in p.get("targets", []) or []:
                if t.get("expr"):
                    out.append((p.get("title", "?"), t["expr"]))
    return out


def alerts(rules_doc):
    for group in (rules_doc or {}).get("groups", []) or []:
        for rule in group.get("rules", []) or []:
            if "alert" in rule:
                yield rule


# --- checks -----------------------------------------------------------------------------------
def check_metric_names(inp):
    documented = documented_metrics(inp.operations)
    if not documented:
        return ["docs/operations.md has no metrics table (| metric | type | labels | from |)"]
    used = []
    for path, board in inp.dashboards.items():
        used += [(f"{path} panel {title!r}", expr) for title, expr in dashboard_queries(board)]
    for path, doc in inp.rules.items():
        for group in (doc or {}).get("groups", []) or []:
            for rule in group.get("rules", []) or []:
                used.append((f"{path} {rule.get('alert') or rule.get('record')}", str(rule.get("expr", ""))))
    probs = []
    for where, expr in used:
        for name in sorted(metric_names(expr)):
            if base_family(name, documented) not in documented | PROMETHEUS_OWN:
                probs.append(f"{where}: `{name}` is not in docs/operations.md's metrics table")
    if not used:
        probs.append("no dashboard query and no rule expression found")
    return probs


def check_dashboards(inp):
    if not inp.dashboards:
        return ["no dashboards under monitoring/grafana/dashboards/"]
    probs, uids, titles = [], {}, {}
    for path, board in inp.dashboards.items():
        if "__error__" in board:
            probs.append(f"{path}: not JSON: {board['__error__']}")
            continue
        for key, seen in (("uid", uids), ("title", titles)):
            value = board.get(key)
            if not value:
                probs.append(f"{path}: no {key}")
            elif value in seen:
                probs.append(f"{path}: {key} {value!r} also used by {seen[value]}")
            else:
                seen[value] = path
        variables = {v.get("name"): v for v in (board.get("templating") or {}).get("list", [])}
        if (variables.get("datasource") or {}).get("type") != "datasource":
            probs.append(f"{path}: no `datasource` variable of type datasource (panels must not name one instance's uid)")
        ids = set()
        for panel in board.get("panels", []) or []:
            pid, title = panel.get("id"), panel.get("title", "?")
            if pid in ids:
                probs.append(f"{path}: panel id {pid} used twice")
            ids.add(pid)
            pos = panel.get("gridPos") or {}
            if pos.get("x", 0) + pos.get("w", 0) > 24 or not pos.get("w") or not pos.get("h"):
                probs.append(f"{path}: panel {title!r} gridPos {pos} is outside the 24-column grid")
            if panel.get("type") == "row":
                continue
            if (panel.get("datasource") or {}).get("uid") != "${datasource}":
                probs.append(f"{path}: panel {title!r} does not use the ${{datasource}} variable")
            if not panel.get("targets"):
                probs.append(f"{path}: panel {title!r} has no query")
    return probs


def check_queries_parse(inp):
    """promtool parses every dashboard query (Grafana's variables replaced by plain values)."""
    if not shutil.which("promtool"):
        return ["promtool not found (apt-get install prometheus); `just test-monitoring` installs it"]
    rules = []
    for path, board in inp.dashboards.items():
        for i, (title, expr) in enumerate(dashboard_queries(board)):
            plain = re.sub(r"\$__rate_interval|\$__interval|\$__range", "5m", expr)
            plain = re.sub(r"\$\{?\w+\}?", ".*", plain)
            rules.append({"record": f"dashboard:{re.sub(r'[^a-zA-Z0-9_]', '_', os.path.basename(path))}:{i}", "expr": plain,
                          "labels": {"panel": title}})
    if not rules:
        return ["no dashboard queries to parse"]
    with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as f:
        yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}, f)
        tmp = f.name
    try:
        proc = subprocess.run(["promtool", "check", "rules", tmp], capture_output=True, text=True, check=False)
    finally:
        os.unlink(tmp)
    if proc.returncode != 0:
        return [f"promtool refuses a dashboard query: {line.strip()}" for line in (proc.stdout + proc.stderr).splitlines()
                if line.strip() and "Checking" not in line] or ["promtool check rules failed"]
    return []


def check_alert_metadata(inp):
    probs = []
    if not inp.rules:
        return ["no rule files under monitoring/prometheus/rules/"]
    for path, doc in inp.rules.items():
        if "__error__" in doc:
            probs.append(f"{path}: not YAML: {doc['__error__']}")
            continue
        for rule in alerts(doc):
            name = rule["alert"]
            severity = (rule.get("labels") or {}).get("severity")
            if severity not in SEVERITIES:
                probs.append(f"{path} {name}: severity {severity!r}, expected one of {sorted(SEVERITIES)}")
            annotations = rule.get("annotations") or {}
            for key in ("summary", "description", "runbook"):
                if not str(annotations.get(key, "")).strip():
                    probs.append(f"{path} {name}: no `{key}` annotation")
    return probs


def check_alert_tests(inp):
    """Every alert has a test case where it fires and one where it stays silent; every rule file
    is loaded by a test file."""
    probs, firing, silent, tested_files = [], set(), set(), set()
    for path, doc in inp.tests.items():
        base = os.path.dirname(os.path.join(ROOT, path))
        for f in (doc or {}).get("rule_files", []) or []:
            target = os.path.normpath(os.path.join(base, f))
            if not os.path.isfile(target):
                probs.append(f"{path}: rule file {f} does not exist")
            tested_files.add(rel(target))
        for test in (doc or {}).get("tests", []) or []:
            for case in test.get("alert_rule_test", []) or []:
                (firing if case.get("exp_alerts") else silent).add(case.get("alertname"))
    for path, doc in inp.rules.items():
        if path not in tested_files:
            probs.append(f"{path}: no test file under monitoring/prometheus/tests/ loads it")
        for rule in alerts(doc):
            name = rule["alert"]
            if name not in firing:
                probs.append(f"{name}: no promtool test shows it firing")
            if name not in silent:
                probs.append(f"{name}: no promtool test shows it silent (exp_alerts: [])")
    return probs


CHECKS = [
    ("dashboards and rules read only documented metrics", check_metric_names),
    ("dashboards are well-formed", check_dashboards),
    ("every dashboard query is valid PromQL", check_queries_parse),
    ("every alert has a severity, summary, description and runbook", check_alert_metadata),
    ("every alert is unit-tested firing and silent", check_alert_tests),
]


def broken_variants(inp):
    def variant(mutate):
        b = copy.copy(inp)
        b.dashboards, b.rules, b.tests = copy.deepcopy(inp.dashboards), copy.deepcopy(inp.rules), copy.deepcopy(inp.tests)
        mutate(b)
        return b

    first_board = next(iter(inp.dashboards), None)
    first_rules = next(iter(inp.rules), None)

    def rename_metric(b):
        panel = next(p for p in b.dashboards[first_board]["panels"] if p.get("targets"))
        panel["targets"][0]["expr"] = "rate(http_server_requests_totl[5m])"

    def rename_in_rule(b):
        next(alerts(b.rules[first_rules]))["expr"] = "sum(rate(saga_finishd_total[5m])) > 0"

    def bad_promql(b):
        panel = next(p for p in b.dashboards[first_board]["panels"] if p.get("targets"))
        panel["targets"][0]["expr"] = "sum(rate(http_server_requests_total[5m])"

    def hardcoded_datasource(b):
        panel = next(p for p in b.dashboards[first_board]["panels"] if p.get("targets"))
        panel["datasource"] = {"type": "prometheus", "uid": "P1809F7CD0C75ACF3"}

    def no_runbook(b):
        next(alerts(b.rules[first_rules]))["annotations"].pop("runbook", None)

    def untested(b):
        for doc in b.tests.values():
            for test in doc.get("tests", []) or []:
                test["alert_rule_test"] = [c for c in test.get("alert_rule_test", []) or [] if c.get("exp_alerts")]

    return [
        ("a dashboard reading a metric nobody exports", variant(rename_metric), check_metric_names),
        ("an alert on a misspelt metric", variant(rename_in_rule), check_metric_names),
        ("a dashboard query that is not PromQL", variant(bad_promql), check_queries_parse),
        ("a panel bound to one Grafana's datasource uid", variant(hardcoded_datasource), check_dashboards),
        ("an alert without a runbook", variant(no_runbook), check_alert_metadata),
        ("alerts tested only firing", variant(untested), check_alert_tests),
    ]


def main():
    inp = Inputs()
    passed = failed = 0
    for name, check in CHECKS:
        probs = check(inp)
        if probs:
            failed += 1
            print(f"FAIL  {name}")
            for p in probs:
                print(f"      - {p}")
        else:
            passed += 1
            print(f"ok    {name}")
    if inp.dashboards and inp.rules:
        for name, variant, check in broken_variants(inp):
            if check(variant):
                passed += 1
                print(f"ok    self-check: {name} is caught")
            else:
                failed += 1
                print(f"FAIL  self-check: {name} is NOT caught")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
