"""Event schema breaks: `schemas/events/<service>/<type>.json` against the previous release's copy.

A break is a change a consumer of the previous release (or a consumer of this release reading
the previous release's payloads still in the stream) cannot read: a field removed, renamed or
retyped (format and nullability included), an optional field made required, a required one made
optional, an enum value removed or added, an event type removed, the schema version lowered, a
new required field without a higher `x-schema-version` (a higher version says "consumers upcast
the older payloads").
"""

from __future__ import annotations

import json
from pathlib import Path

from schema_diff import compare


def load_schemas(directory: Path) -> dict[str, tuple[str, dict]]:
    """Event type -> (relative path, schema) for every `*.json` under `directory`."""
    found: dict[str, tuple[str, dict]] = {}
    if not directory.is_dir():
        return found
    for path in sorted(directory.rglob("*.json")):
        rel = path.relative_to(directory).as_posix()
        try:
            schema = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise SystemExit(f"error: {directory.name}/{rel} is not JSON: {e}")
        event_type = schema.get("x-event-type") or path.stem
        found[event_type] = (rel, schema)
    return found


def version_of(schema: dict) -> int:
    value = schema.get("x-schema-version", 1)
    return value if isinstance(value, int) else 1


def check(baseline: Path, current: Path) -> list[str]:
    """Every break from the schemas under `baseline` to those under `current`."""
    old_all, new_all = load_schemas(baseline), load_schemas(current)
    breaks: list[str] = []
    for event_type, (rel, old) in sorted(old_all.items()):
        label = f"event {event_type}"
        if event_type not in new_all:
            breaks.append(f"{label}: event type removed (schemas/events/{rel} is gone)")
            continue
        new = new_all[event_type][1]
        old_version, new_version = version_of(old), version_of(new)
        if new_version < old_version:
            breaks.append(f"{label}: x-schema-version lowered from {old_version} to {new_version}")
        found: list[str] = []
        compare(old, old, new, new, "", found, direction="both")
        for problem in found:
            if problem.endswith(": new required field") and new_version > old_version:
                continue  # a new version: consumers upcast the older payloads
            if problem.endswith(": new required field"):
                problem += f" (x-schema-version still {new_version}: raise it and upcast the older payloads)"
            breaks.append(f"{label}: {problem.lstrip('.') or 'payload'}")
    return breaks
