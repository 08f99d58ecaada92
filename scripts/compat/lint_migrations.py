#!/usr/bin/env python3
"""`just lint-migrations`: squawk over every migration (the services' migrations/*/, the
libraries' libs/*/migrations/ and the service template's), with the rules of .squawk.toml.

Each file is linted the way sqlx runs it: inside a transaction, unless its first line is the
`-- no-transaction` directive (the form a `CREATE INDEX CONCURRENTLY` needs). Released
migrations (listed in release-baseline/migrations.json) have already run everywhere and are
exempt from the timeout rules only; every new migration gets every rule.

Usage: lint_migrations.py [--root DIR] [--squawk PATH]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import migrations  # noqa: E402

# What a released migration is exempt from: it cannot be edited any more (check-compat), and it
# ran before the timeouts were required.
RELEASED_EXEMPT = ("require-lock-timeout", "require-statement-timeout")
TEMPLATE = "templates/service/files/migrations"


def configured_exclusions(root: Path) -> list[str]:
    """The rules .squawk.toml turns off."""
    config = root / ".squawk.toml"
    if not config.is_file():
        return []
    return list(tomllib.loads(config.read_text(encoding="utf-8")).get("excluded_rules", []))


def no_transaction(path: Path) -> bool:
    first = path.read_text(encoding="utf-8").lstrip().splitlines()[:1]
    return bool(first) and first[0].strip().lower() == "-- no-transaction"


def rendered_template(root: Path, scratch: Path) -> list[tuple[str, Path]]:
    """The template's migrations rendered for a service named `example` (as `just new-service` does)."""
    out = []
    for tmpl in sorted((root / TEMPLATE).rglob("*.sql.tmpl")):
        text = tmpl.read_text(encoding="utf-8")
        for key, value in (("{{name_snake}}", "example"), ("{{NAME}}", "EXAMPLE"), ("{{Name}}", "Example"), ("{{name}}", "example")):
            text = text.replace(key, value)
        dest = scratch / tmpl.name.removesuffix(".tmpl")
        dest.write_text(text, encoding="utf-8")
        out.append((tmpl.relative_to(root).as_posix(), dest))
    return out


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=str(Path(__file__).resolve().parents[2]))
    parser.add_argument("--baseline", default=None, help="default: ROOT/release-baseline/migrations.json")
    parser.add_argument("--squawk", default=shutil.which("squawk"))
    args = parser.parse_args(argv)
    root = Path(args.root).resolve()
    if not args.squawk:
        print("error: squawk not found (python3 -m pip install -r scripts/squawk/requirements.txt)", file=sys.stderr)
        return 2
    baseline = Path(args.baseline) if args.baseline else root / "release-baseline" / "migrations.json"
    released = migrations.released_files(baseline)
    groups: dict[tuple[bool, bool], list[tuple[str, Path]]] = {}
    for d in migrations.migration_dirs(root):
        for path in sorted(d.glob("*.sql")):
            rel = path.relative_to(root).as_posix()
            groups.setdefault((rel in released, no_transaction(path)), []).append((rel, path))
    failed = 0
    total = 0
    with tempfile.TemporaryDirectory() as scratch:
        for rel, path in rendered_template(root, Path(scratch)):
            groups.setdefault((False, no_transaction(path)), []).append((rel, path))
        for (is_released, outside_tx), files in sorted(groups.items()):
            cmd = [args.squawk, "--config", str(root / ".squawk.toml"), "--reporter", "gcc"]
            cmd.append("--no-assume-in-transaction" if outside_tx else "--assume-in-transaction")
            if is_released:
                # --exclude replaces the config's excluded_rules: name them all
                cmd.append("--exclude=" + ",".join(configured_exclusions(root) + list(RELEASED_EXEMPT)))
            total += len(files)
            run = subprocess.run(cmd + [str(p) for _, p in files], cwd=root, capture_output=True, text=True, check=False)
            output = run.stdout + run.stderr
            for rel, path in files:
                output = output.replace(str(path), rel)
            if run.returncode != 0:
                failed += 1
                print(output.rstrip())
    if failed:
        print(f"lint-migrations: squawk found problems (rules and fixes: .squawk.toml, docs/changing-a-running-system.md)")
        return 1
    print(f"lint-migrations: {total} migrations pass squawk ({len(released)} released, exempt from the timeout rules only)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
