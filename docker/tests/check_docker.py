#!/usr/bin/env python3
"""Offline checks of docker/ (no Docker engine needed), run by `just test`.

- docker/compose.yaml parses and has, for every service crate found under
  services/*/Cargo.toml (discovered, not listed here): a service built from
  docker/Dockerfile with SERVICE=<crate> under the `apps` profile, and a migration
  job (`migrate`) it waits for; the infrastructure `scripts/up.sh` starts exists
  outside any profile; every service_healthy dependency has a health check; named
  volumes are declared; the environment follows the contract (ARCHITECTURE.md 3-4);
  the Postgres init script creates every database a service uses; the collector
  config parses and exports to a compose service.
- docker/Dockerfile is multi-stage (cargo-chef planner/cacher/builder), builds
  `-p ${SERVICE}`, runs as non-root on distroless (docker/tests/dockerfile_checks.py);
  every base image is pinned by tag and digest, the Rust tag is rust-toolchain.toml's
  channel, cargo-chef is installed at an exact version, and the registry and target
  directories are BuildKit cache mounts.
- every services/* crate is buildable by it (a binary named like the package).
- .dockerignore keeps target/, .git, .longship/ and rust-toolchain.toml out, and nothing
  the build needs.
- Prometheus scrapes every service crate's container as job=<crate> and loads the alert
  rules of monitoring/prometheus/rules; Grafana has a Prometheus data source and loads the
  dashboards of monitoring/grafana/dashboards (docker/tests/monitoring_checks.py).
- a negative self-check: broken copies of the inputs must make the checks fail.

Prints `N passed, M failed` and exits 1 if anything failed. Needs PyYAML.
Usage: python3 docker/tests/check_docker.py [--root REPO] [-v]
"""

import argparse
import copy
import fnmatch
import json
import os
import re
import sys
from urllib.parse import urlsplit

try:
    import yaml
except ImportError:  # pragma: no cover
    print("error: PyYAML is needed (pip install pyyaml, or apt-get install python3-yaml)", file=sys.stderr)
    sys.exit(2)

from dockerfile_checks import check_cache_mounts, check_dockerfile, check_pins
from monitoring_checks import check_grafana, check_monitoring_exposure, check_prometheus

try:
    import tomllib
except ImportError:  # Python < 3.11
    tomllib = None

# The contract (ARCHITECTURE.md section 3) for the crates it names; other crates only
# need unique ports and their own database.
CONTRACT = {
    "order": (8080, 50051, "orders"),
    "inventory": (8081, 50052, "inventory"),
    "payment": (8082, 50053, "payments"),
}
INFRA_DEFAULT = ["postgres", "nats", "otel-collector", "jaeger"]
# docs/errors.md: the error-code catalogue services declare their codes from (error_codes!)
NEEDED_IN_CONTEXT = ["Cargo.toml", "Cargo.lock", "libs", "services", "proto", "migrations", "docs/errors.md"]


# --- inputs -------------------------------------------------------------------------
class Inputs:
    def __init__(self, root):
        self.root = root
        self.docker = os.path.join(root, "docker")
        self.compose_text = read(os.path.join(self.docker, "compose.yaml"))
        self.dockerfile = read(os.path.join(self.docker, "Dockerfile"))
        self.dockerignore = read(os.path.join(root, ".dockerignore"))
        self.toolchain = read(os.path.join(root, "rust-toolchain.toml"))
        self.crates = discover_crates(root)
        self.infra = infra_from_up_sh(root)
        self.compose = None
        self.compose_error = None
        try:
            self.compose = yaml.safe_load(self.compose_text) if self.compose_text is not None else None
        except yaml.YAMLError as e:
            self.compose_error = str(e)

    def services(self):
        return (self.compose or {}).get("services") or {}


def read(path):
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError:
        return None


