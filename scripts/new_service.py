#!/usr/bin/env python3
"""Generate a new Longship service from templates/service/ (`just new-service NAME`).

Creates services/NAME (a crate wired to the shared libraries, with its tests), proto/NAME/v1,
migrations/NAME and k8s/base/NAME, and adds NAME where the platform lists its services: the proto
module in libs/proto, docker/compose.yaml and its Postgres init script, scripts/lib/common.sh
(`just up`), the k8s base kustomization, both overlays, the mTLS component (its Certificate and
identity mount), the dev Postgres init script, the manifest test's service table and k8s/README.md's
Secret table. It takes the next free HTTP and gRPC ports.

All or nothing: everything is rendered and checked in a staging directory first; only then are the
new folders moved into place and the edited files replaced, each atomically. If anything fails on
the way (including the final `cargo metadata` that records the crate in Cargo.lock) every change is
undone, so the tree is exactly as before. Refusing is idempotent: a bad or taken name changes nothing.

NAME: 2-30 characters, lower-case letters a-z, digits and single dashes, starting with a letter and
not ending with a dash (e.g. `shipping`, `gift-card`); not a name the workspace already uses
(services, libraries, tools, crates in Cargo.lock, databases, streams, compose services), not a
Rust keyword or a module name of the generated crate, not starting with `longship`, and not ending
in -grpc, -migrate, -db, -config or -tls (names derived from services).

With --saga-participant the service is also a participant of the order service's place-order saga
(templates/service/saga-participant/ over the plain template): a `Reserve` command and its
compensation `Cancel` over gRPC, callable by `order` only, idempotent by order id, a tombstone when
the compensation arrives first, typed business refusals, with their tests. The order service gets
the step (services/order/src/steps/NAME.rs, listed in steps.rs) and `just up` passes order the
peer in SAGA_PEERS; adding the step to a saga version is the team's edit (docs/changing-a-saga.md).

Usage: scripts/new_service.py NAME [--saga-participant] [--root DIR] [--dry-run]
Python 3.9+, standard library only. Exit status: 0 created, 1 refused or failed (nothing changed),
2 usage error.
"""

from __future__ import annotations

import os
import sys

# scripts/ holds token.py, which would shadow the standard library's `token` module (imported by
# dataclasses); drop this script's folder from the import path before importing anything else.
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]

import argparse  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import stat  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402

NAME_RULE = (
    "allowed: 2-30 characters, lower-case letters a-z, digits and single dashes, starting with a "
    "letter and not ending with a dash (e.g. shipping, gift-card)"
)
NAME_RE = re.compile(r"^[a-z][a-z0-9]*(?:-[a-z0-9]+)*$")
RESERVED_SUFFIXES = ("-grpc", "-migrate", "-db", "-config", "-tls")
# Rust keywords (2024 edition, strict and reserved) and the built-in crates: NAME becomes a module
# (`longship_proto::NAME`) and a crate name.
RUST_RESERVED = set(
    """as async await break const continue crate dyn else enum extern false fn for gen if impl in let
    loop match mod move mut pub ref return self static struct super trait true type unsafe use where
    while abstract become box do final macro override priv try typeof unsized virtual yield
    std core alloc proc_macro test""".split()
)
# Names of the infrastructure and of things every service derives its names from.
INFRA_NAMES = {"postgres", "nats", "otel-collector", "jaeger", "shared", "deadletter", "template0",
               "template1", "longship", "longship-app", "services", "libs", "tools", "proto"}
# Module names of the generated crate and its tests (templates/service): a crate of the same name
# would be ambiguous with them in `use` paths.
TEMPLATE_MODULES = {"config", "domain", "events", "grpc", "http", "store", "helpers", "items", "tenancy",
                    "reservations", "saga_step", "steps"}
# Ports never handed out (infrastructure that `just up` / compose publishes on localhost).
RESERVED_PORTS = {4222, 4317, 4318, 5432, 8222, 16686}

