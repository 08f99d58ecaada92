#!/usr/bin/env python3
"""`just check-compat`: every change since the previous release (release-baseline/) that breaks
a consumer, client or database of that release, all reported in one run.

  events      schemas/events/<service>/<type>.json     vs release-baseline/schemas/events/
  HTTP API    openapi/<service>.json                   vs release-baseline/openapi/
  migrations  migrations/*/, libs/*/migrations/        vs release-baseline/migrations.json
  gRPC        proto/ (buf breaking, FILE rules)        vs release-baseline/proto/

Usage: check.py [--root DIR] [--baseline DIR] [--buf PATH | --no-proto]
Exit status 0: compatible; 1: breaks (each printed on its own line); 2: usage or setup error.
No network is needed (buf is installed by scripts/buf/run.sh beforehand).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import events  # noqa: E402
import migrations  # noqa: E402
import openapi  # noqa: E402


def proto_breaks(root: Path, baseline: Path, buf: str) -> list[str]:
    against = baseline / "proto"
    if not against.is_dir():
        return []
    run = subprocess.run(
        [buf, "breaking", "proto", "--against", str(against.relative_to(root) if against.is_relative_to(root) else against), "--error-format", "text"],
        cwd=root, capture_output=True, text=True, check=False,
    )
    if run.returncode == 0:
        return []
    lines = [line for line in (run.stdout + run.stderr).splitlines() if line.strip()]
    if run.returncode != 100:
        return [f"proto: buf breaking failed (exit {run.returncode}): {' '.join(lines)[:500]}"]
    return [f"proto {line}" for line in lines]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=str(Path(__file__).resolve().parents[2]))
    parser.add_argument("--baseline", default=None, help="default: ROOT/release-baseline")
    parser.add_argument("--buf", default=None, help="the buf binary (default: ROOT/target/buf/node_modules/.bin/buf)")
    parser.add_argument("--no-proto", action="store_true", help="skip buf breaking")
    args = parser.parse_args(argv)
    root = Path(args.root).resolve()
    baseline = Path(args.baseline).resolve() if args.baseline else root / "release-baseline"
    if not baseline.is_dir():
        print(f"error: no previous release at {baseline} (`just release-baseline` records one)", file=sys.stderr)
        return 2
    breaks = events.check(baseline / "schemas" / "events", root / "schemas" / "events")
    breaks += openapi.check(baseline / "openapi", root / "openapi")
    breaks += migrations.check(baseline / "migrations.json", root)
    if not args.no_proto:
        buf = args.buf or str(root / "target" / "buf" / "node_modules" / ".bin" / "buf")
        if not Path(buf).exists():
            print(f"error: buf not found at {buf} (scripts/buf/run.sh installs it)", file=sys.stderr)
            return 2
        breaks += proto_breaks(root, baseline, buf)
    for b in breaks:
        print(f"BREAK {b}")
    if breaks:
        print(f"check-compat: {len(breaks)} breaking change(s) against {baseline.name}/ (make them compatible, or version them: docs/changing-a-running-system.md)")
        return 1
    print(f"check-compat: compatible with {baseline.name}/ (events, HTTP API, migrations{'' if args.no_proto else ', gRPC'})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