def parse_toml(text):
    if tomllib is not None:
        return tomllib.loads(text)
    # Minimal fallback: [package] name and [[bin]] names only.
    data, section, bins = {"package": {}}, None, []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith("[["):
            section = line.strip("[]").strip()
            if section == "bin":
                bins.append({})
        elif line.startswith("["):
            section = line.strip("[]").strip()
        elif "=" in line:
            k, v = (x.strip() for x in line.split("=", 1))
            v = v.strip('"')
            if section == "package":
                data["package"][k] = v
            elif section == "bin" and bins:
                bins[-1][k] = v
    if bins:
        data["bin"] = bins
    return data


def discover_crates(root):
    """{package name: crate dir} for services/*/Cargo.toml."""
    crates = {}
    base = os.path.join(root, "services")
    for d in sorted(os.listdir(base)) if os.path.isdir(base) else []:
        manifest = os.path.join(base, d, "Cargo.toml")
        if os.path.isfile(manifest):
            data = parse_toml(read(manifest) or "")
            name = (data.get("package") or {}).get("name")
            crates[name or f"<no package name in services/{d}>"] = os.path.join(base, d)
    return crates


def infra_from_up_sh(root):
    text = read(os.path.join(root, "scripts", "lib", "common.sh")) or ""
    m = re.search(r"^\s*COMPOSE_INFRA=\(([^)]*)\)", text, re.M)
    return m.group(1).split() if m else list(INFRA_DEFAULT)


# --- helpers ------------------------------------------------------------------------------
def env_of(svc):
    env = svc.get("environment") or {}
    if isinstance(env, list):
        env = dict(e.split("=", 1) if "=" in e else (e, None) for e in env)
    return {k: (None if v is None else str(v)) for k, v in env.items()}


def depends_of(svc):
    dep = svc.get("depends_on") or {}
    if isinstance(dep, list):
        return {d: "service_started" for d in dep}
    return {k: (v or {}).get("condition", "service_started") for k, v in dep.items()}


def build_of(svc):
    b = svc.get("build")
    if isinstance(b, str):
        return {"context": b}
    return b or {}


def build_arg(svc, name):
    args = build_of(svc).get("args") or {}
    if isinstance(args, list):
        args = dict(a.split("=", 1) for a in args if "=" in a)
    v = args.get(name)
    return None if v is None else str(v)


def command_of(svc):
    c = svc.get("command")
    return c.split() if isinstance(c, str) else list(c or [])


def app_service(inp, crate):
    return inp.services().get(crate)


def migration_jobs(inp, crate):
    return {n: s for n, s in inp.services().items()
            if command_of(s) == ["migrate"] and (build_arg(s, "SERVICE") == crate
                                                or s.get("image") and s.get("image") == (app_service(inp, crate) or {}).get("image"))}


def addr_port(addr):
    m = re.fullmatch(r"(.+):(\d+)", addr or "")
    return (m.group(1), int(m.group(2))) if m else (None, None)


def db_of(url):
    """(host, database) of a postgres:// URL, (None, None) if it is not one."""
    u = urlsplit(url or "")
    if u.scheme not in ("postgres", "postgresql") or not u.path.strip("/"):
        return (None, None)
    return (u.hostname, u.path.strip("/"))


def ignored(patterns, path):
    """Whether Docker leaves `path` out: the last pattern that matches it or a folder above it
    decides (a `!` pattern puts it back)."""
    parts = path.split("/")
    within = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    out = False
    for p in patterns:
        neg = p.startswith("!")
        p = p.lstrip("!").strip("/")
        if p.startswith("**/"):
            p = p[3:]
        if any(fnmatch.fnmatch(w, p) for w in within):
            out = not neg
    return out


def ignore_patterns(text):
    lines = (line.strip() for line in (text or "").splitlines())
    return [line for line in lines if line and not line.startswith("#")]


# --- checks: each returns a list of problems (empty = pass) -----------------------------------
def check_compose_parses(inp):
    if inp.compose_text is None:
        return ["docker/compose.yaml is missing"]
    if inp.compose_error:
        return [f"docker/compose.yaml is not valid YAML: {inp.compose_error}"]
    if not isinstance(inp.compose, dict) or not isinstance(inp.services(), dict) or not inp.services():
        return ["docker/compose.yaml has no services mapping"]
    probs = []
    if inp.compose.get("name") != "longship":
        probs.append("compose project should be named `longship` (else it is named after the docker/ directory)")
    return probs


