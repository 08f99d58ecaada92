#!/usr/bin/env python3
"""Offline checks for the Kubernetes manifests in k8s/.

Renders the overlays with `kubectl kustomize` (a local render: this script runs no other kubectl
command and never talks to a cluster), then checks what a reviewer would check by hand: probes on
the contract endpoints and ports, resources, the non-root read-only security context, that every
Deployment has its HPA, PDB and Service, that every referenced ConfigMap/Secret exists (or is one of
prod's documented external Secrets), that NetworkPolicies select real pods and keep inventory's and
payment's gRPC ports to order alone, and the dev/prod tenant-header rule. Every rendered object is
also schema-validated offline with the `kubernetes_validate` package (strict: unknown fields fail).

The check functions are pure (dicts in, a list of problems out). A set of negative self-checks feeds
deliberately broken objects into them first, so a check that can no longer fail is itself a failure.

Usage:  pip install -r k8s/tests/requirements.txt && python3 k8s/tests/check_manifests.py [-v]
(-v also prints what each negative self-check caught.)
Exit status 0 and a closing "N passed, 0 failed" line when everything holds.
"""

from __future__ import annotations

import copy
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

try:
    import yaml
    import kubernetes_validate
    from kubernetes_validate.utils import SchemaNotFoundError
    from packaging.version import Version  # a dependency of kubernetes-validate
except ImportError as exc:  # pragma: no cover - environment problem, not a check
    sys.exit(f"missing Python dependency ({exc.name}): pip install -r k8s/tests/requirements.txt")

import monitoring_component  # noqa: E402 (k8s/tests/monitoring_component.py: the CRDs' own checks)
import ha_components  # noqa: E402 (k8s/tests/ha_components.py: the NATS cluster and CloudNativePG)

Obj = dict[str, Any]

K8S_DIR = Path(__file__).resolve().parents[1]

# The contract (docs ARCHITECTURE.md section 3): service -> its ports.
SERVICES: dict[str, dict[str, int]] = {
    "order": {"http": 8080, "grpc": 50051},
    "inventory": {"http": 8081, "grpc": 50052},
    "payment": {"http": 8082, "grpc": 50053},
    # new-service:check-services -- `just new-service NAME` adds NAME above this line
}
# Only this service may call the others' gRPC ports (the saga orchestrator).
GRPC_CLIENT = "order"
GRPC_SERVERS_CALLED = ("inventory", "payment")

# Prod Secrets that the operator creates before the first apply; never rendered. Documented in
# k8s/README.md ("Production"); keep the two lists in step. Value: the keys the manifests may read.
EXTERNAL_SECRETS: dict[str, set[str]] = {
    "order-db": {"DATABASE_URL"},
    "inventory-db": {"DATABASE_URL"},
    "payment-db": {"DATABASE_URL"},
    # new-service:check-external-secrets -- `just new-service NAME` adds NAME-db above this line
    "longship-nats": {"NATS_URL"},
    "longship-auth": {"AUTH_JWT_SECRET", "AUTH_JWT_PUBLIC_KEY"},
    "order-tls": {"tls.crt", "tls.key"},  # Ingress TLS, e.g. issued by cert-manager
}

# Schemas: the oldest Kubernetes we support (1.30: the preStop `sleep` action is on by default from
# there) and the newest the installed kubernetes-validate bundles.
MIN_KUBERNETES = "1.30.0"

# API groups whose kinds have schemas in kubernetes-validate. Anything else is a CRD (e.g. a
# ServiceMonitor): reported as skipped, since its schema lives in the cluster, not in this package.
BUILTIN_GROUPS = {
    "", "apps", "batch", "autoscaling", "policy", "networking.k8s.io", "rbac.authorization.k8s.io",
    "storage.k8s.io", "scheduling.k8s.io", "coordination.k8s.io", "discovery.k8s.io",
    "admissionregistration.k8s.io", "apiextensions.k8s.io", "node.k8s.io", "certificates.k8s.io",
}

INTERNAL_PATHS = ("/metrics", "/healthz", "/readyz")


# --------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------

def kustomize_command() -> list[str]:
    """Returns the local render command: kubectl's built-in kustomize, else a standalone kustomize."""
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize"]
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    sys.exit(
        "kubectl not found: install kubectl >= 1.27 (Debian/Ubuntu: the `kubectl` package from the "
        "Kubernetes apt repository) or a standalone kustomize >= 5; only its offline `kustomize` "
        "render is used."
    )