TEMPLATE_DIR = Path("templates/service")
# The saga participant's overlay: files/ and snippets/ add to the plain template's (where a shared file
# differs, it has a `{{#participant}}` section), order/ is the order service's step.
PARTICIPANT_DIR = TEMPLATE_DIR / "saga-participant"
ORDER_STEPS = Path("services/order/src/steps")
PLACEHOLDER_RE = re.compile(r"\{\{\s*([A-Za-z_]+)\s*\}\}")
SECTION_RE = re.compile(r"\{\{([#^/])\s*([A-Za-z_]+)\s*\}\}")
ARRAY_RE = r"^{var}=\(([^)\n]*)\)$"


class Refused(Exception):
    """The generator refuses (bad name, name taken, layout it cannot edit). Nothing was changed."""


# --------------------------------------------------------------------------------------------
# Names
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Names:
    name: str          # gift-card: crate, binary, folders, k8s objects, compose services
    name_snake: str    # gift_card: Rust crate/module, proto package, database, subjects
    Name: str          # GiftCard: Rust types
    NAME: str          # GIFT_CARD: JetStream stream

    @staticmethod
    def of(name: str) -> "Names":
        parts = name.split("-")
        return Names(name, "_".join(parts), "".join(p[:1].upper() + p[1:] for p in parts),
                     "_".join(parts).upper())


def check_name_syntax(name: str) -> None:
    if not (2 <= len(name) <= 30) or not NAME_RE.match(name):
        raise Refused(f"invalid service name {name!r}; {NAME_RULE}")
    if name.endswith(RESERVED_SUFFIXES):
        raise Refused(f"invalid service name {name!r}: names ending in {', '.join(RESERVED_SUFFIXES)} "
                      f"clash with objects derived from other services' names; {NAME_RULE}")
    if name.replace("-", "_") in RUST_RESERVED:
        raise Refused(f"invalid service name {name!r}: it is a Rust keyword or built-in crate; {NAME_RULE}")
    if name.startswith("longship"):
        raise Refused(f"invalid service name {name!r}: the longship prefix is kept for the platform's "
                      f"libraries; {NAME_RULE}")


def read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def package_name(manifest: Path) -> str | None:
    m = re.search(r'^\[package\][^\[]*?^name\s*=\s*"([^"]+)"', read(manifest), re.M | re.S)
    return m.group(1) if m else None


def taken_names(root: Path) -> dict[str, str]:
    """Every name in use, normalised (dashes as underscores) -> what uses it."""
    taken: dict[str, str] = {}

    def add(name: str, what: str) -> None:
        taken.setdefault(name.replace("-", "_"), what)

    for folder, kind in (("services", "an existing service"), ("libs", "a library"), ("tools", "a tool")):
        base = root / folder
        for d in sorted(base.iterdir()) if base.is_dir() else []:
            if d.is_dir():
                add(d.name, f"{kind} ({folder}/{d.name})")
                manifest = d / "Cargo.toml"
                if manifest.is_file() and (pkg := package_name(manifest)):
                    add(pkg, f"{kind} (package {pkg} in {folder}/{d.name})")
    lock = root / "Cargo.lock"
    if lock.is_file():
        for pkg in re.findall(r'^name = "([^"]+)"', read(lock), re.M):
            add(pkg, f"the crate `{pkg}` in Cargo.lock")
    for folder in ("proto", "migrations", "k8s/base"):
        base = root / folder
        for d in sorted(base.iterdir()) if base.is_dir() else []:
            if d.is_dir():
                add(d.name, f"{folder}/{d.name}")
    for config in sorted(root.glob("services/*/src/config.rs")):
        for db in re.findall(r'^\s*database:\s*"([^"]+)"', read(config), re.M):
            add(db, f"the database `{db}` ({config.relative_to(root)})")
    for lib in sorted(root.glob("services/*/src/lib.rs")):
        for subject in re.findall(r'subject_root:\s*"([^"]+)"', read(lib)):
            add(subject, f"the event subjects `{subject}.>` ({lib.relative_to(root)})")
    compose = root / "docker" / "compose.yaml"
    if compose.is_file():
        for svc in re.findall(r"^  ([a-z0-9][a-z0-9-]*):\s*$", read(compose), re.M):
            add(svc, f"the compose service `{svc}` (docker/compose.yaml)")
    for infra in INFRA_NAMES:
        add(infra, "infrastructure or a platform folder")
    for module in TEMPLATE_MODULES:
        add(module, f"the module `{module}` every generated service has")
    return taken