def check_crates_found(inp):
    if not inp.crates:
        return ["no services/*/Cargo.toml found: nothing to check against"]
    return [n for n in inp.crates if n.startswith("<")]


def check_service_per_crate(inp):
    probs = []
    for crate in inp.crates:
        svc = app_service(inp, crate)
        if svc is None:
            probs.append(f"crate `{crate}` has no compose service named `{crate}`")
            continue
        b = build_of(svc)
        if os.path.normpath(os.path.join(inp.docker, str(b.get("context", "")))) != os.path.normpath(inp.root):
            probs.append(f"{crate}: build.context should be the repository root (`..`), got {b.get('context')!r}")
        if b.get("dockerfile") != "docker/Dockerfile":
            probs.append(f"{crate}: build.dockerfile should be docker/Dockerfile, got {b.get('dockerfile')!r}")
        if build_arg(svc, "SERVICE") != crate:
            probs.append(f"{crate}: build.args.SERVICE should be `{crate}`, got {build_arg(svc, 'SERVICE')!r}")
        if "apps" not in (svc.get("profiles") or []):
            probs.append(f"{crate}: should be in the `apps` profile (up.sh starts only the infrastructure)")
        if svc.get("restart") not in ("on-failure", "unless-stopped", "always"):
            probs.append(f"{crate}: should restart on failure, got restart={svc.get('restart')!r}")
    return probs


def check_migration_jobs(inp):
    probs = []
    for crate in inp.crates:
        svc = app_service(inp, crate) or {}
        jobs = migration_jobs(inp, crate)
        if not jobs:
            probs.append(f"crate `{crate}` has no migration job (a service with command [\"migrate\"] built with SERVICE={crate})")
            continue
        deps = depends_of(svc)
        for name, job in jobs.items():
            if deps.get(name) != "service_completed_successfully":
                probs.append(f"{crate} should depend on {name} with condition service_completed_successfully, got {deps.get(name)!r}")
            if str(job.get("restart", "no")) != "no":
                probs.append(f"{name}: a one-shot job must not restart (restart: \"no\"), got {job.get('restart')!r}")
            if env_of(job).get("DATABASE_URL") != env_of(svc).get("DATABASE_URL"):
                probs.append(f"{name} migrates {env_of(job).get('DATABASE_URL')!r} but {crate} uses {env_of(svc).get('DATABASE_URL')!r}")
            if "apps" not in (job.get("profiles") or []):
                probs.append(f"{name}: should be in the `apps` profile")
            jdeps = depends_of(job)
            if jdeps.get("postgres") != "service_healthy":
                probs.append(f"{name} should wait for postgres: service_healthy")
    return probs


def check_apps_wait_for_infra(inp):
    probs = []
    for crate in inp.crates:
        deps = depends_of(app_service(inp, crate) or {})
        for infra in ("postgres", "nats"):
            if deps.get(infra) != "service_healthy":
                probs.append(f"{crate} should depend on {infra} with condition service_healthy, got {deps.get(infra)!r}")
    return probs


def check_healthchecks(inp):
    probs = []
    services = inp.services()
    for infra in ("postgres", "nats"):
        hc = (services.get(infra) or {}).get("healthcheck") or {}
        if not hc.get("test") or hc.get("disable"):
            probs.append(f"{infra} has no health check")
    for name, svc in services.items():
        for dep, cond in depends_of(svc).items():
            if cond == "service_healthy":
                hc = (services.get(dep) or {}).get("healthcheck") or {}
                if not hc.get("test") or hc.get("disable"):
                    probs.append(f"{name} waits for {dep} to be healthy, but {dep} has no health check")
    if "pg_isready" not in json.dumps((services.get("postgres") or {}).get("healthcheck") or {}):
        probs.append("the postgres health check should use pg_isready")
    return probs


