"""Migration breaks: the migrations in the tree against the previous release's checksums.

A released migration has run on production databases: editing it changes nothing there (sqlx
refuses to start on a changed checksum), removing it breaks every database that has it. A new
migration numbered at or below the highest released one in its directory would run out of order
(or never, on databases that are past it), and two sharing a version in one directory collide.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

VERSION = re.compile(r"^(\d+)_.+\.sql$")

# Where migrations live, relative to the repository root: the services' and the libraries'.
PATTERNS = ("migrations/*", "libs/*/migrations")


def migration_dirs(root: Path) -> list[Path]:
    dirs: list[Path] = []
    for pattern in PATTERNS:
        dirs += [d for d in sorted(root.glob(pattern)) if d.is_dir()]
    return dirs


def checksums(root: Path) -> dict[str, dict[str, str]]:
    """Directory (relative to `root`) -> file name -> sha256 of every migration in the tree."""
    found: dict[str, dict[str, str]] = {}
    for d in migration_dirs(root):
        files = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(d.glob("*.sql"))}
        if files:
            found[d.relative_to(root).as_posix()] = files
    return found


def version(name: str) -> int | None:
    m = VERSION.match(name)
    return int(m.group(1)) if m else None


def check(baseline_file: Path, root: Path) -> list[str]:
    """Every break from the released migrations recorded in `baseline_file` to the tree at `root`."""
    released = json.loads(baseline_file.read_text(encoding="utf-8")) if baseline_file.is_file() else {}
    current = checksums(root)
    breaks: list[str] = []
    for directory, files in sorted(current.items()):
        by_version: dict[int, list[str]] = {}
        for name in files:
            v = version(name)
            if v is None:
                breaks.append(f"migration {directory}/{name}: name does not start with a version (NNNN_what.sql)")
                continue
            by_version.setdefault(v, []).append(name)
        for v, names in sorted(by_version.items()):
            if len(names) > 1:
                breaks.append(f"migration {directory}: version {v} shared by {', '.join(sorted(names))}")
    for directory, files in sorted(released.items()):
        now = current.get(directory, {})
        for name, digest in sorted(files.items()):
            if name not in now:
                breaks.append(f"migration {directory}/{name}: released migration removed")
            elif now[name] != digest:
                breaks.append(f"migration {directory}/{name}: released migration edited (databases that ran it keep the old version; add a new migration instead)")
        highest = max((version(n) or 0 for n in files), default=0)
        for name in sorted(set(now) - set(files)):
            v = version(name)
            if v is not None and v <= highest:
                breaks.append(f"migration {directory}/{name}: new migration numbered {v}, at or below the released {highest} (it would run out of order; number it above {highest})")
    return breaks


def released_files(baseline_file: Path) -> set[str]:
    """Paths (relative to the root) of every released migration."""
    if not baseline_file.is_file():
        return set()
    released = json.loads(baseline_file.read_text(encoding="utf-8"))
    return {f"{d}/{name}" for d, files in released.items() for name in files}
