"""Checks of the highly available infrastructure for check_manifests.py: the NATS cluster of the prod
overlay (k8s/components/nats-cluster), the stream replicas each overlay asks for, and the
CloudNativePG Postgres of k8s/components/postgres-ha. A CloudNativePG `Cluster` and `Database` are
CRDs, whose schemas live in the cluster, not in kubernetes-validate: their shape is checked here
(known fields only, the types the operator expects), together with what ties them to the rest: the
services connect to the cluster's read-write Service with the operator's password Secret, and
every service database exists in it.

Each check takes rendered objects and returns a list of problems (empty = pass).
"""

from __future__ import annotations

import copy
import re
from typing import Any
from urllib.parse import urlparse

Obj = dict[str, Any]

CNPG_API = "postgresql.cnpg.io/v1"
# The fields the component uses, with the types CloudNativePG's CRDs give them.
CLUSTER_SPEC = {"instances": int, "imageName": str, "primaryUpdateStrategy": str, "postgresql": dict,
                "bootstrap": dict, "affinity": dict, "storage": dict, "walStorage": dict, "resources": dict,
                "enableSuperuserAccess": bool, "monitoring": dict, "backup": dict, "description": str}
SYNCHRONOUS = {"method": str, "number": int, "dataDurability": str, "maxStandbyNamesFromCluster": int,
               "standbyNamesPre": list, "standbyNamesPost": list}
DATABASE_SPEC = {"name": str, "owner": str, "cluster": dict, "ensure": str, "encoding": str,
                 "databaseReclaimPolicy": str}
ROUTE_PORT = 6222


def of_kind(objects: list[Obj], kind: str) -> list[Obj]:
    return [o for o in objects if o.get("kind") == kind]


def shape(obj: Any, fields: dict[str, type], where: str) -> list[str]:
    if not isinstance(obj, dict):
        return [f"{where}: expected a mapping"]
    problems = [f"{where}: unknown field {k!r}" for k in obj if k not in fields]
    problems += [f"{where}.{k}: expected {t.__name__}, got {type(obj[k]).__name__}"
                 for k, t in fields.items() if k in obj and not isinstance(obj[k], t)]
    return problems


def containers(dep: Obj) -> list[Obj]:
    spec = dep["spec"]["template"]["spec"]
    return (spec.get("initContainers") or []) + (spec.get("containers") or [])


def env_value(container: Obj, objects: list[Obj], name: str) -> str | None:
    """A variable's value from `env` or from a ConfigMap the container loads (env wins)."""
    for item in container.get("env") or []:
        if item["name"] == name and "value" in item:
            return str(item["value"])
    value = None
    for src in container.get("envFrom") or []:
        ref = (src.get("configMapRef") or {}).get("name")
        for cm in of_kind(objects, "ConfigMap"):
            if cm["metadata"]["name"] == ref and name in (cm.get("data") or {}):
                value = str(cm["data"][name])
    return value


def check_stream_replicas(objects: list[Obj], expected: int) -> list[str]:
    """Every service container asks for `expected` stream replicas (NATS_STREAM_REPLICAS), and a
    NATS StatefulSet rendered beside them has at least that many servers."""
    problems = []
    for dep in of_kind(objects, "Deployment"):
        for c in containers(dep):
            value = env_value(c, objects, "NATS_STREAM_REPLICAS")
            if value != str(expected):
                problems.append(f"Deployment/{dep['metadata']['name']} {c['name']}: NATS_STREAM_REPLICAS={value!r}, "
                                f"this overlay needs {expected}")
    for sts in of_kind(objects, "StatefulSet"):
        if sts["metadata"]["name"] == "nats" and sts["spec"].get("replicas", 1) < expected:
            problems.append(f"StatefulSet/nats has {sts['spec'].get('replicas', 1)} servers; "
                            f"{expected} stream replicas need at least {expected}")
    return problems