def check_name_free(root: Path, names: Names) -> None:
    what = taken_names(root).get(names.name_snake)
    if what:
        raise Refused(f"the name {names.name!r} is taken: it clashes with {what}. Pick another name; "
                      f"{NAME_RULE}")


# --------------------------------------------------------------------------------------------
# Ports
# --------------------------------------------------------------------------------------------

def used_ports(root: Path) -> tuple[set[int], set[int]]:
    http: set[int] = set()
    grpc: set[int] = set()
    for config in root.glob("services/*/src/config.rs"):
        text = read(config)
        http |= {int(p) for p in re.findall(r"\bhttp_port:\s*(\d+)", text)}
        grpc |= {int(p) for p in re.findall(r"\bgrpc_port:\s*(\d+)", text)}
    compose = root / "docker" / "compose.yaml"
    if compose.is_file():
        text = read(compose)
        http |= {int(p) for p in re.findall(r"HTTP_ADDR:\s*\S+:(\d+)", text)}
        grpc |= {int(p) for p in re.findall(r"GRPC_ADDR:\s*\S+:(\d+)", text)}
    common = root / "scripts" / "lib" / "common.sh"
    if common.is_file():
        for port in re.findall(r"echo \$\(\((\d+) \+ PORT_OFFSET\)\)", read(common)):
            (grpc if int(port) >= 50000 else http).add(int(port))
    return http, grpc


def next_free(used: set[int], floor: int) -> int:
    port = max(used | {floor - 1}) + 1
    while port in RESERVED_PORTS or port in used:
        port += 1
    return port


# --------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------

def render(text: str, values: dict[str, str], where: str, sections: dict[str, bool] | None = None) -> str:
    """Fills the placeholders. Before that, keeps or drops the sections: `{{#participant}}…{{/participant}}`
    stays only where `sections["participant"]` is true, `{{^participant}}…{{/participant}}` only where it
    is false; a tag alone on its line takes the line with it. Sections do not nest."""
    sections = sections or {}
    kept: list[str] = []
    pos, open_key, keep = 0, None, True
    for m in SECTION_RE.finditer(text):
        kind, key = m.groups()
        tag = f"{{{{{kind}{key}}}}}"
        if key not in sections:
            raise Refused(f"template {where} uses an unknown section {tag}")
        start, end = m.start(), m.end()
        line_start = text.rfind("\n", 0, start) + 1
        line_end = text.find("\n", end)
        line_end = len(text) if line_end == -1 else line_end + 1
        if not text[line_start:start].strip() and not text[end:line_end].strip():
            start, end = line_start, line_end
        if keep:
            kept.append(text[pos:start])
        pos = end
        if kind == "/":
            if open_key != key:
                raise Refused(f"template {where}: {tag} closes {'nothing' if open_key is None else open_key}")
            open_key, keep = None, True
        else:
            if open_key is not None:
                raise Refused(f"template {where}: {tag} inside the {open_key} section (sections do not nest)")
            open_key, keep = key, sections[key] == (kind == "#")
    if open_key is not None:
        raise Refused(f"template {where}: the {open_key} section is not closed")
    kept.append(text[pos:])

    def sub(m: re.Match[str]) -> str:
        key = m.group(1)
        if key not in values:
            raise Refused(f"template {where} uses an unknown placeholder {{{{{key}}}}}")
        return values[key]
    return PLACEHOLDER_RE.sub(sub, "".join(kept))


@dataclass
class Edit:
    """A change to an existing file: its new content, computed before anything is written."""
    path: Path
    original: bytes
    new: str
    what: str


@dataclass
class Plan:
    new_dirs: list[Path] = field(default_factory=list)       # relative, top folders created
    new_files: list[Path] = field(default_factory=list)      # relative, every file created
    edits: dict[Path, Edit] = field(default_factory=dict)    # relative path -> edit
    placed: list[Path] = field(default_factory=list)         # relative, new files in existing folders


