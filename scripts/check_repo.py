#!/usr/bin/env python3
"""Checks of the files every repository has, run by `just lint` (offline, standard library only).

- LICENSE is the Apache License 2.0 text exactly (the license Cargo.toml declares);
- rust-toolchain.toml pins an exact release with rustfmt and clippy, not older than the
  workspace's rust-version, and (where rustup exists) one that is installed: a toolchain that is
  not would be downloaded, which fails offline;
- CONTRIBUTING.md names only recipes that exist and shows how to run one test;
- SECURITY.md says how to report, what is in scope and which versions are supported;
- CHANGELOG.md follows Keep a Changelog with a non-empty Unreleased section;
- .github/dependabot.yml updates cargo, github-actions and docker;
- the documentation describes the product, not its development history (no issue numbers,
  "this round", "earlier sessions").

Each check first meets broken copies of its input (a check that cannot fail fails the run).
Prints `N passed, M failed`; exits 1 on any failure.
Usage: python3 scripts/check_repo.py [--root REPO]
"""

import argparse
import glob
import hashlib
import os
import re
import shutil
import subprocess
import sys

# sha256 of the Apache License 2.0 text as the ASF publishes it (LICENSE-2.0.txt), which is also
# Debian's /usr/share/common-licenses/Apache-2.0.
APACHE_2_SHA256 = "cfc7749b96f63bd31c3c42b5c471bf756814053e847c10f3eb003417bc523d30"
DEBIAN_APACHE = "/usr/share/common-licenses/Apache-2.0"

# Development history that does not belong in product documentation.
HISTORY = re.compile(
    r"\bissue\s+#?\d+|\b(this|that|next|last|first|second|third)\s+round\b|\bround\s+\d+\b"
    r"|\b(this|earlier|previous|last|an earlier|a previous)\s+sessions?\b|\bsprint\s+\d+",
    re.I,
)
# Where history is allowed: the measurement log and the changelog. The README's performance
# section cites its dated runs too, so that section alone is left out of README.md.
HISTORY_EXEMPT = {"docs/performance.md", "CHANGELOG.md"}
HISTORY_EXEMPT_SECTIONS = {"README.md": "Performance"}


def read(root, rel):
    try:
        with open(os.path.join(root, rel), encoding="utf-8") as f:
            return f.read()
    except OSError:
        return None


class Repo:
    """The inputs, read once; the self-checks replace fields with broken copies."""

    def __init__(self, root):
        self.root = root
        self.license = read(root, "LICENSE")
        self.cargo = read(root, "Cargo.toml") or ""
        self.toolchain = read(root, "rust-toolchain.toml")
        self.contributing = read(root, "CONTRIBUTING.md")
        self.security = read(root, "SECURITY.md")
        self.changelog = read(root, "CHANGELOG.md")
        self.dependabot = read(root, ".github/dependabot.yml")
        self.recipes = just_recipes(root)
        self.installed_toolchains = rustup_toolchains()
        self.docs = {rel: read(root, rel) or "" for rel in doc_files(root)}


def just_recipes(root):
    """The recipe names `just --summary` lists (None when just is not installed)."""
    if not shutil.which("just"):
        return None
    proc = subprocess.run(["just", "--summary"], cwd=root, capture_output=True, text=True, check=False)
    return set(proc.stdout.split()) if proc.returncode == 0 else None


def rustup_toolchains():
    """Installed rustup toolchains (names without the host triple), or None without rustup."""
    if not shutil.which("rustup"):
        return None
    proc = subprocess.run(["rustup", "toolchain", "list"], capture_output=True, text=True, check=False)
    names = set()
    for line in proc.stdout.splitlines():
        full = line.split()[0] if line.split() else ""
        names.add(full)
        names.add(re.sub(r"-(x86_64|aarch64|i686|armv7|riscv64gc)-.*$", "", full))
    return names


def doc_files(root):
    pats = ["*.md", "docs/*.md", "docs/adr/*.md", "k8s/*.md", "libs/*/README.md", "tests/*/README.md",
            "monitoring/**/*.md", "monitoring/prometheus/rules/*.yml"]
    out = set()
    for p in pats:
        out.update(os.path.relpath(f, root) for f in glob.glob(os.path.join(root, p), recursive=True))
    return sorted(out)