def check_nats_cluster(objects: list[Obj]) -> list[str]:
    """The NATS StatefulSet is a cluster: 3 servers started in parallel, one per node, each with a
    stable server name, JetStream on its volume, routes to every server through the governing
    headless Service, and a PodDisruptionBudget that keeps a quorum."""
    sts = next((s for s in of_kind(objects, "StatefulSet") if s["metadata"]["name"] == "nats"), None)
    if sts is None:
        return ["no StatefulSet/nats rendered"]
    spec, problems = sts["spec"], []
    replicas = spec.get("replicas", 1)
    if replicas < 3:
        problems.append(f"StatefulSet/nats: {replicas} servers; a JetStream cluster with R3 streams needs 3")
    if spec.get("podManagementPolicy") != "Parallel":
        problems.append("StatefulSet/nats: podManagementPolicy must be Parallel (the servers wait for each other's routes)")
    pod = spec["template"]["spec"]
    spread = [t for t in pod.get("topologySpreadConstraints") or []
              if t.get("topologyKey") == "kubernetes.io/hostname" and t.get("whenUnsatisfiable") == "DoNotSchedule"]
    if not spread:
        problems.append("StatefulSet/nats: no hard one-per-node spread (kubernetes.io/hostname, DoNotSchedule)")
    config = nats_conf(sts, objects)
    if config is None:
        return problems + ["StatefulSet/nats: no mounted ConfigMap with nats.conf"]
    if not re.search(r"^\s*jetstream\s*\{", config, re.M):
        problems.append("nats.conf: JetStream is not enabled")
    if not re.search(r"^\s*server_name:\s*\$POD_NAME\s*$", config, re.M) or not any(
            e.get("name") == "POD_NAME" and (e.get("valueFrom") or {}).get("fieldRef", {}).get("fieldPath") == "metadata.name"
            for c in pod["containers"] for e in c.get("env") or []):
        problems.append("nats.conf: server_name must be the pod name ($POD_NAME from metadata.name)")
    service = spec.get("serviceName")
    routes = set(re.findall(rf"nats://([\w.-]+):{ROUTE_PORT}", config))
    wanted = {f"nats-{i}.{service}" for i in range(replicas)}
    if routes != wanted:
        problems.append(f"nats.conf: cluster routes {sorted(routes)}, expected {sorted(wanted)}")
    headless = next((s for s in of_kind(objects, "Service") if s["metadata"]["name"] == service), None)
    if headless is None or headless["spec"].get("clusterIP") != "None" or not any(
            p.get("port") == ROUTE_PORT for p in headless["spec"].get("ports") or []):
        problems.append(f"Service/{service}: must be headless (clusterIP None) with the route port {ROUTE_PORT}")
    elif not headless["spec"].get("publishNotReadyAddresses"):
        problems.append(f"Service/{service}: publishNotReadyAddresses must be true (routes resolve before readiness)")
    labels = spec["template"]["metadata"]["labels"]
    pdbs = [p for p in of_kind(objects, "PodDisruptionBudget")
            if all(labels.get(k) == v for k, v in p["spec"]["selector"].get("matchLabels", {}).items())]
    if not any(p["spec"].get("maxUnavailable") == 1 for p in pdbs):
        problems.append("StatefulSet/nats: no PodDisruptionBudget with maxUnavailable 1 (a drain must keep a quorum)")
    return problems


def nats_conf(sts: Obj, objects: list[Obj]) -> str | None:
    for volume in sts["spec"]["template"]["spec"].get("volumes") or []:
        name = (volume.get("configMap") or {}).get("name")
        for cm in of_kind(objects, "ConfigMap"):
            if cm["metadata"]["name"] == name and "nats.conf" in (cm.get("data") or {}):
                return cm["data"]["nats.conf"]
    return None


def check_postgres_ha(objects: list[Obj]) -> list[str]:
    """One CloudNativePG Cluster of 3 instances on distinct nodes with synchronous replication that
    never gives up durability; every service connects to its read-write Service with the
    operator's password Secret, to a database the cluster has."""
    clusters = [c for c in of_kind(objects, "Cluster") if c.get("apiVersion") == CNPG_API]
    if len(clusters) != 1:
        return [f"expected one {CNPG_API} Cluster, found {len(clusters)}"]
    cluster = clusters[0]
    name, spec = cluster["metadata"]["name"], cluster.get("spec") or {}
    problems = shape(spec, CLUSTER_SPEC, f"Cluster/{name}.spec")
    if spec.get("instances", 1) < 3:
        problems.append(f"Cluster/{name}: {spec.get('instances', 1)} instances; high availability needs 3")
    sync = (spec.get("postgresql") or {}).get("synchronous")
    if not isinstance(sync, dict):
        problems.append(f"Cluster/{name}: no postgresql.synchronous (replication would be asynchronous)")
    else:
        problems += shape(sync, SYNCHRONOUS, f"Cluster/{name}.spec.postgresql.synchronous")
        if sync.get("method") not in ("any", "first") or not isinstance(sync.get("number"), int) or sync["number"] < 1:
            problems.append(f"Cluster/{name}: synchronous replication needs method any|first and number >= 1")
        if sync.get("dataDurability", "required") != "required":
            problems.append(f"Cluster/{name}: dataDurability must be required (preferred drops to asynchronous)")
    affinity = spec.get("affinity") or {}
    if not affinity.get("enablePodAntiAffinity", True) or affinity.get("podAntiAffinityType") != "required":
        problems.append(f"Cluster/{name}: instances must be on distinct nodes (podAntiAffinityType required)")
    databases = {(spec.get("bootstrap") or {}).get("initdb", {}).get("database")}
    for db in of_kind(objects, "Database"):
        problems += shape(db.get("spec"), DATABASE_SPEC, f"Database/{db['metadata']['name']}.spec")
        if (db["spec"].get("cluster") or {}).get("name") != name:
            problems.append(f"Database/{db['metadata']['name']}: not in Cluster/{name}")
        else:
            databases.add(db["spec"].get("name"))
    for dep in of_kind(objects, "Deployment"):
        for c in containers(dep):
            problems += database_env(dep, c, objects, name, databases)
    return problems