class Editor:
    """Accumulates edits of existing files in memory (several edits per file are fine)."""

    def __init__(self, root: Path, plan: Plan, values: dict[str, str], participant: bool = False):
        self.root, self.plan, self.values = root, plan, values
        self.sections = {"participant": participant}
        self.layers = [root / TEMPLATE_DIR / "snippets"] + ([root / PARTICIPANT_DIR / "snippets"] if participant else [])

    def _current(self, rel: str) -> str:
        path = Path(rel)
        if path not in self.plan.edits:
            full = self.root / path
            if not full.is_file():
                raise Refused(f"{rel} does not exist; cannot add the service to it")
            raw = full.read_bytes()
            self.plan.edits[path] = Edit(path, raw, raw.decode("utf-8"), "")
        return self.plan.edits[path].new

    def _set(self, rel: str, text: str, what: str) -> None:
        edit = self.plan.edits[Path(rel)]
        edit.new = text
        edit.what = f"{edit.what}; {what}" if edit.what else what

    def snippet(self, name: str) -> str:
        found = [layer / f"{name}.tmpl" for layer in self.layers if (layer / f"{name}.tmpl").is_file()]
        if len(found) != 1:
            where = " and ".join(str(p.relative_to(self.root)) for p in found) or f"snippets/{name}.tmpl"
            raise Refused(f"{where}: expected one snippet {name} (a participant's difference is a "
                          f"{{{{#participant}}}} section of the plain one)")
        return render(read(found[0]), self.values, str(found[0].relative_to(self.root)), self.sections)

    def above_marker(self, rel: str, tag: str, snippet: str, what: str) -> None:
        """Inserts a snippet right above the line carrying `new-service:<tag>`."""
        text = self._current(rel)
        lines = text.splitlines(keepends=True)
        hits = [i for i, line in enumerate(lines) if f"new-service:{tag}" in line]
        if len(hits) != 1:
            raise Refused(f"{rel}: expected exactly one marker line containing `new-service:{tag}`, found "
                          f"{len(hits)}. Put the marker back where new entries belong (see "
                          f"docs/adding-a-service.md), then run again")
        lines.insert(hits[0], self.snippet(snippet))
        self._set(rel, "".join(lines), what)

    def append(self, rel: str, snippet: str, what: str) -> None:
        text = self._current(rel)
        if text and not text.endswith("\n"):
            text += "\n"
        self._set(rel, text + self.snippet(snippet), what)

    def after_last(self, rel: str, pattern: str, snippet: str, what: str, required: bool) -> bool:
        text = self._current(rel)
        matches = list(re.finditer(pattern, text, re.M))
        if not matches:
            if required:
                raise Refused(f"{rel}: no line matches {pattern!r}")
            return False
        end = matches[-1].end()
        self._set(rel, text[:end] + self.snippet(snippet) + text[end:], what)
        return True

    def shell_array(self, rel: str, var: str, name: str, first: bool, what: str) -> None:
        text = self._current(rel)
        pattern = re.compile(ARRAY_RE.format(var=re.escape(var)), re.M)
        matches = list(pattern.finditer(text))
        if len(matches) != 1:
            raise Refused(f"{rel}: expected one line `{var}=(...)`, found {len(matches)}")
        items = matches[0].group(1).split()
        items = [name, *items] if first else [*items, name]
        line = f"{var}=({' '.join(items)})"
        self._set(rel, text[:matches[0].start()] + line + text[matches[0].end():], what)


def template_files(root: Path, participant: bool) -> dict[Path, Path]:
    """Template path (relative, placeholders unrendered) -> source file: templates/service/files,
    and the saga participant's own files beside them when asked. The participant's files only add:
    where it differs from a plain service inside a file, that file has a `{{#participant}}` section."""
    layers = [root / TEMPLATE_DIR / "files"] + ([root / PARTICIPANT_DIR / "files"] if participant else [])
    sources: dict[Path, Path] = {}
    for layer in layers:
        if not layer.is_dir():
            raise Refused(f"{layer.relative_to(root)} is missing: the service template is not in this checkout")
        for src in sorted(layer.rglob("*")):
            if src.is_file():
                rel = src.relative_to(layer)
                if rel in sources:
                    raise Refused(f"{src.relative_to(root)} repeats {sources[rel].relative_to(root)}: put the "
                                  f"participant's difference in a {{{{#participant}}}} section of the plain file")
                sources[rel] = src
    return dict(sorted(sources.items()))


