#!/usr/bin/env python3
"""Writes k8s/components/monitoring/prometheusrule.yaml from monitoring/prometheus/rules/*.yml, so
Kubernetes alerts on exactly what `just test-monitoring` tests (one source of truth).

Usage: python3 k8s/components/monitoring/render_prometheusrule.py [--check]
  --check   write nothing; exit 1 (and say so) when the committed file differs from a fresh render
"""

import glob
import os
import sys

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
RULES = os.path.join(ROOT, "monitoring", "prometheus", "rules")
OUT = os.path.join(HERE, "prometheusrule.yaml")

HEADER = """\
# GENERATED from monitoring/prometheus/rules/*.yml by `just monitoring-k8s-rules`
# (k8s/components/monitoring/render_prometheusrule.py). Do not edit: change the rule files, then
# regenerate. k8s/tests/check_manifests.py fails when this file and the rule files differ.
"""


def rule_groups():
    """Every group of every rule file, in file order."""
    groups = []
    for path in sorted(glob.glob(os.path.join(RULES, "*.yml"))):
        with open(path, encoding="utf-8") as f:
            groups += (yaml.safe_load(f) or {}).get("groups") or []
    return groups


class _Literal(str):
    pass


def _literal(dumper, data):
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style="|" if "\n" in data else None)


def render():
    yaml.add_representer(_Literal, _literal, Dumper=yaml.SafeDumper)

    def keep_blocks(node):
        if isinstance(node, dict):
            return {k: keep_blocks(v) for k, v in node.items()}
        if isinstance(node, list):
            return [keep_blocks(v) for v in node]
        return _Literal(node) if isinstance(node, str) and "\n" in node else node

    doc = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "longship", "labels": {"app.kubernetes.io/part-of": "longship"}},
        "spec": {"groups": keep_blocks(rule_groups())},
    }
    return HEADER + yaml.dump(doc, Dumper=yaml.SafeDumper, sort_keys=False, width=120, allow_unicode=True)


def main():
    text = render()
    if "--check" in sys.argv[1:]:
        try:
            with open(OUT, encoding="utf-8") as f:
                current = f.read()
        except OSError:
            current = None
        if current != text:
            print(f"{os.path.relpath(OUT, ROOT)} differs from monitoring/prometheus/rules: run `just monitoring-k8s-rules`")
            return 1
        return 0
    with open(OUT, "w", encoding="utf-8") as f:
        f.write(text)
    print(f"wrote {os.path.relpath(OUT, ROOT)} ({len(rule_groups())} groups)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