def check_infra_services(inp):
    probs = []
    services = inp.services()
    for name in inp.infra:
        svc = services.get(name)
        if svc is None:
            probs.append(f"scripts/up.sh starts `{name}`, which docker/compose.yaml does not define")
        elif svc.get("profiles"):
            probs.append(f"infrastructure service `{name}` must not be in a profile (up.sh starts it without --profile)")
    pg = services.get("postgres") or {}
    if not str(pg.get("image", "")).startswith("postgres:15"):
        probs.append(f"postgres should run postgres:15, got {pg.get('image')!r}")
    nats_cmd = command_of(services.get("nats") or {})
    for flag in ("-js", "-sd"):
        if flag not in nats_cmd:
            probs.append(f"nats should run with {flag} (JetStream, persisted), command is {nats_cmd}")
    jaeger = services.get("jaeger") or {}
    if not any("16686" in str(p) for p in jaeger.get("ports") or []):
        probs.append("jaeger should publish its UI port 16686")
    return probs


def check_named_volumes(inp):
    probs = []
    declared = set(((inp.compose or {}).get("volumes") or {}).keys())
    for name, svc in inp.services().items():
        for v in svc.get("volumes") or []:
            src = v.get("source") if isinstance(v, dict) else str(v).split(":", 1)[0]
            vtype = v.get("type", "volume") if isinstance(v, dict) else None
            if not src or src.startswith((".", "/", "~", "$")) or vtype == "bind":
                continue
            if src not in declared:
                probs.append(f"{name} mounts volume `{src}`, which is not declared under top-level volumes")
    for infra, where in (("postgres", "/var/lib/postgresql/data"), ("nats", None)):
        vols = [str(v) for v in ((inp.services().get(infra) or {}).get("volumes") or [])]
        named = [v for v in vols if not v.startswith((".", "/")) and (where is None or where in v)]
        if not named:
            probs.append(f"{infra} should keep its data on a named volume")
    return probs


def check_contract_env(inp):
    probs = []
    http_ports, grpc_ports = {}, {}
    for crate in inp.crates:
        svc = app_service(inp, crate)
        if svc is None:
            continue
        env = env_of(svc)
        for var in ("HTTP_ADDR", "GRPC_ADDR", "DATABASE_URL", "NATS_URL", "AUTH_ALLOW_TENANT_HEADER",
                    "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_SERVICE_NAME"):
            if not env.get(var):
                probs.append(f"{crate}: environment lacks {var}")
        host, hport = addr_port(env.get("HTTP_ADDR"))
        ghost, gport = addr_port(env.get("GRPC_ADDR"))
        if host and host != "0.0.0.0" or ghost and ghost != "0.0.0.0":
            probs.append(f"{crate}: in a container HTTP_ADDR/GRPC_ADDR must bind 0.0.0.0")
        dbhost, db = db_of(env.get("DATABASE_URL"))
        if env.get("DATABASE_URL") and dbhost != "postgres":
            probs.append(f"{crate}: DATABASE_URL should point at the postgres service, got {env.get('DATABASE_URL')!r}")
        if env.get("NATS_STREAM_REPLICAS") != "1":
            probs.append(f"{crate}: NATS_STREAM_REPLICAS should be 1 (compose runs one NATS server, which holds "
                         f"one replica), got {env.get('NATS_STREAM_REPLICAS')!r}")
        if env.get("AUTH_ALLOW_TENANT_HEADER") not in (None, "true"):
            probs.append(f"{crate}: AUTH_ALLOW_TENANT_HEADER should be true in local compose")
        otel = env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or ""
        if otel and "otel-collector" not in otel:
            probs.append(f"{crate}: OTEL_EXPORTER_OTLP_ENDPOINT should point at otel-collector, got {otel!r}")
        if crate in CONTRACT:
            want_http, want_grpc, want_db = CONTRACT[crate]
            if (hport, gport, db) != (want_http, want_grpc, want_db):
                probs.append(f"{crate}: contract is HTTP {want_http}, gRPC {want_grpc}, database {want_db}; "
                             f"compose has {hport}, {gport}, {db}")
        for port, seen, kind in ((hport, http_ports, "HTTP"), (gport, grpc_ports, "gRPC")):
            if port is not None and port in seen:
                probs.append(f"{crate} and {seen[port]} share {kind} port {port}")
            elif port is not None:
                seen[port] = crate
        for p in svc.get("ports") or []:
            if not str(p).startswith("127.0.0.1:"):
                probs.append(f"{crate}: publish ports on 127.0.0.1 only, got {p!r}")
    order = env_of(app_service(inp, "order") or {})
    if "order" in inp.crates:
        for var, target, port in (("INVENTORY_GRPC_URL", "inventory", 50052), ("PAYMENT_GRPC_URL", "payment", 50053)):
            # https: the services talk mTLS (GRPC_MTLS on, the development certificates mounted)
            if target in inp.crates and order.get(var) != f"https://{target}:{port}":
                probs.append(f"order: {var} should be https://{target}:{port}, got {order.get(var)!r}")
    return probs


