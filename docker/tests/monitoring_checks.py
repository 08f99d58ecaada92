"""Checks of the monitoring part of docker/compose.yaml for check_docker.py: Prometheus scrapes
every service crate's container and loads monitoring/'s alert rules; Grafana is provisioned with
a Prometheus data source and monitoring/'s dashboards. Offline: files and mounts are resolved on
disk, nothing is started.

Every check takes the Inputs of check_docker.py and returns a list of problems (empty = pass).
"""

import fnmatch
import os
import re

import yaml

RULES_DIR = os.path.join("monitoring", "prometheus", "rules")
DASHBOARDS_DIR = os.path.join("monitoring", "grafana", "dashboards")


def mounts(svc, docker_dir):
    """{container path: absolute host path} of a service's bind mounts (relative to docker/)."""
    out = {}
    for v in svc.get("volumes") or []:
        if isinstance(v, dict):
            src, dst = v.get("source", ""), v.get("target", "")
        else:
            parts = str(v).split(":")
            if len(parts) < 2:
                continue
            src, dst = parts[0], parts[1]
        if src.startswith((".", "/")):
            out[dst.rstrip("/")] = os.path.normpath(os.path.join(docker_dir, src))
    return out


def host_path(container_path, mounted):
    """The host file behind a container path, through the longest mount that contains it."""
    best = None
    for dst, src in mounted.items():
        if container_path == dst or container_path.startswith(dst + "/"):
            if best is None or len(dst) > len(best[0]):
                best = (dst, src)
    if best is None:
        return None
    return os.path.join(best[1], os.path.relpath(container_path, best[0])) if container_path != best[0] else best[1]


def load(path):
    try:
        with open(path, encoding="utf-8") as f:
            return yaml.safe_load(f) or {}
    except (OSError, yaml.YAMLError):
        return None


def http_port(inp, crate):
    svc = inp.services().get(crate) or {}
    env = svc.get("environment") or {}
    if isinstance(env, list):
        env = dict(e.split("=", 1) for e in env if "=" in e)
    m = re.search(r":(\d+)$", str(env.get("HTTP_ADDR", "")))
    return int(m.group(1)) if m else None


def prometheus_config(inp):
    """(config dict or None, its host path or None, the prometheus service's mounts, problems)."""
    prom = inp.services().get("prometheus")
    if prom is None:
        return None, None, {}, ["compose has no `prometheus` service"]
    mounted = mounts(prom, inp.docker)
    cmd = prom.get("command") or []
    cmd = cmd.split() if isinstance(cmd, str) else cmd
    flag = next((c.split("=", 1)[1] for c in cmd if str(c).startswith("--config.file=")), "/etc/prometheus/prometheus.yml")
    path = host_path(flag, mounted)
    if path is None or not os.path.isfile(path):
        return None, path, mounted, [f"prometheus: its config {flag} is not a mounted file of the repository"]
    cfg = load(path)
    if cfg is None:
        return None, path, mounted, [f"{os.path.relpath(path, inp.root)} does not parse"]
    return cfg, path, mounted, []


def check_prometheus(inp):
    """Prometheus scrapes every service crate (job = the crate) and loads monitoring/'s rules."""
    cfg, _, mounted, probs = prometheus_config(inp)
    if cfg is None:
        return probs
    rules_host = os.path.join(inp.root, RULES_DIR)
    rule_globs = cfg.get("rule_files") or []
    loaded = False
    for pattern in rule_globs:
        host = host_path(os.path.dirname(pattern), mounted)
        if host and os.path.normpath(host) == os.path.normpath(rules_host):
            loaded = any(fnmatch.fnmatch(f, os.path.basename(pattern)) for f in os.listdir(rules_host))
    if not loaded:
        probs.append(f"prometheus does not load the rule files of {RULES_DIR} (rule_files {rule_globs}, mounts {sorted(mounted)})")
    targets = {}
    for job in cfg.get("scrape_configs") or []:
        sets_job = any(r.get("target_label") == "job" and r.get("source_labels") == ["service"]
                       for r in job.get("relabel_configs") or [])
        for group in job.get("static_configs") or []:
            labels = group.get("labels") or {}
            for target in group.get("targets") or []:
                job_name = labels.get("service") if sets_job else job.get("job_name")
                targets[target] = (job_name, labels.get("platform"), job.get("metrics_path", "/metrics"))
    for crate in inp.crates:
        want = f"{crate}:{http_port(inp, crate)}"
        got = targets.get(want)
        if got is None:
            probs.append(f"prometheus does not scrape {want} (the {crate} container's HTTP port)")
        elif got != (crate, "longship", "/metrics"):
            probs.append(f"prometheus scrapes {want} as job={got[0]!r}, platform={got[1]!r}, path {got[2]}; "
                         f"the rules and dashboards expect job={crate!r}, platform='longship', /metrics")
    return probs


def check_grafana(inp):
    """Grafana: a Prometheus data source pointing at the prometheus service, and a dashboard
    provider whose path is where monitoring/'s dashboards are mounted."""
    graf = inp.services().get("grafana")
    if graf is None:
        return ["compose has no `grafana` service"]
    mounted = mounts(graf, inp.docker)
    probs = []
    prov = host_path("/etc/grafana/provisioning", mounted)
    if not prov or not os.path.isdir(prov):
        return ["grafana: /etc/grafana/provisioning is not a mounted folder of the repository"]
    sources = []
    for f in sorted(os.listdir(os.path.join(prov, "datasources"))) if os.path.isdir(os.path.join(prov, "datasources")) else []:
        sources += (load(os.path.join(prov, "datasources", f)) or {}).get("datasources") or []
    prom = [s for s in sources if s.get("type") == "prometheus"]
    if not prom:
        probs.append("grafana: no provisioned data source of type prometheus")
    for s in prom:
        host = re.sub(r"^\w+://", "", str(s.get("url", ""))).split(":")[0]
        if host not in inp.services():
            probs.append(f"grafana data source {s.get('name')} points at {s.get('url')}, not a compose service")
    dash_host = os.path.normpath(os.path.join(inp.root, DASHBOARDS_DIR))
    providers = []
    for f in sorted(os.listdir(os.path.join(prov, "dashboards"))) if os.path.isdir(os.path.join(prov, "dashboards")) else []:
        providers += (load(os.path.join(prov, "dashboards", f)) or {}).get("providers") or []
    paths = [host_path(str((p.get("options") or {}).get("path", "")).rstrip("/"), mounted) for p in providers]
    if not any(p and os.path.normpath(p) == dash_host for p in paths):
        probs.append(f"grafana: no dashboard provider reads {DASHBOARDS_DIR} (providers read {paths})")
    env = graf.get("environment") or {}
    home = env.get("GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH") if isinstance(env, dict) else None
    if home and not os.path.isfile(host_path(home, mounted) or ""):
        probs.append(f"grafana: the home dashboard {home} is not a mounted file")
    return probs


def check_monitoring_exposure(inp):
    """Both in the apps profile (they scrape the service containers) and published on 127.0.0.1 only."""
    probs = []
    for name in ("prometheus", "grafana"):
        svc = inp.services().get(name) or {}
        if "apps" not in (svc.get("profiles") or []):
            probs.append(f"{name} should be in the `apps` profile: it watches the service containers")
        for p in svc.get("ports") or []:
            if not str(p).startswith("127.0.0.1:"):
                probs.append(f"{name}: publish ports on 127.0.0.1 only, got {p!r}")
    return probs