def version_tuple(v):
    return tuple(int(x) for x in re.findall(r"\d+", v)[:3])


# --- checks -----------------------------------------------------------------------------------
def check_license(repo):
    if repo.license is None:
        return ["LICENSE is missing"]
    probs = []
    digest = hashlib.sha256(repo.license.encode("utf-8")).hexdigest()
    if digest != APACHE_2_SHA256:
        probs.append(f"LICENSE is not the Apache License 2.0 text exactly (sha256 {digest[:16]}...); "
                     f"copy it from {DEBIAN_APACHE} or the ASF's LICENSE-2.0.txt")
    if not re.search(r'^\s*license\s*=\s*"Apache-2\.0"', repo.cargo, re.M):
        probs.append('Cargo.toml [workspace.package] should say license = "Apache-2.0", as LICENSE does')
    return probs


def check_toolchain(repo):
    if repo.toolchain is None:
        return ["rust-toolchain.toml is missing"]
    probs = []
    m = re.search(r'^\s*channel\s*=\s*"([^"]+)"', repo.toolchain, re.M)
    channel = m.group(1) if m else None
    if not channel or not re.fullmatch(r"\d+\.\d+\.\d+", channel):
        probs.append(f"rust-toolchain.toml should pin an exact release (channel = \"X.Y.Z\"), got {channel!r}")
    comps = re.search(r"^\s*components\s*=\s*\[([^\]]*)\]", repo.toolchain, re.M)
    listed = set(re.findall(r'"([^"]+)"', comps.group(1))) if comps else set()
    for want in ("rustfmt", "clippy"):
        if want not in listed:
            probs.append(f"rust-toolchain.toml should list the {want} component (just lint uses it)")
    floor = re.search(r'^\s*rust-version\s*=\s*"([^"]+)"', repo.cargo, re.M)
    if channel and floor and version_tuple(channel) < version_tuple(floor.group(1)):
        probs.append(f"rust-toolchain.toml channel {channel} is older than the workspace rust-version {floor.group(1)}")
    if channel and repo.installed_toolchains is not None and channel not in repo.installed_toolchains:
        probs.append(f"toolchain {channel} is not installed here (rustup would download it; offline that fails): "
                     f"rustup toolchain install {channel} --component rustfmt,clippy")
    return probs


def check_contributing(repo):
    text = repo.contributing
    if text is None:
        return ["CONTRIBUTING.md is missing"]
    probs = []
    if repo.recipes is not None:
        named = set(re.findall(r"`just ([a-z][a-z0-9-]*)", text))
        named |= {n for cell in re.findall(r"^\| `just ([^|]*)\|", text, re.M)
                  for n in re.findall(r"([a-z][a-z0-9-]*)`?(?: /|$)", "just " + cell)}
        named |= set(re.findall(r"`(test-[a-z-]+)`", text))
        for name in sorted(named - repo.recipes - {"just"}):
            probs.append(f"CONTRIBUTING.md names `just {name}`, which is not a recipe (just --summary)")
    if not re.search(r"cargo nextest run -p \S+ -E 'test\(", text):
        probs.append("CONTRIBUTING.md should show how to run one test (cargo nextest run -p CRATE -E 'test(NAME)')")
    for topic, pattern in (("the recipes", r"just lint"), ("adding a service", r"new-service"),
                           ("the lint rules", r"clippy"), ("commit habits", r"(?i)commit")):
        if not re.search(pattern, text):
            probs.append(f"CONTRIBUTING.md does not cover {topic}")
    return probs


def check_security(repo):
    if repo.security is None:
        return ["SECURITY.md is missing"]
    probs = []
    for heading in ("Reporting", "Scope", "Supported versions"):
        if not re.search(rf"^##\s+{heading}", repo.security, re.M | re.I):
            probs.append(f"SECURITY.md has no `## {heading}...` section")
    return probs