def check_init_sql(inp):
    pg = inp.services().get("postgres") or {}
    sql_files = [str(v).split(":", 1)[0] for v in pg.get("volumes") or [] if str(v).split(":", 1)[0].endswith(".sql")]
    if not sql_files:
        return ["postgres mounts no init .sql into /docker-entrypoint-initdb.d"]
    text = "\n".join(read(os.path.join(inp.docker, f)) or "" for f in sql_files)
    created = set(re.findall(r"create\s+database\s+\"?([A-Za-z0-9_]+)", text, re.I))
    probs = []
    for f in sql_files:
        if read(os.path.join(inp.docker, f)) is None:
            probs.append(f"postgres mounts {f}, which does not exist under docker/")
    for name, svc in inp.services().items():
        _, db = db_of(env_of(svc).get("DATABASE_URL"))
        if db and db not in created:
            probs.append(f"{name} uses database `{db}`, which {', '.join(sql_files)} does not create")
    return probs


def check_otel_config(inp):
    col = inp.services().get("otel-collector") or {}
    mounts = [str(v).split(":", 1)[0] for v in col.get("volumes") or [] if str(v).startswith(".")]
    if not mounts:
        return ["otel-collector mounts no config file"]
    text = read(os.path.join(inp.docker, mounts[0]))
    if text is None:
        return [f"otel-collector config {mounts[0]} does not exist"]
    try:
        cfg = yaml.safe_load(text) or {}
    except yaml.YAMLError as e:
        return [f"otel-collector config does not parse: {e}"]
    probs = []
    if "otlp" not in (cfg.get("receivers") or {}):
        probs.append("otel-collector config has no otlp receiver")
    traces = ((cfg.get("service") or {}).get("pipelines") or {}).get("traces") or {}
    if not traces.get("exporters"):
        probs.append("otel-collector config has no traces pipeline with an exporter")
    for exp in traces.get("exporters") or []:
        endpoint = str(((cfg.get("exporters") or {}).get(exp) or {}).get("endpoint", ""))
        host = re.sub(r"^\w+://", "", endpoint).split(":")[0]
        if host and host not in inp.services():
            probs.append(f"exporter {exp} sends to `{host}`, which is not a compose service")
    return probs


def check_crates_buildable(inp):
    probs = []
    for crate, path in inp.crates.items():
        manifest = parse_toml(read(os.path.join(path, "Cargo.toml")) or "")
        bins = [b.get("name") for b in manifest.get("bin") or []]
        autobins = (manifest.get("package") or {}).get("autobins", True) not in (False, "false")
        has_main = os.path.isfile(os.path.join(path, "src", "main.rs"))
        if not (crate in bins or (has_main and autobins)):
            probs.append(f"services/{os.path.basename(path)}: no binary named `{crate}` "
                         f"(needs src/main.rs or [[bin]] name = \"{crate}\"); the Dockerfile copies target/release/{crate}")
        rel = os.path.relpath(path, inp.root)
        if ignored(ignore_patterns(inp.dockerignore), rel):
            probs.append(f".dockerignore excludes {rel}, so the image cannot build it")
    return probs


