"""HTTP API breaks: `openapi/<service>.json` against the previous release's copy.

A break is what fails a client of the previous release: a path or operation removed, a success
response or one of its media types removed, a response field removed, retyped or no longer always
present, an enum value removed (or, in a response, added), a request field removed or retyped, a
new required input (parameter, body, or body field), an optional input made required.
"""

from __future__ import annotations

import json
from pathlib import Path

from schema_diff import compare, resolve

METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")


def _params(doc: dict, path_item: dict, operation: dict) -> dict[tuple[str, str], dict]:
    params = {}
    for raw in list(path_item.get("parameters", [])) + list(operation.get("parameters", [])):
        p = resolve(doc, raw)
        if isinstance(p, dict) and "name" in p:
            params[(p.get("in", "?"), p["name"])] = p
    return params


def _content(doc: dict, holder) -> dict:
    holder = resolve(doc, holder) if holder is not None else None
    return holder.get("content", {}) if isinstance(holder, dict) else {}


def check_document(old: dict, new: dict, service: str) -> list[str]:
    breaks: list[str] = []
    old_paths, new_paths = old.get("paths", {}) or {}, new.get("paths", {}) or {}
    for path, old_item in sorted(old_paths.items()):
        if path not in new_paths:
            breaks.append(f"openapi {service}: path {path} removed")
            continue
        new_item = new_paths[path]
        for method in METHODS:
            if method not in old_item:
                continue
            op = f"openapi {service}: {method.upper()} {path}"
            if method not in new_item:
                breaks.append(f"{op}: operation removed")
                continue
            breaks += _operation(old, old_item, old_item[method], new, new_item, new_item[method], op)
    return breaks


def _operation(old, old_item, old_op, new, new_item, new_op, op) -> list[str]:
    breaks: list[str] = []
    old_params, new_params = _params(old, old_item, old_op), _params(new, new_item, new_op)
    for key, p in new_params.items():
        where = f"{key[0]} parameter {key[1]}"
        if key not in old_params:
            if p.get("required"):
                breaks.append(f"{op}: new required {where}")
            continue
        if p.get("required") and not old_params[key].get("required"):
            breaks.append(f"{op}: {where} made required")
        found: list[str] = []
        compare(old, old_params[key].get("schema", {}), new, p.get("schema", {}), where, found, "input")
        breaks += [f"{op}: {b}" for b in found]
    for key in old_params:
        if key not in new_params and key[0] == "path":
            breaks.append(f"{op}: path parameter {key[1]} removed")
    old_body, new_body = resolve(old, old_op.get("requestBody")), resolve(new, new_op.get("requestBody"))
    if new_body and new_body.get("required") and not (old_body and old_body.get("required")):
        breaks.append(f"{op}: request body {'made required' if old_body else 'added, required'}")
    old_in, new_in = _content(old, old_body), _content(new, new_body)
    for media, old_media in old_in.items():
        if media not in new_in:
            breaks.append(f"{op}: request media type {media} no longer accepted")
            continue
        found = []
        compare(old, old_media.get("schema", {}), new, new_in[media].get("schema", {}), "request", found, "input")
        breaks += [f"{op}: {b}" for b in found]
    old_responses, new_responses = old_op.get("responses", {}) or {}, new_op.get("responses", {}) or {}
    for status, old_response in sorted(old_responses.items()):
        if not str(status).startswith("2"):
            continue
        if status not in new_responses:
            breaks.append(f"{op}: success response {status} removed")
            continue
        old_out, new_out = _content(old, old_response), _content(new, new_responses[status])
        for media, old_media in old_out.items():
            if media not in new_out:
                breaks.append(f"{op}: response {status} media type {media} removed")
                continue
            found = []
            compare(old, old_media.get("schema", {}), new, new_out[media].get("schema", {}), f"response {status}", found, "output")
            breaks += [f"{op}: {b}" for b in found]
    return breaks


def check(baseline: Path, current: Path) -> list[str]:
    """Every break from the documents `baseline/<service>.json` to `current/<service>.json`."""
    breaks: list[str] = []
    if not baseline.is_dir():
        return breaks
    for old_path in sorted(baseline.glob("*.json")):
        service = old_path.stem
        new_path = current / old_path.name
        if not new_path.is_file():
            breaks.append(f"openapi {service}: document removed (openapi/{old_path.name} is gone)")
            continue
        try:
            old = json.loads(old_path.read_text(encoding="utf-8"))
            new = json.loads(new_path.read_text(encoding="utf-8"))
        except ValueError as e:
            breaks.append(f"openapi {service}: not JSON: {e}")
            continue
        breaks += check_document(old, new, service)
    return breaks
