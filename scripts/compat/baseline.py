#!/usr/bin/env python3
"""`just release-baseline`: records the current tree as the previous release in release-baseline/:
the event schemas, the OpenAPI documents, the protos, and the checksum of every migration.
Run it when a release is cut (and commit the result); `just check-compat` compares against it.

Usage: baseline.py [--root DIR] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import migrations  # noqa: E402

README = """# The previous release

What `just check-compat` compares the tree against: the event schemas (`schemas/events/`), the
OpenAPI documents (`openapi/`), the protos (`proto/`) and the checksum of every migration
(`migrations.json`) as released. Written by `just release-baseline` when a release is cut; never
edited by hand. See docs/changing-a-running-system.md.
"""


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=str(Path(__file__).resolve().parents[2]))
    parser.add_argument("--out", default=None, help="default: ROOT/release-baseline")
    args = parser.parse_args(argv)
    root = Path(args.root).resolve()
    out = Path(args.out).resolve() if args.out else root / "release-baseline"
    for source, dest in (("schemas/events", "schemas/events"), ("openapi", "openapi"), ("proto", "proto")):
        if not (root / source).is_dir():
            print(f"error: {root / source} is missing (`just snapshots` writes schemas/ and openapi/)", file=sys.stderr)
            return 2
        if (out / dest).exists():
            shutil.rmtree(out / dest)
        shutil.copytree(root / source, out / dest)
    sums = migrations.checksums(root)
    (out / "migrations.json").write_text(json.dumps(sums, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    (out / "README.md").write_text(README, encoding="utf-8")
    count = sum(len(f) for f in sums.values())
    print(f"release-baseline: recorded {len(list((out / 'schemas/events').rglob('*.json')))} event schemas, "
          f"{len(list((out / 'openapi').glob('*.json')))} OpenAPI documents, "
          f"{len(list((out / 'proto').rglob('*.proto')))} protos, {count} migrations in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