def check_dockerignore(inp):
    if inp.dockerignore is None:
        return [".dockerignore is missing at the repository root"]
    pats = ignore_patterns(inp.dockerignore)
    probs = []
    for path in ("target", ".git", ".longship"):
        if not ignored(pats, path):
            probs.append(f".dockerignore should exclude {path}/")
    for path in NEEDED_IN_CONTEXT:
        if ignored(pats, path):
            probs.append(f".dockerignore excludes {path}, which the build needs")
    # The image's toolchain is pinned by its FROM tag; a rust-toolchain.toml in the context
    # would make rustup download components inside the build.
    if inp.toolchain is None:
        probs.append("rust-toolchain.toml is missing at the repository root")
    elif not ignored(pats, "rust-toolchain.toml"):
        probs.append(".dockerignore should exclude rust-toolchain.toml (the FROM tag pins the image's toolchain)")
    return probs


CHECKS = [
    ("compose.yaml parses", check_compose_parses),
    ("service crates discovered under services/", check_crates_found),
    ("a compose service per service crate, built from docker/Dockerfile", check_service_per_crate),
    ("a migration job per service crate, awaited by its service", check_migration_jobs),
    ("services wait for healthy postgres and nats", check_apps_wait_for_infra),
    ("health checks on the infrastructure", check_healthchecks),
    ("the infrastructure up.sh starts exists outside profiles", check_infra_services),
    ("named volumes declared", check_named_volumes),
    ("service environment follows the contract", check_contract_env),
    ("postgres init creates every service database", check_init_sql),
    ("otel collector config exports traces to a compose service", check_otel_config),
    ("Dockerfile: cargo-chef stages, -p ${SERVICE}, distroless non-root", check_dockerfile),
    ("Dockerfile: base images by digest, Rust tag = rust-toolchain.toml, cargo-chef exact", check_pins),
    ("Dockerfile: BuildKit cache mounts for the registry and the target", check_cache_mounts),
    ("every services/* crate is buildable by the Dockerfile", check_crates_buildable),
    (".dockerignore excludes target, .git, .longship", check_dockerignore),
    ("prometheus scrapes every service and loads monitoring/'s rules", check_prometheus),
    ("grafana is provisioned with prometheus and monitoring/'s dashboards", check_grafana),
    ("prometheus and grafana: apps profile, 127.0.0.1", check_monitoring_exposure),
]