def plan_new_files(root: Path, stage: Path, values: dict[str, str], plan: Plan,
                   participant: bool = False) -> list[Path]:
    """Renders the service template into the staging directory; returns the Rust files."""
    rust: list[Path] = []
    tops: set[Path] = set()
    for rel_template, src in template_files(root, participant).items():
        rel = Path(render(str(rel_template), values, str(rel_template)))
        if rel.suffix == ".tmpl":
            rel = rel.with_suffix("")
        where = str(src.relative_to(root))
        dest = stage / "new" / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(render(read(src), values, where, {"participant": participant}), encoding="utf-8")
        shutil.copymode(src, dest)
        plan.new_files.append(rel)
        # the first folder that does not exist yet is what moves into place
        parts = rel.parts
        for i in range(1, len(parts)):
            candidate = Path(*parts[:i])
            if not (root / candidate).exists():
                tops.add(candidate)
                break
        else:
            raise Refused(f"{rel} would be created in an existing folder; the template must only "
                          f"create new folders")
        if rel.suffix == ".rs":
            rust.append(dest)
    for top in sorted(tops):
        if (root / top).exists():
            raise Refused(f"{top} already exists")
    plan.new_dirs = sorted(tops)
    return rust


def plan_edits(root: Path, names: Names, values: dict[str, str], plan: Plan, participant: bool = False) -> None:
    ed = Editor(root, plan, values, participant)
    n = names.name
    ed.above_marker("libs/proto/src/lib.rs", "proto-modules", "proto-module.rs",
                    f"module longship_proto::{names.name_snake}")
    ed.above_marker("docker/compose.yaml", "compose-migrations", "compose-migration.yaml", f"service {n}-migrate")
    ed.above_marker("docker/compose.yaml", "compose-services", "compose-service.yaml", f"service {n}")
    ed.append("docker/postgres/init.sql", "compose-init-database.sql", f"database {names.name_snake}")
    ed.above_marker("docker/prometheus/prometheus.yml", "prometheus-targets", "prometheus-target.yaml",
                    f"Prometheus scrape target {n}")
    ed.shell_array("scripts/lib/common.sh", "LONGSHIP_SERVICES", n, True, f"{n} in LONGSHIP_SERVICES")
    ed.shell_array("scripts/lib/common.sh", "LONGSHIP_STOP_ORDER", n, False, "LONGSHIP_STOP_ORDER")
    ed.above_marker("scripts/lib/common.sh", "http-ports", "common-http-port.sh", f"HTTP port {values['http_port']}")
    ed.above_marker("scripts/lib/common.sh", "grpc-ports", "common-grpc-port.sh", f"gRPC port {values['grpc_port']}")
    ed.above_marker("scripts/lib/common.sh", "databases", "common-database.sh", f"database {names.name_snake}")
    ed.above_marker("k8s/base/kustomization.yaml", "k8s-base", "k8s-base.yaml", f"resource {n}")
    ed.above_marker("k8s/overlays/dev/kustomization.yaml", "dev-images", "dev-image.yaml", f"image longship/{n}:dev")
    ed.above_marker("k8s/overlays/dev/kustomization.yaml", "dev-db-secrets", "dev-db-secret.yaml", f"Secret {n}-db")
    ed.above_marker("k8s/overlays/dev/postgres/init-databases.sh", "dev-databases", "dev-database.sql",
                    f"database {names.name_snake}")
    ed.above_marker("k8s/overlays/prod/kustomization.yaml", "prod-images", "prod-image.yaml",
                    f"image longship/{n}:{values['prod_tag']}")
    ed.append("docs/errors.md", "errors-catalogue.md", f"error codes of {n} in docs/errors.md")
    ed.append("k8s/components/mtls/certificates.yaml", "mtls-certificate.yaml", f"Certificate {n}-identity")
    ed.above_marker("k8s/components/mtls/kustomization.yaml", "mtls-mounts", "mtls-mount-patch.yaml",
                    f"the {n}-identity mount")
    ed.append("k8s/components/postgres-ha/databases.yaml", "postgres-ha-database.yaml", f"Database {names.name_snake}")
    ed.above_marker("k8s/components/postgres-ha/kustomization.yaml", "postgres-ha-databases", "postgres-ha-patch.yaml",
                    f"{n}'s database on longship-pg-rw")
    ed.above_marker("k8s/tests/check_manifests.py", "check-services", "check-service.py", f"{n} in SERVICES")
    ed.above_marker("k8s/tests/check_manifests.py", "check-external-secrets", "check-external-secret.py",
                    f"{n}-db in EXTERNAL_SECRETS")
    if (root / "k8s/README.md").is_file():
        ed.after_last("k8s/README.md", r"^\| `[a-z0-9-]+-db` \|.*\n", "k8s-readme-secret.md",
                      f"Secret {n}-db in the production table", required=False)