def database_env(dep: Obj, container: Obj, objects: list[Obj], cluster: str, databases: set) -> list[str]:
    where = f"Deployment/{dep['metadata']['name']} {container['name']}"
    url = env_value(container, objects, "DATABASE_URL")
    if url is None:
        return [f"{where}: DATABASE_URL is not {cluster}-rw (it comes from elsewhere)"]
    parsed = urlparse(url)
    problems = []
    if parsed.hostname != f"{cluster}-rw":
        problems.append(f"{where}: DATABASE_URL host {parsed.hostname!r}, expected {cluster}-rw (the primary)")
    if parsed.path.lstrip("/") not in databases:
        problems.append(f"{where}: database {parsed.path.lstrip('/')!r} is not in Cluster/{cluster} ({sorted(filter(None, databases))})")
    password = next((e for e in container.get("env") or [] if e["name"] == "PGPASSWORD"), None)
    ref = ((password or {}).get("valueFrom") or {}).get("secretKeyRef") or {}
    if (ref.get("name"), ref.get("key")) != (f"{cluster}-app", "password"):
        problems.append(f"{where}: PGPASSWORD must come from Secret {cluster}-app key password")
    return problems


def self_checks(dev: list[Obj], prod: list[Obj], prod_pg: list[Obj]) -> list[tuple[str, list[str]]]:
    """Broken copies of the renders: each check must complain."""
    def mutated(objects: list[Obj], kind: str, name: str, mutate) -> list[Obj]:
        objs = copy.deepcopy(objects)
        mutate(next(o for o in objs if o["kind"] == kind and o["metadata"]["name"] == name))
        return objs

    def drop_route(objs: list[Obj]) -> list[Obj]:
        objs = copy.deepcopy(objs)
        for cm in of_kind(objs, "ConfigMap"):
            if "nats.conf" in (cm.get("data") or {}):
                cm["data"]["nats.conf"] = re.sub(r"\s*nats://nats-2[^\s]*", "", cm["data"]["nats.conf"])
        return objs

    def one_config(objs: list[Obj], key: str, value: str) -> list[Obj]:
        objs = copy.deepcopy(objs)
        for cm in of_kind(objs, "ConfigMap"):
            if cm["metadata"]["name"].startswith("longship-config"):
                cm["data"][key] = value
        return objs

    def cluster(mutate) -> list[Obj]:
        return mutated(prod_pg, "Cluster", "longship-pg", mutate)

    def read_only(dep: Obj) -> None:
        for e in dep["spec"]["template"]["spec"]["containers"][0]["env"]:
            if e["name"] == "DATABASE_URL":
                e["value"] = e["value"].replace("-rw:", "-ro:")

    return [
        ("dev asking its single NATS for 3 replicas",
         check_stream_replicas(one_config(dev, "NATS_STREAM_REPLICAS", "3"), 1)),
        ("prod streams with one replica", check_stream_replicas(one_config(prod, "NATS_STREAM_REPLICAS", "1"), 3)),
        ("a NATS cluster of one server",
         check_nats_cluster(mutated(prod, "StatefulSet", "nats", lambda s: s["spec"].update(replicas=1)))),
        ("a NATS server without the route to nats-2", check_nats_cluster(drop_route(prod))),
        ("NATS servers allowed on one node", check_nats_cluster(mutated(
            prod, "StatefulSet", "nats", lambda s: s["spec"]["template"]["spec"].pop("topologySpreadConstraints")))),
        ("a Postgres cluster of one instance", check_postgres_ha(cluster(lambda c: c["spec"].update(instances=1)))),
        ("asynchronous replication", check_postgres_ha(cluster(lambda c: c["spec"]["postgresql"].pop("synchronous")))),
        ("synchronous replication that may drop to asynchronous", check_postgres_ha(cluster(
            lambda c: c["spec"]["postgresql"]["synchronous"].update(dataDurability="preferred")))),
        ("a misspelt Cluster field", check_postgres_ha(cluster(lambda c: c["spec"].update(instance=3)))),
        ("payment connecting to a read-only replica",
         check_postgres_ha(mutated(prod_pg, "Deployment", "payment", read_only))),
        ("a service database missing from the cluster", check_postgres_ha(mutated(
            prod_pg, "Database", "longship-pg-inventory", lambda d: d["spec"]["cluster"].update(name="other")))),
    ]


def run(report: Any, dev: list[Obj], prod: list[Obj], prod_pg: list[Obj]) -> None:
    """Records every check and self-check in `report` (check_manifests.Report)."""
    report.record("dev stream replicas", check_stream_replicas(dev, 1))
    report.record("prod stream replicas", check_stream_replicas(prod, 3))
    report.record("prod nats cluster", check_nats_cluster(prod))
    report.record("prod+postgres-ha stream replicas", check_stream_replicas(prod_pg, 3))
    report.record("prod+postgres-ha cloudnativepg", check_postgres_ha(prod_pg))
    for what, problems in self_checks(dev, prod, prod_pg):
        report.record(f"self-check {what}", [] if problems else [f"the check did not notice: {what}"])