# --- negative self-check: each broken input must be caught ------------------------------------
def broken_variants(inp):
    def with_compose(mutate):
        b = copy.copy(inp)
        b.compose = copy.deepcopy(inp.compose)
        mutate(b.compose)
        return b

    # a contract crate, whose ports are checked (a generated service may sort first)
    first = next((c for c in inp.crates if c in CONTRACT), next(iter(inp.crates), "order"))
    job = next(iter(migration_jobs(inp, first)), None)
    extra = copy.copy(inp)
    # a crate nobody has added yet (`just new-service shipping` may have created shipping)
    absent = next(n for n in (f"shipping{i or ''}" for i in range(1000)) if n not in inp.crates)
    extra.crates = dict(inp.crates, **{absent: os.path.join(inp.root, "services", absent)})
    no_target = copy.copy(inp)
    no_target.dockerignore = "\n".join(x for x in (inp.dockerignore or "").splitlines() if "target" not in x)
    no_p = copy.copy(inp)
    no_p.dockerfile = re.sub(r"-p\s+\"?\$\{?SERVICE\}?\"?", "--workspace", inp.dockerfile or "")
    by_tag = copy.copy(inp)
    by_tag.dockerfile = re.sub(r"@sha256:[0-9a-f]{64}", "", inp.dockerfile or "", count=1)
    other_rust = copy.copy(inp)
    other_rust.toolchain = re.sub(r'channel\s*=\s*"[^"]*"', 'channel = "1.96.0"', inp.toolchain or "")
    chef_floating = copy.copy(inp)
    chef_floating.dockerfile = re.sub(r'--version\s+"=\$\{CARGO_CHEF_VERSION\}"', "", inp.dockerfile or "")
    no_mounts = copy.copy(inp)
    no_mounts.dockerfile = re.sub(r"--mount=type=cache,\S+", "", inp.dockerfile or "")
    toolchain_in_context = copy.copy(inp)
    toolchain_in_context.dockerignore = "\n".join(
        x for x in (inp.dockerignore or "").splitlines() if "rust-toolchain" not in x)
    bad_yaml = copy.copy(inp)
    bad_yaml.compose, bad_yaml.compose_error = None, "mapping values are not allowed here"
    return [
        ("a new crate without compose service and migration job", extra, check_service_per_crate),
        ("a crate without binary", extra, check_crates_buildable),
        (f"the migration job of {first} removed",
         with_compose(lambda c: c["services"].pop(job, None)), check_migration_jobs),
        ("postgres health check removed", with_compose(lambda c: c["services"]["postgres"].pop("healthcheck", None)),
         check_healthchecks),
        ("an undeclared named volume", with_compose(lambda c: c.pop("volumes", None)), check_named_volumes),
        (f"{first} on the wrong HTTP port",
         with_compose(lambda c: c["services"][first]["environment"].update(HTTP_ADDR="0.0.0.0:9999")), check_contract_env),
        (f"{first} asking one NATS server for 3 stream replicas",
         with_compose(lambda c: c["services"][first]["environment"].update(NATS_STREAM_REPLICAS="3")),
         check_contract_env),
        ("the Dockerfile building --workspace instead of -p ${SERVICE}", no_p, check_dockerfile),
        (".dockerignore without target", no_target, check_dockerignore),
        (".dockerignore letting rust-toolchain.toml into the context", toolchain_in_context, check_dockerignore),
        ("a base image by tag only", by_tag, check_pins),
        ("rust-toolchain.toml moved to another release than the image", other_rust, check_pins),
        ("cargo-chef without a pinned version", chef_floating, check_pins),
        ("the Dockerfile without cache mounts", no_mounts, check_cache_mounts),
        ("a new crate that prometheus does not scrape", extra, check_prometheus),
        ("prometheus without the rules mount",
         with_compose(lambda c: c["services"]["prometheus"].update(
             volumes=[v for v in c["services"]["prometheus"]["volumes"] if "rules" not in str(v)])), check_prometheus),
        ("grafana without the dashboards mount",
         with_compose(lambda c: c["services"]["grafana"].update(
             volumes=[v for v in c["services"]["grafana"]["volumes"] if "dashboards" not in str(v)])), check_grafana),
        ("compose.yaml that does not parse", bad_yaml, check_compose_parses),
    ]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", default=os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
    ap.add_argument("-v", "--verbose", action="store_true")
    opts = ap.parse_args()
    inp = Inputs(opts.root)
    passed = failed = 0
    if opts.verbose:
        print(f"service crates: {', '.join(inp.crates) or 'none'}; infrastructure from up.sh: {', '.join(inp.infra)}")
    for name, check in CHECKS:
        try:
            probs = check(inp)
        except Exception as e:  # a crash is a failure with its reason, not a traceback
            probs = [f"check crashed: {type(e).__name__}: {e}"]
        if probs:
            failed += 1
            print(f"FAIL  {name}")
            for p in probs:
                print(f"      - {p}")
        else:
            passed += 1
            print(f"ok    {name}")
    if inp.compose is not None:
        for name, variant, check in broken_variants(inp):
            try:
                caught = bool(check(variant))
            except Exception as e:
                caught, name = False, f"{name} (crashed: {type(e).__name__}: {e})"
            if caught:
                passed += 1
                print(f"ok    self-check: {name} is caught")
            else:
                failed += 1
                print(f"FAIL  self-check: {name} is NOT caught")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