def plan_participant(root: Path, stage: Path, names: Names, values: dict[str, str], plan: Plan) -> list[Path]:
    """The saga participant's additions outside its own folders: the order service's step module
    (a new file in services/order/src/steps/, listed in steps.rs) and the peer `just up` passes to
    order. Returns the staged Rust file."""
    ed = Editor(root, plan, values, participant=True)
    ed.above_marker("services/order/src/steps.rs", "saga-steps", "order-step-mod.rs",
                    f"module steps::{names.name_snake} (the saga step)")
    ed.shell_array("scripts/lib/common.sh", "LONGSHIP_SAGA_PEERS", names.name, False,
                   f"{names.name} in LONGSHIP_SAGA_PEERS (order's SAGA_PEERS)")
    rel = ORDER_STEPS / f"{names.name_snake}.rs"
    if (root / rel).exists():
        raise Refused(f"{rel} already exists")
    src = root / PARTICIPANT_DIR / "order" / "step.rs.tmpl"
    if not src.is_file():
        raise Refused(f"{src.relative_to(root)} is missing: the service template is not in this checkout")
    dest = stage / "placed" / rel
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(render(read(src), values, str(src.relative_to(root)), {"participant": True}), encoding="utf-8")
    plan.placed.append(rel)
    return [dest]


def prod_tag(root: Path) -> str:
    path = root / "k8s/overlays/prod/kustomization.yaml"
    tags = re.findall(r"^\s*newTag:\s*(\S+)\s*$", read(path), re.M) if path.is_file() else []
    return tags[-1] if tags else "0.1.0"