def check_changelog(repo):
    text = repo.changelog
    if text is None:
        return ["CHANGELOG.md is missing"]
    probs = []
    if "keepachangelog.com" not in text:
        probs.append("CHANGELOG.md should say it follows Keep a Changelog (link keepachangelog.com)")
    m = re.search(r"^## \[Unreleased\]\s*$(.*?)(?=^## |\Z)", text, re.M | re.S)
    if not m:
        return probs + ["CHANGELOG.md has no `## [Unreleased]` section"]
    body = m.group(1)
    kinds = re.findall(r"^### (\w+)", body, re.M)
    allowed = {"Added", "Changed", "Deprecated", "Removed", "Fixed", "Security"}
    if not kinds:
        probs.append("the Unreleased section has no `### Added` (or Changed, Fixed, ...) subsection")
    for k in kinds:
        if k not in allowed:
            probs.append(f"`### {k}` is not a Keep a Changelog section ({', '.join(sorted(allowed))})")
    if not re.search(r"^- \S", body, re.M):
        probs.append("the Unreleased section lists nothing")
    return probs


def check_dependabot(repo):
    if repo.dependabot is None:
        return [".github/dependabot.yml is missing"]
    ecosystems = set(re.findall(r"package-ecosystem:\s*\"?([\w-]+)", repo.dependabot))
    return [f".github/dependabot.yml does not update {e}" for e in ("cargo", "github-actions", "docker")
            if e not in ecosystems]


def check_no_history(repo):
    probs = []
    for rel, text in sorted(repo.docs.items()):
        if rel in HISTORY_EXEMPT:
            continue
        skipped = HISTORY_EXEMPT_SECTIONS.get(rel)
        in_skipped = False
        for no, line in enumerate(text.splitlines(), 1):
            if line.startswith("## "):
                in_skipped = line[3:].strip() == skipped
            if in_skipped:
                continue
            m = HISTORY.search(line)
            if m:
                probs.append(f"{rel}:{no}: development history in the docs ({m.group(0)!r}): describe the product")
    return probs


CHECKS = [
    ("LICENSE is the Apache-2.0 text Cargo.toml declares", check_license),
    ("rust-toolchain.toml pins an installed release with rustfmt and clippy", check_toolchain),
    ("CONTRIBUTING.md: real recipes, one-test command, the workflow", check_contributing),
    ("SECURITY.md: reporting, scope, supported versions", check_security),
    ("CHANGELOG.md: Keep a Changelog with a non-empty Unreleased section", check_changelog),
    ("dependabot updates cargo, github-actions and docker", check_dependabot),
    ("docs describe the product, not its history", check_no_history),
]


def broken(repo):
    """(name, broken repo, check) triples: each must make its check fail."""
    def variant(**fields):
        b = Repo.__new__(Repo)
        b.__dict__.update(repo.__dict__, **fields)
        return b

    return [
        ("a LICENSE with one word changed", variant(license=(repo.license or "").replace("License", "Licence", 1)),
         check_license),
        ("a floating toolchain channel", variant(toolchain=re.sub(r'"\d+\.\d+\.\d+"', '"stable"', repo.toolchain or "")),
         check_toolchain),
        ("a toolchain that is not installed", variant(installed_toolchains={"0.0.1"}), check_toolchain),
        ("CONTRIBUTING naming a recipe that does not exist",
         variant(contributing=(repo.contributing or "") + "\nRun `just no-such-recipe`.\n", recipes=repo.recipes or {"lint"}),
         check_contributing),
        ("SECURITY.md without a scope", variant(security=re.sub(r"(?m)^## Scope.*$", "", repo.security or "")),
         check_security),
        ("an empty Unreleased section", variant(changelog="keepachangelog.com\n## [Unreleased]\n"), check_changelog),
        ("dependabot without docker", variant(dependabot=(repo.dependabot or "").replace("docker", "pip")),
         check_dependabot),
        ("a doc citing an issue number", variant(docs={"docs/x.md": "Fixed in issue 8 this round."}), check_no_history),
    ]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", default=os.path.abspath(os.path.join(os.path.dirname(__file__), "..")))
    repo = Repo(ap.parse_args().root)
    passed = failed = 0
    if repo.recipes is None:
        print("note: `just` not found; CONTRIBUTING.md's recipe names are not checked")
    for name, check in CHECKS:
        probs = check(repo)
        if probs:
            failed += 1
            print(f"FAIL  {name}")
            for p in probs:
                print(f"      - {p}")
        else:
            passed += 1
            print(f"ok    {name}")
    for name, variant, check in broken(repo):
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