def render(path: Path) -> list[Obj]:
    """Renders one kustomization directory into a list of objects."""
    proc = subprocess.run(
        [*kustomize_command(), str(path)], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise RenderError(f"render of {path} failed:\n{proc.stderr.strip()}")
    return [doc for doc in yaml.safe_load_all(proc.stdout) if doc]


def render_with_component(overlay: Path, component: Path, ns: str) -> list[Obj]:
    """Renders an overlay plus an optional component, through a throw-away kustomization (as if
    the overlay listed the component; `ns` stands in for the overlay's `namespace:`)."""
    with tempfile.TemporaryDirectory() as tmp:
        # kustomize takes only relative paths for bases and components.
        rel = lambda p: os.path.relpath(p, tmp)  # noqa: E731
        Path(tmp, "kustomization.yaml").write_text(
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
            f"namespace: {ns}\nresources:\n  - {rel(overlay)}\ncomponents:\n  - {rel(component)}\n"
        )
        return render(Path(tmp))


class RenderError(Exception):
    pass


# --------------------------------------------------------------------------------------------
# Small helpers over rendered objects
# --------------------------------------------------------------------------------------------

def ident(obj: Obj) -> str:
    meta = obj.get("metadata", {})
    ns = meta.get("namespace")
    return f"{obj.get('kind')}/{meta.get('name')}" + (f" (ns {ns})" if ns else "")


def namespace(obj: Obj) -> str:
    return obj.get("metadata", {}).get("namespace", "default")


def of_kind(objects: Iterable[Obj], kind: str) -> list[Obj]:
    return [o for o in objects if o.get("kind") == kind]


def pod_template(workload: Obj) -> Obj:
    return workload.get("spec", {}).get("template", {})


def pod_labels(workload: Obj) -> dict[str, str]:
    return pod_template(workload).get("metadata", {}).get("labels", {}) or {}


def all_containers(pod_spec: Obj) -> list[Obj]:
    return list(pod_spec.get("initContainers", []) or []) + list(pod_spec.get("containers", []) or [])


def selector_matches(selector: Obj | None, labels: dict[str, str]) -> bool:
    """Evaluates a LabelSelector (matchLabels + matchExpressions) against labels. An empty
    selector matches everything; None (absent) matches nothing."""
    if selector is None:
        return False
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def service_name(workload: Obj) -> str | None:
    return pod_labels(workload).get("app.kubernetes.io/name")


def resolve_port(port: int | str, container: Obj) -> int | None:
    """Resolves a probe/Service port (name or number) against one container's ports."""
    for p in container.get("ports", []) or []:
        if isinstance(port, int) and p.get("containerPort") == port:
            return port
        if isinstance(port, str) and p.get("name") == port:
            return p.get("containerPort")
    return None


def resolve_port_in_pod(port: int | str, pod_spec: Obj) -> int | None:
    for c in pod_spec.get("containers", []) or []:
        found = resolve_port(port, c)
        if found is not None:
            return found
    return None


def config_data(objects: list[Obj], kind: str, name: str, ns: str) -> dict[str, str] | None:
    for o in of_kind(objects, kind):
        if o["metadata"]["name"] == name and namespace(o) == ns:
            return {**(o.get("data") or {}), **(o.get("stringData") or {})}
    return None


def effective_env(container: Obj, objects: list[Obj], ns: str) -> dict[str, str]:
    """The environment a container starts with, as far as the render tells: envFrom in order
    (later sources win), then `env` (wins over envFrom). Secret values stay symbolic."""
    env: dict[str, str] = {}
    for src in container.get("envFrom", []) or []:
        prefix = src.get("prefix", "")
        if "configMapRef" in src:
            data = config_data(objects, "ConfigMap", src["configMapRef"]["name"], ns) or {}
        else:
            data = {k: "<secret>" for k in (config_data(objects, "Secret", src["secretRef"]["name"], ns) or {})}
        env.update({prefix + k: str(v) for k, v in data.items()})
    for item in container.get("env", []) or []:
        if "value" in item:
            env[item["name"]] = str(item["value"])
        elif "configMapKeyRef" in (item.get("valueFrom") or {}):
            ref = item["valueFrom"]["configMapKeyRef"]
            data = config_data(objects, "ConfigMap", ref["name"], ns) or {}
            if ref["key"] in data:
                env[item["name"]] = str(data[ref["key"]])
        else:
            env[item["name"]] = "<from " + ",".join(item.get("valueFrom", {})) + ">"
    return env


_QUANTITY = re.compile(r"^([0-9.]+)([a-zA-Z]*)$")
_SUFFIX = {"": 1, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12,
           "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}


def quantity(value: Any) -> float:
    match = _QUANTITY.match(str(value))
    if not match or match.group(2) not in _SUFFIX:
        raise ValueError(f"unparsable quantity {value!r}")
    return float(match.group(1)) * _SUFFIX[match.group(2)]


def int_or_percent(value: Any, total: int, round_up: bool) -> int:
    if isinstance(value, str) and value.endswith("%"):
        exact = total * int(value[:-1]) / 100
        return -int(-exact // 1) if round_up else int(exact)
    return int(value)


# --------------------------------------------------------------------------------------------
# Checks: each returns a list of problems (empty = pass)
# --------------------------------------------------------------------------------------------

def check_probes_and_ports(dep: Obj) -> list[str]:
    """Probes on the contract endpoints (/readyz, /healthz) and on the service's HTTP port;
    container ports named http/grpc with the contract's numbers; HTTP_ADDR/GRPC_ADDR agree."""
    problems: list[str] = []
    name = service_name(dep)
    spec = pod_template(dep).get("spec", {})
    containers = spec.get("containers", []) or []
    if not containers:
        return [f"{ident(dep)}: no containers"]
    main = containers[0]
    contract = SERVICES.get(name or "")
    if contract is None:
        problems.append(f"{ident(dep)}: app.kubernetes.io/name={name!r} is not a service of the contract {sorted(SERVICES)}")
    ports = {p.get("name"): p.get("containerPort") for p in main.get("ports", []) or []}
    for port_name in ("http", "grpc"):
        if port_name not in ports:
            problems.append(f"{ident(dep)}: container {main.get('name')} has no port named {port_name!r}")
        elif contract and ports[port_name] != contract[port_name]:
            problems.append(f"{ident(dep)}: port {port_name} is {ports[port_name]}, contract says {contract[port_name]}")
    env = {e["name"]: str(e.get("value")) for e in main.get("env", []) or [] if "value" in e}
    for var, port_name in (("HTTP_ADDR", "http"), ("GRPC_ADDR", "grpc")):
        if var in env and ports.get(port_name) is not None and not env[var].endswith(f":{ports[port_name]}"):
            problems.append(f"{ident(dep)}: {var}={env[var]} does not listen on the {port_name} port {ports[port_name]}")
    expected = {"readinessProbe": {"/readyz"}, "livenessProbe": {"/healthz"}, "startupProbe": {"/healthz", "/readyz"}}
    for probe_name, paths in expected.items():
        probe = main.get(probe_name)
        if not probe:
            problems.append(f"{ident(dep)}: container {main.get('name')} has no {probe_name}")
            continue
        http_get = probe.get("httpGet")
        if not http_get:
            problems.append(f"{ident(dep)}: {probe_name} is not an httpGet probe (the contract is HTTP {sorted(paths)})")
            continue
        if http_get.get("path") not in paths:
            problems.append(f"{ident(dep)}: {probe_name} path {http_get.get('path')!r}, expected one of {sorted(paths)}")
        resolved = resolve_port(http_get.get("port"), main)
        if resolved is None:
            problems.append(f"{ident(dep)}: {probe_name} port {http_get.get('port')!r} is not a port of the container")
        elif resolved != ports.get("http"):
            problems.append(f"{ident(dep)}: {probe_name} targets port {resolved}, not the HTTP port {ports.get('http')}")
    return problems


def check_resources(workload: Obj) -> list[str]:
    """CPU and memory requests and limits on every container (init containers too), request <= limit."""
    problems: list[str] = []
    for c in all_containers(pod_template(workload).get("spec", {})):
        res = c.get("resources") or {}
        for kind in ("requests", "limits"):
            for resource in ("cpu", "memory"):
                if resource not in (res.get(kind) or {}):
                    problems.append(f"{ident(workload)}: container {c.get('name')} has no {kind}.{resource}")
        for resource in ("cpu", "memory"):
            req, lim = (res.get("requests") or {}).get(resource), (res.get("limits") or {}).get(resource)
            if req is not None and lim is not None and quantity(req) > quantity(lim):
                problems.append(f"{ident(workload)}: container {c.get('name')} {resource} request {req} above limit {lim}")
    return problems


def check_security(workload: Obj) -> list[str]:
    """Non-root, read-only root filesystem, ALL capabilities dropped, no privilege escalation,
    seccomp RuntimeDefault, no service account token."""
    problems: list[str] = []
    spec = pod_template(workload).get("spec", {})
    pod_sc = spec.get("securityContext") or {}
    if spec.get("automountServiceAccountToken") is not False:
        problems.append(f"{ident(workload)}: automountServiceAccountToken is not false")
    for c in all_containers(spec):
        sc = c.get("securityContext") or {}
        where = f"{ident(workload)}: container {c.get('name')}"
        if not sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")):
            problems.append(f"{where}: runAsNonRoot is not true")
        if sc.get("runAsUser", pod_sc.get("runAsUser")) == 0:
            problems.append(f"{where}: runs as uid 0")
        if sc.get("readOnlyRootFilesystem") is not True:
            problems.append(f"{where}: readOnlyRootFilesystem is not true")
        if sc.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{where}: allowPrivilegeEscalation is not false")
        if sc.get("privileged"):
            problems.append(f"{where}: privileged")
        if "ALL" not in ((sc.get("capabilities") or {}).get("drop") or []):
            problems.append(f"{where}: capabilities.drop does not contain ALL")
        if (sc.get("capabilities") or {}).get("add"):
            problems.append(f"{where}: adds capabilities {sc['capabilities']['add']}")
        seccomp = (sc.get("seccompProfile") or pod_sc.get("seccompProfile") or {}).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            problems.append(f"{where}: seccompProfile is {seccomp!r}, not RuntimeDefault")
    return problems


def check_graceful_shutdown(dep: Obj, objects: list[Obj]) -> list[str]:
    """terminationGracePeriodSeconds leaves room for the preStop sleep plus SHUTDOWN_TIMEOUT_SECS."""
    spec = pod_template(dep).get("spec", {})
    grace = spec.get("terminationGracePeriodSeconds", 30)
    problems: list[str] = []
    for c in spec.get("containers", []) or []:
        env = effective_env(c, objects, namespace(dep))
        drain = int(env.get("SHUTDOWN_TIMEOUT_SECS", "20"))
        pre_stop = ((c.get("lifecycle") or {}).get("preStop") or {})
        sleep = int((pre_stop.get("sleep") or {}).get("seconds", 0))
        if grace <= drain + sleep:
            problems.append(f"{ident(dep)}: terminationGracePeriodSeconds {grace} is not above "
                            f"preStop sleep {sleep} + SHUTDOWN_TIMEOUT_SECS {drain}")
    return problems


def check_hpa(dep: Obj, objects: list[Obj], min_replicas_at_least: int = 1) -> list[str]:
    """Exactly one autoscaling/v2 HPA in the namespace targets the Deployment; sane range and
    behavior; the Deployment leaves `replicas` to it."""
    hpas = [h for h in of_kind(objects, "HorizontalPodAutoscaler")
            if namespace(h) == namespace(dep)
            and (h.get("spec", {}).get("scaleTargetRef") or {}).get("kind") == "Deployment"
            and h["spec"]["scaleTargetRef"].get("name") == dep["metadata"]["name"]]
    if len(hpas) != 1:
        return [f"{ident(dep)}: {len(hpas)} HorizontalPodAutoscalers target it, expected exactly 1"]
    hpa, problems = hpas[0], []
    spec = hpa["spec"]
    if hpa.get("apiVersion") != "autoscaling/v2":
        problems.append(f"{ident(hpa)}: apiVersion {hpa.get('apiVersion')}, expected autoscaling/v2")
    if spec["scaleTargetRef"].get("apiVersion") != "apps/v1":
        problems.append(f"{ident(hpa)}: scaleTargetRef.apiVersion is not apps/v1")
    lo, hi = spec.get("minReplicas", 1), spec.get("maxReplicas", 0)
    if not lo <= hi:
        problems.append(f"{ident(hpa)}: minReplicas {lo} > maxReplicas {hi}")
    if lo < min_replicas_at_least:
        problems.append(f"{ident(hpa)}: minReplicas {lo}, this overlay wants at least {min_replicas_at_least}")
    if not any((m.get("resource") or {}).get("name") == "cpu" for m in spec.get("metrics", []) or []):
        problems.append(f"{ident(hpa)}: no CPU utilisation metric")
    down = (spec.get("behavior") or {}).get("scaleDown") or {}
    if down.get("stabilizationWindowSeconds", 300) < 60:
        problems.append(f"{ident(hpa)}: scaleDown stabilization under 60 s invites flapping")
    if "replicas" in dep.get("spec", {}):
        problems.append(f"{ident(dep)}: sets spec.replicas although an HPA owns the count (every apply would reset it)")
    return problems


def check_pdb(dep: Obj, objects: list[Obj], keep_available: bool = False) -> list[str]:
    """A PDB selects the pods; at the HPA's minimum it still lets a drain evict a pod, and with
    keep_available (prod) it also keeps at least one pod up."""
    labels = pod_labels(dep)
    pdbs = [p for p in of_kind(objects, "PodDisruptionBudget")
            if namespace(p) == namespace(dep) and selector_matches(p["spec"].get("selector"), labels)]
    if len(pdbs) != 1:
        return [f"{ident(dep)}: {len(pdbs)} PodDisruptionBudgets select its pods, expected exactly 1"]
    spec = pdbs[0]["spec"]
    hpa_min = next((h["spec"].get("minReplicas", 1) for h in of_kind(objects, "HorizontalPodAutoscaler")
                    if namespace(h) == namespace(dep)
                    and h["spec"]["scaleTargetRef"].get("name") == dep["metadata"]["name"]), 1)
    if "minAvailable" in spec:
        available = int_or_percent(spec["minAvailable"], hpa_min, round_up=True)
    else:
        available = hpa_min - int_or_percent(spec.get("maxUnavailable", 1), hpa_min, round_up=True)
    problems = []
    if hpa_min - available < 1:
        problems.append(f"{ident(pdbs[0])}: at {hpa_min} replica(s) no pod may be evicted, node drains would hang")
    if keep_available and available < 1:
        problems.append(f"{ident(pdbs[0])}: at {hpa_min} replica(s) a drain may evict every pod")
    if keep_available and "minAvailable" not in spec:
        problems.append(f"{ident(pdbs[0])}: prod expects minAvailable")
    return problems


def check_service_selects(dep: Obj, objects: list[Obj]) -> list[str]:
    """The Deployment's selector matches its template; a Service selects its pods; every such
    Service's targetPorts exist on the pods; together they expose http and grpc."""
    labels, problems = pod_labels(dep), []
    if not selector_matches(dep["spec"].get("selector"), labels):
        problems.append(f"{ident(dep)}: spec.selector does not match its own pod template labels")
    spec = pod_template(dep).get("spec", {})
    services = [s for s in of_kind(objects, "Service")
                if namespace(s) == namespace(dep) and s["spec"].get("selector")
                and all(labels.get(k) == v for k, v in s["spec"]["selector"].items())]
    if not services:
        return problems + [f"{ident(dep)}: no Service selects its pods"]
    exposed: set[str] = set()
    for svc in services:
        for port in svc["spec"].get("ports", []) or []:
            target = port.get("targetPort", port.get("port"))
            if resolve_port_in_pod(target, spec) is None:
                problems.append(f"{ident(svc)}: targetPort {target!r} is not a port of {ident(dep)}")
            exposed.add(port.get("name", ""))
    for needed in ("http", "grpc"):
        if needed not in exposed:
            problems.append(f"{ident(dep)}: no Service exposes a port named {needed}")
    return problems


def pod_spec_references(pod_spec: Obj) -> list[tuple[str, str, str | None, bool]]:
    """(kind, name, key or None, optional) for every ConfigMap/Secret a pod spec reads."""
    refs: list[tuple[str, str, str | None, bool]] = []
    for c in all_containers(pod_spec):
        for src in c.get("envFrom", []) or []:
            for field, kind in (("configMapRef", "ConfigMap"), ("secretRef", "Secret")):
                if field in src:
                    refs.append((kind, src[field]["name"], None, bool(src[field].get("optional"))))
        for item in c.get("env", []) or []:
            value_from = item.get("valueFrom") or {}
            for field, kind in (("configMapKeyRef", "ConfigMap"), ("secretKeyRef", "Secret")):
                if field in value_from:
                    ref = value_from[field]
                    refs.append((kind, ref["name"], ref["key"], bool(ref.get("optional"))))
    for vol in pod_spec.get("volumes", []) or []:
        if "configMap" in vol:
            refs.append(("ConfigMap", vol["configMap"]["name"], None, bool(vol["configMap"].get("optional"))))
        if "secret" in vol:
            refs.append(("Secret", vol["secret"]["secretName"], None, bool(vol["secret"].get("optional"))))
        for source in (vol.get("projected") or {}).get("sources", []) or []:
            for field, kind in (("configMap", "ConfigMap"), ("secret", "Secret")):
                if field in source:
                    refs.append((kind, source[field]["name"], None, bool(source[field].get("optional"))))
    return refs


def check_references(objects: list[Obj], external_secrets: dict[str, set[str]]) -> list[str]:
    """Every ConfigMap/Secret a workload or Ingress references is rendered (with the key), or is a
    documented external Secret (with a documented key)."""
    problems: list[str] = []
    refs: list[tuple[Obj, str, str, str | None, bool]] = []
    for w in of_kind(objects, "Deployment") + of_kind(objects, "StatefulSet") + of_kind(objects, "Job"):
        refs += [(w, *r) for r in pod_spec_references(pod_template(w).get("spec", {}))]
    for ing in of_kind(objects, "Ingress"):
        refs += [(ing, "Secret", t["secretName"], None, False) for t in ing["spec"].get("tls", []) or [] if t.get("secretName")]
    # Secrets cert-manager issues from a rendered Certificate count as rendered (with its keys)
    issued = {(namespace(c), c["spec"]["secretName"]) for c in of_kind(objects, "Certificate")
              if c.get("apiVersion", "").startswith("cert-manager.io/")}
    # and so do the application user's credentials CloudNativePG creates for a rendered Cluster
    cnpg = {(namespace(c), f"{c['metadata']['name']}-app") for c in of_kind(objects, "Cluster")
            if c.get("apiVersion", "").startswith("postgresql.cnpg.io/")}
    for owner, kind, name, key, optional in refs:
        data = config_data(objects, kind, name, namespace(owner))
        if data is None and kind == "Secret" and (namespace(owner), name) in issued:
            data = {"tls.crt": "", "tls.key": "", "ca.crt": ""}
        if data is None and kind == "Secret" and (namespace(owner), name) in cnpg:
            data = {k: "" for k in ("username", "password", "host", "port", "dbname", "uri", "jdbc-uri", "pgpass")}
        if data is not None:
            # An optional key may be absent (e.g. AUTH_JWT_PUBLIC_KEY when the algorithm is HS256).
            if key is not None and key not in data and not optional:
                problems.append(f"{ident(owner)}: reads key {key!r} of {kind}/{name}, which has only {sorted(data)}")
        elif kind == "Secret" and name in external_secrets:
            if key is not None and key not in external_secrets[name]:
                problems.append(f"{ident(owner)}: reads key {key!r} of external Secret/{name}, documented keys {sorted(external_secrets[name])}")
        else:
            problems.append(f"{ident(owner)}: references {kind}/{name}, which is neither rendered nor a documented external Secret")
    return problems


def check_service_identity(objects: list[Obj]) -> list[str]:
    """mTLS on the gRPC plane: every server Deployment runs with GRPC_MTLS=on, its TLS_* files
    mounted from the Secret of a cert-manager Certificate that carries its SPIFFE ID
    spiffe://longship/<namespace>/<service>, for both server and client auth, from a rendered Issuer."""
    problems: list[str] = []
    certs = {(namespace(c), c["spec"].get("secretName")): c for c in of_kind(objects, "Certificate")}
    issuers = {(namespace(i), i["metadata"]["name"]) for i in of_kind(objects, "Issuer")}
    for dep in of_kind(objects, "Deployment"):
        if pod_labels(dep).get("app.kubernetes.io/component") != "server":
            continue
        ns, svc = namespace(dep), dep["metadata"]["name"]
        pod = pod_template(dep).get("spec", {})
        for c in pod.get("containers", []) + pod.get("initContainers", []):
            env = effective_env(c, objects, ns)
            if env.get("GRPC_MTLS") != "on":
                problems.append(f"{ident(dep)}: container {c.get('name')} runs without GRPC_MTLS=on")
                continue
            mounts = {m["mountPath"].rstrip("/"): m["name"] for m in c.get("volumeMounts", []) or []}
            for var in ("TLS_CA_FILE", "TLS_CERT_FILE", "TLS_KEY_FILE"):
                path = env.get(var, "")
                volume_name = mounts.get(path.rpartition("/")[0])
                volume = next((v for v in pod.get("volumes", []) if v.get("name") == volume_name), None)
                secret = ((volume or {}).get("secret") or {}).get("secretName")
                cert = certs.get((ns, secret))
                if cert is None:
                    problems.append(f"{ident(dep)}: {var}={path!r} is not in a mounted cert-manager Secret")
                    continue
                spec = cert["spec"]
                want = f"spiffe://longship/{ns}/{svc}"
                if want not in (spec.get("uris") or []):
                    problems.append(f"{ident(cert)}: uris lack {want}")
                if not {"server auth", "client auth"} <= set(spec.get("usages") or []):
                    problems.append(f"{ident(cert)}: usages need server auth and client auth")
                ref = spec.get("issuerRef") or {}
                if ref.get("kind", "Issuer") == "Issuer" and (ns, ref.get("name")) not in issuers:
                    problems.append(f"{ident(cert)}: issuer {ref.get('name')} is not rendered")
    return problems


def _templates_in(objects: list[Obj], ns: str) -> list[Obj]:
    workloads = of_kind(objects, "Deployment") + of_kind(objects, "StatefulSet") + operator_pods(objects)
    return [w for w in workloads if namespace(w) == ns]


def operator_pods(objects: list[Obj]) -> list[Obj]:
    """The pods an operator creates from a rendered custom resource, as pod templates with the
    labels and ports they get: a CloudNativePG Cluster's instances (cnpg.io/cluster=<name>)."""
    return [{"kind": "Cluster", "metadata": c["metadata"],
             "spec": {"template": {"metadata": {"labels": {"cnpg.io/cluster": c["metadata"]["name"]}},
                                   "spec": {"containers": [{"name": "postgres", "ports": [
                                       {"name": "postgresql", "containerPort": 5432},
                                       {"name": "status", "containerPort": 8000}]}]}}}}
            for c in of_kind(objects, "Cluster") if c.get("apiVersion", "").startswith("postgresql.cnpg.io/")]


def check_network_policies(objects: list[Obj]) -> list[str]:
    """Each NetworkPolicy's podSelector, and each same-namespace peer podSelector in its rules,
    matches at least one rendered pod template; named ports exist on the pods they refer to."""
    problems: list[str] = []
    for np in of_kind(objects, "NetworkPolicy"):
        ns, spec = namespace(np), np.get("spec", {})
        templates = _templates_in(objects, ns)
        selected = [w for w in templates if selector_matches(spec.get("podSelector"), pod_labels(w))]
        if not selected:
            problems.append(f"{ident(np)}: podSelector {spec.get('podSelector')} matches no pod")
        for direction, peers_key, own_side in (("ingress", "from", True), ("egress", "to", False)):
            for rule in spec.get(direction, []) or []:
                peer_pods: list[Obj] = []
                for peer in rule.get(peers_key, []) or []:
                    if "podSelector" in peer and "namespaceSelector" not in peer:
                        matched = [w for w in templates if selector_matches(peer["podSelector"], pod_labels(w))]
                        if not matched:
                            problems.append(f"{ident(np)}: {direction} peer podSelector {peer['podSelector']} matches no pod")
                        peer_pods += matched
                # A named port must exist on the pods that receive the traffic.
                receivers = selected if own_side else peer_pods
                for port in rule.get("ports", []) or []:
                    if isinstance(port.get("port"), str) and receivers and not any(
                        resolve_port_in_pod(port["port"], pod_template(w).get("spec", {})) for w in receivers
                    ):
                        problems.append(f"{ident(np)}: {direction} port name {port['port']!r} exists on none of the receiving pods")
    return problems


def _port_in_rule(rule: Obj, number: int, name: str) -> bool:
    ports = rule.get("ports")
    if not ports:  # no ports listed: every port
        return True
    return any(p.get("port") in (number, name) or p.get("port") is None for p in ports)


def check_grpc_isolation(objects: list[Obj]) -> list[str]:
    """Only the gRPC client (order) may reach the called services' gRPC ports, and it can."""
    problems: list[str] = []
    for server in GRPC_SERVERS_CALLED:
        grpc_port = SERVICES[server]["grpc"]
        for dep in of_kind(objects, "Deployment"):
            if service_name(dep) != server:
                continue
            ns, labels = namespace(dep), pod_labels(dep)
            templates = _templates_in(objects, ns)
            policies = [p for p in of_kind(objects, "NetworkPolicy") if namespace(p) == ns
                        and selector_matches(p["spec"].get("podSelector"), labels)
                        and "Ingress" in (p["spec"].get("policyTypes") or ["Ingress"])]
            if not policies:
                problems.append(f"{ident(dep)}: no NetworkPolicy restricts ingress; anyone may call gRPC {grpc_port}")
                continue
            client_allowed = False
            for np in policies:
                for rule in np["spec"].get("ingress", []) or []:
                    if not _port_in_rule(rule, grpc_port, "grpc"):
                        continue
                    peers = rule.get("from") or []
                    if not peers:
                        problems.append(f"{ident(np)}: admits anyone to {server} gRPC {grpc_port}")
                    for peer in peers:
                        if "podSelector" not in peer or "namespaceSelector" in peer or "ipBlock" in peer:
                            problems.append(f"{ident(np)}: admits {peer} to {server} gRPC {grpc_port}; only {GRPC_CLIENT} pods may call it")
                            continue
                        matched = [w for w in templates if selector_matches(peer["podSelector"], pod_labels(w))]
                        others = sorted({service_name(w) or ident(w) for w in matched} - {GRPC_CLIENT})
                        if others:
                            problems.append(f"{ident(np)}: admits {others} to {server} gRPC {grpc_port}; only {GRPC_CLIENT} may call it")
                        if any(service_name(w) == GRPC_CLIENT for w in matched):
                            client_allowed = True
            if not client_allowed:
                problems.append(f"{ident(dep)}: no NetworkPolicy admits {GRPC_CLIENT} to gRPC {grpc_port}")
    return problems


def _rule_port_matches(rule: Obj, number: int, receiver: Obj | None) -> bool:
    """Whether a rule's `ports` admit `number`; named ports are resolved on the receiving pod."""
    ports = rule.get("ports")
    if not ports:
        return True
    for p in ports:
        port = p.get("port")
        if port is None or port == number:
            return True
        if isinstance(port, int) and p.get("endPort") and port <= number <= p["endPort"]:
            return True
        if isinstance(port, str) and receiver is not None and \
                resolve_port_in_pod(port, pod_template(receiver).get("spec", {})) == number:
            return True
    return False


def _peer_matches(peer: Obj, other: Obj | None) -> bool:
    """Whether a rule peer covers the other end: a pod template of this namespace, or (None) an
    address outside the namespace, which only an ipBlock or a namespaceSelector peer can name."""
    if other is None:
        return "ipBlock" in peer or "namespaceSelector" in peer
    if "namespaceSelector" in peer or "ipBlock" in peer:
        return False  # conservative: not used for same-namespace flows here
    return selector_matches(peer.get("podSelector"), pod_labels(other))


def flow_allowed(objects: list[Obj], src: Obj | None, dst: Obj | None, port: int) -> bool:
    """Evaluates NetworkPolicies for one TCP/UDP flow between pod templates (None = outside the
    namespace). Egress is checked at the source, ingress at the destination; a side no policy
    isolates is open, as in Kubernetes."""
    def allowed(pod: Obj, direction: str, policy_type: str, peers_key: str, other: Obj | None,
                receiver: Obj | None) -> bool:
        policies = [np for np in of_kind(objects, "NetworkPolicy") if namespace(np) == namespace(pod)
                    and selector_matches(np["spec"].get("podSelector"), pod_labels(pod))
                    and policy_type in (np["spec"].get("policyTypes") or ["Ingress"])]
        if not policies:
            return True
        return any(_rule_port_matches(rule, port, receiver)
                   and (not rule.get(peers_key) or any(_peer_matches(peer, other) for peer in rule[peers_key]))
                   for np in policies for rule in np["spec"].get(direction, []) or [])
    ok = True
    if src is not None:
        ok &= allowed(src, "egress", "Egress", "to", dst, dst)
    if dst is not None:
        ok &= allowed(dst, "ingress", "Ingress", "from", src, dst)
    return ok


def check_connectivity(objects: list[Obj]) -> list[str]:
    """The flows the platform needs get through the NetworkPolicies: every service to DNS, Postgres
    and NATS (in-namespace pods in dev, outside addresses in prod), order to the gRPC ports of
    inventory and payment, and outside callers to order's HTTP API."""
    problems: list[str] = []
    deployments = {service_name(d): d for d in of_kind(objects, "Deployment")}
    infra = {service_name(w): w for w in of_kind(objects, "StatefulSet")}

    def need(src: Obj | None, dst: Obj | None, port: int, what: str) -> None:
        if not flow_allowed(objects, src, dst, port):
            problems.append(f"NetworkPolicies block {what} (port {port})")

    for name, dep in deployments.items():
        need(dep, None, 53, f"{name} -> DNS")
        need(dep, infra.get("postgres"), 5432, f"{name} -> Postgres")
        need(dep, infra.get("nats"), 4222, f"{name} -> NATS")
    client = deployments.get(GRPC_CLIENT)
    for server in GRPC_SERVERS_CALLED:
        if client is not None and server in deployments:
            need(client, deployments[server], SERVICES[server]["grpc"], f"{GRPC_CLIENT} -> {server} gRPC")
    if client is not None:
        need(None, client, SERVICES[GRPC_CLIENT]["http"], f"outside -> {GRPC_CLIENT} HTTP API")
    return problems


def check_tenant_header(objects: list[Obj], expected: bool) -> list[str]:
    """AUTH_ALLOW_TENANT_HEADER is true in every service container (dev) or in none (prod)."""
    problems: list[str] = []
    for dep in of_kind(objects, "Deployment"):
        for c in pod_template(dep).get("spec", {}).get("containers", []) or []:
            value = effective_env(c, objects, namespace(dep)).get("AUTH_ALLOW_TENANT_HEADER", "false")
            enabled = value.strip().lower() in ("true", "1", "yes", "on")
            if enabled != expected:
                problems.append(f"{ident(dep)}: AUTH_ALLOW_TENANT_HEADER={value!r}, this overlay requires {str(expected).lower()}")
    return problems


def check_images(dep: Obj, tag_ok: Callable[[str], bool], describe: str) -> list[str]:
    """Every container (init too) runs longship/<service> with an acceptable tag."""
    problems: list[str] = []
    name = service_name(dep)
    for c in all_containers(pod_template(dep).get("spec", {})):
        image = c.get("image", "")
        repo, _, tag = image.rpartition(":") if ":" in image.rsplit("/", 1)[-1] else (image, "", "")
        if not repo.endswith(f"longship/{name}"):
            problems.append(f"{ident(dep)}: container {c.get('name')} runs {image!r}, expected longship/{name}")
        if not tag_ok(tag):
            problems.append(f"{ident(dep)}: container {c.get('name')} image tag {tag!r}: {describe}")
    return problems


def check_ingress(objects: list[Obj]) -> list[str]:
    """Ingress backends are rendered Services and ports; internal endpoints are not routed."""
    problems: list[str] = []
    ingresses = of_kind(objects, "Ingress")
    if not ingresses:
        return ["no Ingress for the order API"]
    for ing in ingresses:
        for rule in ing["spec"].get("rules", []) or []:
            for path in (rule.get("http") or {}).get("paths", []) or []:
                backend = (path.get("backend") or {}).get("service") or {}
                svc = next((s for s in of_kind(objects, "Service") if s["metadata"]["name"] == backend.get("name")
                            and namespace(s) == namespace(ing)), None)
                if svc is None:
                    problems.append(f"{ident(ing)}: backend Service {backend.get('name')!r} is not rendered")
                    continue
                port = backend.get("port") or {}
                if not any(p.get("name") == port.get("name") if "name" in port else p.get("port") == port.get("number")
                           for p in svc["spec"].get("ports", []) or []):
                    problems.append(f"{ident(ing)}: backend port {port} is not a port of {ident(svc)}")
                p = path.get("path", "/")
                if p == "/" or any(internal.startswith(p.rstrip("/") + "/") or internal == p for internal in INTERNAL_PATHS):
                    problems.append(f"{ident(ing)}: path {p!r} exposes internal endpoints {INTERNAL_PATHS}")
    return problems


def check_no_rendered_secrets(objects: list[Obj]) -> list[str]:
    """Prod renders no Secret: real credentials are created by the operator, never kept in git."""
    return [f"{ident(s)}: prod must not render Secrets (document it in EXTERNAL_SECRETS and README instead)"
            for s in of_kind(objects, "Secret")]


def check_schema(obj: Obj, versions: Iterable[str]) -> tuple[list[str], str | None]:
    """Strict offline schema validation. Returns (problems, skip note for CRDs)."""
    group = obj.get("apiVersion", "").rpartition("/")[0]
    if group == "monitoring.coreos.com":
        return [], f"{ident(obj)}: a Prometheus Operator CRD; its shape is checked by k8s/tests/monitoring_component.py"
    if group == "postgresql.cnpg.io":
        return [], f"{ident(obj)}: a CloudNativePG CRD; its shape is checked by k8s/tests/ha_components.py"
    if group not in BUILTIN_GROUPS:
        return [], f"{ident(obj)}: {obj.get('apiVersion')} is a CRD; its schema is in the cluster, not checked"
    problems = []
    for version in versions:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = ".".join(str(p) for p in exc.absolute_path) or "(root)"
            problems.append(f"{ident(obj)}: schema {version}: {path}: {exc.message}")
        except SchemaNotFoundError as exc:
            problems.append(f"{ident(obj)}: {exc.message}")
    return problems, None


# --------------------------------------------------------------------------------------------
# Runner
# --------------------------------------------------------------------------------------------

class Report:
    def __init__(self) -> None:
        self.passed = 0
        self.failures: list[str] = []
        self.notes: list[str] = []

    def record(self, label: str, problems: list[str]) -> None:
        if problems:
            self.failures += [f"[{label}] {p}" for p in problems]
        else:
            self.passed += 1

    @property
    def failed(self) -> int:
        return len(self.failures)


def check_overlay(report: Report, label: str, objects: list[Obj], *, prod: bool,
                  schema_versions: list[str]) -> None:
    deployments = of_kind(objects, "Deployment")
    services_seen = sorted(service_name(d) or "?" for d in deployments)
    report.record(f"{label} services", [] if services_seen == sorted(SERVICES) else
                  [f"Deployments for {services_seen}, expected {sorted(SERVICES)}"])
    for dep in deployments:
        tag = f"{label} {dep['metadata']['name']}"
        report.record(f"{tag} probes+ports", check_probes_and_ports(dep))
        report.record(f"{tag} resources", check_resources(dep))
        report.record(f"{tag} security", check_security(dep))
        report.record(f"{tag} shutdown", check_graceful_shutdown(dep, objects))
        report.record(f"{tag} hpa", check_hpa(dep, objects, min_replicas_at_least=2 if prod else 1))
        report.record(f"{tag} pdb", check_pdb(dep, objects, keep_available=prod))
        report.record(f"{tag} service", check_service_selects(dep, objects))
        if prod:
            report.record(f"{tag} image", check_images(dep, lambda t: t not in ("", "latest", "dev"), "prod needs a release tag"))
        else:
            report.record(f"{tag} image", check_images(dep, lambda t: t == "dev", "dev uses the locally built tag `dev`"))
    for sts in of_kind(objects, "StatefulSet"):
        report.record(f"{label} {sts['metadata']['name']} resources", check_resources(sts))
        report.record(f"{label} {sts['metadata']['name']} security", check_security(sts))
    report.record(f"{label} references", check_references(objects, EXTERNAL_SECRETS if prod else {}))
    report.record(f"{label} networkpolicies", check_network_policies(objects))
    report.record(f"{label} grpc isolation", check_grpc_isolation(objects))
    report.record(f"{label} service identity", check_service_identity(objects))
    report.record(f"{label} connectivity", check_connectivity(objects))
    report.record(f"{label} tenant header", check_tenant_header(objects, expected=not prod))
    if prod:
        report.record(f"{label} ingress", check_ingress(objects))
        report.record(f"{label} no secrets", check_no_rendered_secrets(objects))
    for obj in objects:
        problems, note = check_schema(obj, schema_versions)
        if note:
            report.notes.append(note)
        else:
            report.record(f"{label} schema {ident(obj)}", problems)


def mutated(objects: list[Obj], kind: str, name: str, mutate: Callable[[Obj], Any]) -> tuple[list[Obj], Obj]:
    """A deep copy of `objects` with one object changed by `mutate`; returns (copy, that object)."""
    objs = copy.deepcopy(objects)
    target = next(o for o in objs if o["kind"] == kind and o["metadata"]["name"] == name)
    mutate(target)
    return objs, target


def main_container(dep: Obj) -> Obj:
    return dep["spec"]["template"]["spec"]["containers"][0]


def self_checks(report: Report, dev: list[Obj], prod: list[Obj], verbose: bool = False) -> None:
    """Feeds deliberately broken copies of the real renders to the checks: each must complain."""
    cases: list[tuple[str, Callable[[], list[str]]]] = []

    def case(what: str) -> Callable[[Callable[[], list[str]]], Callable[[], list[str]]]:
        def register(fn: Callable[[], list[str]]) -> Callable[[], list[str]]:
            cases.append((what, fn))
            return fn
        return register

    @case("readiness probe on /ready")
    def _():
        _, dep = mutated(dev, "Deployment", "order", lambda d: main_container(d)["readinessProbe"]["httpGet"].update(path="/ready"))
        return check_probes_and_ports(dep)

    @case("liveness probe on a port the container lacks")
    def _():
        _, dep = mutated(dev, "Deployment", "order", lambda d: main_container(d)["livenessProbe"]["httpGet"].update(port=9999))
        return check_probes_and_ports(dep)

    @case("startup probe on the gRPC port")
    def _():
        _, dep = mutated(dev, "Deployment", "order", lambda d: main_container(d)["startupProbe"]["httpGet"].update(port="grpc"))
        return check_probes_and_ports(dep)

    @case("HTTP port off the contract")
    def _():
        _, dep = mutated(dev, "Deployment", "payment", lambda d: main_container(d)["ports"][0].update(containerPort=8080))
        return check_probes_and_ports(dep)

    @case("no memory limit")
    def _():
        _, dep = mutated(dev, "Deployment", "order", lambda d: main_container(d)["resources"]["limits"].pop("memory"))
        return check_resources(dep)

    @case("writable root filesystem")
    def _():
        _, dep = mutated(dev, "Deployment", "order",
                         lambda d: main_container(d)["securityContext"].update(readOnlyRootFilesystem=False))
        return check_security(dep)

    @case("init container keeps its capabilities")
    def _():
        _, dep = mutated(dev, "Deployment", "inventory",
                         lambda d: d["spec"]["template"]["spec"]["initContainers"][0]["securityContext"].pop("capabilities"))
        return check_security(dep)

    @case("pod runs as root")
    def _():
        _, dep = mutated(dev, "Deployment", "order",
                         lambda d: d["spec"]["template"]["spec"]["securityContext"].update(runAsNonRoot=False, runAsUser=0))
        return check_security(dep)

    @case("grace period shorter than preStop + drain")
    def _():
        objs, dep = mutated(dev, "Deployment", "order",
                            lambda d: d["spec"]["template"]["spec"].update(terminationGracePeriodSeconds=20))
        return check_graceful_shutdown(dep, objs)

    @case("HPA minReplicas above maxReplicas")
    def _():
        objs, _ = mutated(dev, "HorizontalPodAutoscaler", "order", lambda h: h["spec"].update(minReplicas=5, maxReplicas=2))
        return check_hpa(find(objs, "Deployment", "order"), objs)

    @case("HPA targets another Deployment")
    def _():
        objs, _ = mutated(dev, "HorizontalPodAutoscaler", "order", lambda h: h["spec"]["scaleTargetRef"].update(name="orders"))
        return check_hpa(find(objs, "Deployment", "order"), objs)

    @case("Deployment pins replicas under an HPA")
    def _():
        objs, dep = mutated(dev, "Deployment", "order", lambda d: d["spec"].update(replicas=3))
        return check_hpa(dep, objs)

    @case("PDB selects other pods")
    def _():
        objs, _ = mutated(dev, "PodDisruptionBudget", "order",
                          lambda p: p["spec"]["selector"]["matchLabels"].update({"app.kubernetes.io/name": "orders"}))
        return check_pdb(find(objs, "Deployment", "order"), objs)

    @case("PDB that blocks every drain")
    def _():
        objs, _ = mutated(prod, "PodDisruptionBudget", "order", lambda p: p["spec"].update(minAvailable="100%"))
        return check_pdb(find(objs, "Deployment", "order"), objs, keep_available=True)

    @case("no Service selects the pods")
    def _():
        objs, _ = mutated(dev, "Service", "payment", lambda s: s["spec"]["selector"].update(app="nope"))
        objs = [o for o in objs if not (o["kind"] == "Service" and o["metadata"]["name"] == "payment-grpc")]
        return check_service_selects(find(objs, "Deployment", "payment"), objs)

    @case("Service targetPort the pods lack")
    def _():
        objs, _ = mutated(dev, "Service", "payment", lambda s: s["spec"]["ports"][0].update(targetPort="web"))
        return check_service_selects(find(objs, "Deployment", "payment"), objs)

    @case("reference to a Secret that does not exist")
    def _():
        ref = {"name": "X", "valueFrom": {"secretKeyRef": {"name": "no-such-secret", "key": "X"}}}
        objs, _ = mutated(dev, "Deployment", "order", lambda d: main_container(d)["env"].append(ref))
        return check_references(objs, {})

    @case("reference to a missing ConfigMap key")
    def _():
        config = main_container(find(dev, "Deployment", "order"))["envFrom"][0]["configMapRef"]["name"]
        ref = {"name": "X", "valueFrom": {"configMapKeyRef": {"name": config, "key": "NOPE"}}}
        objs, _ = mutated(dev, "Deployment", "order", lambda d: main_container(d)["env"].append(ref))
        return check_references(objs, {})

    @case("undocumented key of an external Secret")
    def _():
        ref = {"name": "X", "valueFrom": {"secretKeyRef": {"name": "order-db", "key": "PASSWORD"}}}
        objs, _ = mutated(prod, "Deployment", "order", lambda d: main_container(d)["env"].append(ref))
        return check_references(objs, EXTERNAL_SECRETS)

    @case("NetworkPolicy that selects no pod")
    def _():
        objs, _ = mutated(dev, "NetworkPolicy", "inventory",
                          lambda n: n["spec"]["podSelector"]["matchLabels"].update({"app.kubernetes.io/name": "inventroy"}))
        return check_network_policies(objs)

    @case("payment gRPC open to the whole namespace")
    def _():
        objs, _ = mutated(dev, "NetworkPolicy", "payment", lambda n: n["spec"]["ingress"][0].update({"from": [{"podSelector": {}}]}))
        return check_grpc_isolation(objs)

    @case("inventory gRPC open through a rule without ports")
    def _():
        objs, _ = mutated(prod, "NetworkPolicy", "inventory", lambda n: n["spec"]["ingress"][1].pop("ports"))
        return check_grpc_isolation(objs)

    @case("order's egress to payment removed")
    def _():
        objs, _ = mutated(dev, "NetworkPolicy", "order", lambda n: n["spec"]["egress"].pop(1))
        return check_connectivity(objs)

    @case("a service without the part-of label loses Postgres")
    def _():
        objs, _ = mutated(prod, "Deployment", "payment",
                          lambda d: d["spec"]["template"]["metadata"]["labels"].pop("app.kubernetes.io/part-of"))
        return check_connectivity(objs)

    @case("order API closed to outside callers")
    def _():
        objs, _ = mutated(prod, "NetworkPolicy", "order", lambda n: n["spec"].update(ingress=[]))
        return check_connectivity(objs)

    @case("tenant header enabled in prod")
    def _():
        env = {"name": "AUTH_ALLOW_TENANT_HEADER", "value": "true"}
        objs, _ = mutated(prod, "Deployment", "order", lambda d: main_container(d)["env"].append(env))
        return check_tenant_header(objs, expected=False)

    @case("tenant header disabled in dev")
    def _():
        env = {"name": "AUTH_ALLOW_TENANT_HEADER", "value": "false"}
        objs, _ = mutated(dev, "Deployment", "inventory", lambda d: main_container(d)["env"].append(env))
        return check_tenant_header(objs, expected=True)

    @case("Ingress routes / (and so /metrics)")
    def _():
        objs, _ = mutated(prod, "Ingress", "order", lambda i: i["spec"]["rules"][0]["http"]["paths"][0].update(path="/"))
        return check_ingress(objs)

    @case("prod renders a Secret")
    def _():
        return check_no_rendered_secrets(prod + [{"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x"}}])

    @case("unknown field (a typo) fails the schema")
    def _():
        _, dep = mutated(dev, "Deployment", "order", lambda d: d["spec"].update(replica=1))
        return check_schema(dep, [MIN_KUBERNETES])[0]

    @case("wrong type fails the schema")
    def _():
        _, hpa = mutated(dev, "HorizontalPodAutoscaler", "order", lambda h: h["spec"].update(minReplicas="two"))
        return check_schema(hpa, [MIN_KUBERNETES])[0]

    for what, run in cases:
        problems = run()
        if verbose:
            print(f"self-check {what}: {problems[0] if problems else 'NOT NOTICED'}")
        report.record(f"self-check {what}", [] if problems else [f"the check did not notice: {what}"])


def find(objects: list[Obj], kind: str, name: str) -> Obj:
    return next(o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name)


def main() -> int:
    report = Report()
    versions = sorted({MIN_KUBERNETES, kubernetes_validate.latest_version()}, key=Version)
    try:
        dev = render(K8S_DIR / "overlays" / "dev")
        prod = render(K8S_DIR / "overlays" / "prod")
        dev_namespace = namespace(of_kind(dev, "Deployment")[0])
        dev_otel = render_with_component(K8S_DIR / "overlays" / "dev", K8S_DIR / "components" / "otel", dev_namespace)
        dev_monitoring = render_with_component(K8S_DIR / "overlays" / "dev", K8S_DIR / "components" / "monitoring",
                                               dev_namespace)
        prod_pg = render_with_component(K8S_DIR / "overlays" / "prod", K8S_DIR / "components" / "postgres-ha",
                                        namespace(of_kind(prod, "Deployment")[0]))
    except RenderError as exc:
        print(f"FAIL: {exc}")
        print("0 passed, 1 failed")
        return 1

    self_checks(report, dev, prod, verbose="-v" in sys.argv[1:])
    check_overlay(report, "dev", dev, prod=False, schema_versions=versions)
    check_overlay(report, "prod", prod, prod=True, schema_versions=versions)
    check_overlay(report, "dev+otel", dev_otel, prod=False, schema_versions=versions)
    otel_set = all(effective_env(c, dev_otel, namespace(d)).get("OTEL_EXPORTER_OTLP_ENDPOINT")
                   for d in of_kind(dev_otel, "Deployment") for c in d["spec"]["template"]["spec"]["containers"])
    report.record("dev+otel endpoint", [] if otel_set else ["components/otel does not set OTEL_EXPORTER_OTLP_ENDPOINT"])
    check_overlay(report, "dev+monitoring", dev_monitoring, prod=False, schema_versions=versions)
    monitoring_component.run(report, dev_monitoring)
    check_overlay(report, "prod+postgres-ha", prod_pg, prod=True, schema_versions=versions)
    ha_components.run(report, dev, prod, prod_pg)

    print(f"rendered: dev {len(dev)} objects, prod {len(prod)}, dev+otel {len(dev_otel)}, "
          f"dev+monitoring {len(dev_monitoring)}, prod+postgres-ha {len(prod_pg)}; "
          f"schemas: Kubernetes {', '.join(versions)} (strict)")
    for note in sorted(set(report.notes)):
        print(f"note: {note}")
    if report.failures:
        print(f"\n{report.failed} problem(s):")
        for failure in report.failures:
            print(f"  - {failure}")
        print()
    print(f"{report.passed} passed, {report.failed} failed")
    return 1 if report.failures else 0


if __name__ == "__main__":
    sys.exit(main())