def host_platform_args() -> list[str]:
    """`--filter-platform <host triple>` from `rustc -vV`, or nothing if rustc cannot say."""
    rustc = shutil.which("rustc")
    if rustc is None:
        return []
    try:
        out = subprocess.run([rustc, "-vV"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return []
    for line in out.splitlines():
        if line.startswith("host: "):
            return ["--filter-platform", line.removeprefix("host: ").strip()]
    return []


def rustfmt(files: list[Path]) -> str | None:
    """Formats the generated Rust the way `cargo fmt` will check it. Returns a note when skipped."""
    if not files:
        return None
    exe = shutil.which("rustfmt")
    if exe is None:
        return "rustfmt not found: the generated Rust was not re-formatted (run `just fmt`)"
    proc = subprocess.run([exe, "--edition", "2024", *map(str, files)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise Refused(f"rustfmt failed on the generated code (a template bug):\n{proc.stderr.strip()}")
    return None


# --------------------------------------------------------------------------------------------
# Commit and rollback
# --------------------------------------------------------------------------------------------

def write_atomically(path: Path, data: bytes, mode: int | None) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        if mode is not None:
            os.chmod(tmp, stat.S_IMODE(mode))
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def commit(root: Path, stage: Path, plan: Plan, update_lock: bool) -> list[str]:
    """Moves everything into place; on any failure undoes what was done and re-raises."""
    moved: list[Path] = []
    placed: list[Path] = []
    made_dirs: list[Path] = []
    replaced: list[Edit] = []
    lock = root / "Cargo.lock"
    lock_before = lock.read_bytes() if lock.is_file() else None
    notes: list[str] = []
    fail_after = int(os.environ.get("LONGSHIP_NEW_SERVICE_FAIL_AFTER", "-1"))  # test hook
    steps = 0

    def step() -> None:
        nonlocal steps
        if steps == fail_after:
            raise RuntimeError(f"injected failure after {steps} step(s) (LONGSHIP_NEW_SERVICE_FAIL_AFTER)")
        steps += 1

    try:
        for top in plan.new_dirs:
            step()
            target = root / top
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.exists():
                raise Refused(f"{top} appeared while generating; not overwriting it")
            os.rename(stage / "new" / top, target)
            moved.append(top)
        for rel in plan.placed:
            step()
            target = root / rel
            missing = [p for p in [target.parent, *target.parent.parents] if not p.exists()]
            for d in reversed(missing):
                d.mkdir()
                made_dirs.append(d)
            with open(target, "xb") as f:  # never overwrites
                f.write((stage / "placed" / rel).read_bytes())
            placed.append(rel)
        for edit in plan.edits.values():
            step()
            full = root / edit.path
            if full.read_bytes() != edit.original:
                raise Refused(f"{edit.path} changed while generating; run again")
            write_atomically(full, edit.new.encode("utf-8"), full.stat().st_mode)
            replaced.append(edit)
        step()
        if update_lock:
            cargo = shutil.which("cargo")
            if cargo is None:
                notes.append("cargo not found: Cargo.lock gets the new crate on your first build")
            else:
                # Only this machine's platform: a build downloads the crates of its own platform,
                # so a full `cargo metadata` (every platform) would need others (e.g. Android's)
                # that were never fetched. Offline first; the registry if something is missing.
                base = [cargo, "metadata", "--format-version", "1", *host_platform_args()]
                proc = subprocess.run([*base, "--offline"], cwd=root, capture_output=True, text=True)
                if proc.returncode != 0:
                    proc = subprocess.run(base, cwd=root, capture_output=True, text=True)
                if proc.returncode != 0:
                    raise Refused("`cargo metadata` failed on the generated workspace, so nothing was kept:\n"
                                  + proc.stderr.strip())
        return notes
    except BaseException:
        problems = []
        for edit in reversed(replaced):
            try:
                full = root / edit.path
                write_atomically(full, edit.original, full.stat().st_mode)
            except OSError as e:  # pragma: no cover - reported, never silent
                problems.append(f"could not restore {edit.path}: {e}")
        for top in reversed(moved):
            try:
                shutil.rmtree(root / top)
            except OSError as e:  # pragma: no cover
                problems.append(f"could not remove {top}: {e}")
        for rel in reversed(placed):
            try:
                (root / rel).unlink()
            except OSError as e:  # pragma: no cover
                problems.append(f"could not remove {rel}: {e}")
        for d in reversed(made_dirs):
            try:
                d.rmdir()
            except OSError as e:  # pragma: no cover
                problems.append(f"could not remove {d}: {e}")
        if lock_before is not None and lock.is_file() and lock.read_bytes() != lock_before:
            write_atomically(lock, lock_before, lock.stat().st_mode)
        for p in problems:
            print(f"error: {p}", file=sys.stderr)
        raise


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------

def generate(root: Path, name: str, dry_run: bool, update_lock: bool, participant: bool = False) -> int:
    check_name_syntax(name)
    names = Names.of(name)
    check_name_free(root, names)
    http_used, grpc_used = used_ports(root)
    http_port, grpc_port = next_free(http_used, 8080), next_free(grpc_used, 50051)
    values = {
        "name": names.name, "name_snake": names.name_snake, "Name": names.Name, "NAME": names.NAME,
        "http_port": str(http_port), "grpc_port": str(grpc_port), "prod_tag": prod_tag(root),
    }
    plan = Plan()
    notes: list[str] = []
    # Staged next to the tree so the final moves are renames within one filesystem.
    stage = Path(tempfile.mkdtemp(prefix=".new-service-", dir=root))
    try:
        rust = plan_new_files(root, stage, values, plan, participant)
        plan_edits(root, names, values, plan, participant)
        if participant:
            rust += plan_participant(root, stage, names, values, plan)
        staged_proto = stage / "edits" / "proto_lib.rs"
        staged_proto.parent.mkdir(parents=True)
        proto_edit = plan.edits[Path("libs/proto/src/lib.rs")]
        staged_proto.write_text(proto_edit.new, encoding="utf-8")
        note = rustfmt([*rust, staged_proto])
        if note:
            notes.append(note)
        proto_edit.new = staged_proto.read_text(encoding="utf-8")
        if dry_run:
            print(f"dry run: would create {', '.join(map(str, [*plan.new_dirs, *plan.placed]))} and edit "
                  f"{', '.join(str(p) for p in plan.edits)} (HTTP {http_port}, gRPC {grpc_port})")
            return 0
        notes += commit(root, stage, plan, update_lock)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    # Committed: from here on nothing may claim that the tree is unchanged.
    try:
        report(names, http_port, grpc_port, plan, notes, participant)
    except BrokenPipeError:  # e.g. piped into `head`; the service exists all the same
        sys.stdout = open(os.devnull, "w")
    return 0


def report(names: Names, http_port: int, grpc_port: int, plan: Plan, notes: list[str],
           participant: bool = False) -> None:
    n = names.name
    print(f"Created service `{n}` (HTTP {http_port}, gRPC {grpc_port}, database {names.name_snake}, "
          f"stream {names.NAME}):")
    print()
    width = max(len(str(p)) + 1 for p in [*plan.new_dirs, *plan.edits, *plan.placed]) + 2
    print("  created:")
    for top in plan.new_dirs:
        count = sum(1 for f in plan.new_files if f.parts[:len(top.parts)] == top.parts)
        print(f"    {str(top) + '/':<{width}}{count} file{'s' if count != 1 else ''}")
    for rel in plan.placed:
        print(f"    {str(rel):<{width}}the saga step (Reserve, compensated by Cancel)")
    print("  changed:")
    for path, edit in plan.edits.items():
        print(f"    {str(path):<{width}}{edit.what}")
    for note in notes:
        print(f"  note: {note}")
    print()
    print("Next:")
    print(f"  1. Record its event schemas and OpenAPI document (schemas/events/{n}/, openapi/{n}.json), "
          f"then run its tests (real Postgres and NATS):  just snapshots && cargo nextest run -p {n}")
    print(f"  2. Start it with the platform:  just up   (then: curl -s -X POST localhost:{http_port}/v1/items "
          f"-H 'X-Tenant-Id: acme' -H 'Content-Type: application/json' -d '{{\"name\":\"first\"}}')")
    print(f"  3. Make it yours: replace the example `item` in proto/{n}, migrations/{n} and services/{n}/src, "
          f"then commit everything, Cargo.lock included (docs/adding-a-service.md: what else to do by hand)")
    if participant:
        print(f"  4. Add the step to a new version of the place-order saga (two edits in services/order/src, "
              f"then SAGA_PEERS={n}=https://host:{grpc_port} for order): docs/changing-a-saga.md")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="just new-service",
        description="Generate a new service from templates/service/ (all or nothing).",
        epilog=f"NAME: {NAME_RULE}.",
    )
    ap.add_argument("name", metavar="NAME")
    ap.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[1],
                    help="repository root (default: this script's repository)")
    ap.add_argument("--dry-run", action="store_true", help="check and render, change nothing")
    ap.add_argument("--saga-participant", action="store_true",
                    help="a participant of the place-order saga: Reserve/Cancel over gRPC for order, "
                         "and the step for order (docs/changing-a-saga.md)")
    ap.add_argument("--no-lock-update", action="store_true",
                    help="do not run `cargo metadata` to record the crate in Cargo.lock")
    opts = ap.parse_args(argv)
    root = opts.root.resolve()
    try:
        return generate(root, opts.name, opts.dry_run, not opts.no_lock_update, opts.saga_participant)
    except Refused as e:
        print(f"error: {e}", file=sys.stderr)
        print("nothing was changed.", file=sys.stderr)
        return 1
    except Exception as e:  # any other failure: commit() has already restored the tree
        print(f"error: {type(e).__name__}: {e}", file=sys.stderr)
        print("nothing was changed.", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
