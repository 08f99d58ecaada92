"""Compares two JSON Schemas (draft 2020-12, as schemars and utoipa write them) for changes that
break a reader of the old one: what `just check-compat` calls a break in an event payload or an
HTTP body.

A schema is seen as a set of allowed types (`null` included), a format, the enum values, and for
objects their properties and required names, for arrays their items. `$ref`s are resolved within
each document (`#/$defs/...`, `#/components/schemas/...`), cycles are cut.
"""

from __future__ import annotations

import json

JSON_TYPES = ("null", "boolean", "object", "array", "number", "string", "integer")


def resolve(doc: dict, node):
    """Follows local `$ref`s in `node` (a schema) until a schema without one."""
    seen = set()
    while isinstance(node, dict) and isinstance(node.get("$ref"), str):
        ref = node["$ref"]
        if ref in seen or not ref.startswith("#/"):
            break
        seen.add(ref)
        target = doc
        for part in ref[2:].split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            target = target.get(part) if isinstance(target, dict) else None
        if target is None:
            break
        # siblings of a $ref (description, nullable wrappers) stay with the resolved schema
        rest = {k: v for k, v in node.items() if k != "$ref"}
        node = {**target, **rest} if rest else target
    return node


def _alternatives(node: dict):
    for key in ("anyOf", "oneOf"):
        if isinstance(node.get(key), list):
            return node[key]
    return None


class Shape:
    """What a schema allows, flattened: types, format, enum values, object and array parts."""

    def __init__(self, doc: dict, node):
        self.types: set[str] = set()
        self.format = None
        self.enum: list | None = None
        self.properties: dict = {}
        self.required: set[str] = set()
        self.items = None
        self.variants: list = []
        self.any = False
        self._read(doc, node)

    def _read(self, doc, node):
        node = resolve(doc, node)
        if node is True or node == {} or node is None:
            self.any = True
            return
        if not isinstance(node, dict):
            return
        alternatives = _alternatives(node)
        if alternatives is not None:
            non_null = []
            for alt in alternatives:
                alt_resolved = resolve(doc, alt)
                if isinstance(alt_resolved, dict) and alt_resolved.get("type") == "null":
                    self.types.add("null")
                else:
                    non_null.append(alt)
            consts = [resolve(doc, a) for a in non_null]
            if consts and all(isinstance(c, dict) and ("const" in c or "enum" in c) and "properties" not in c for c in consts):
                values = []
                for c in consts:
                    values.extend([c["const"]] if "const" in c else c["enum"])
                    if isinstance(c.get("type"), str):
                        self.types.add(c["type"])
                self.enum = values
                if not self.types - {"null"}:
                    self.types |= {_type_of(v) for v in values}
            elif len(non_null) == 1:
                self._read(doc, non_null[0])
            else:
                self.variants = non_null
                for alt in non_null:
                    self.types |= Shape(doc, alt).types or {"object"}
            return
        if isinstance(node.get("allOf"), list) and len(node["allOf"]) == 1:
            self._read(doc, node["allOf"][0])
        declared = node.get("type")
        if isinstance(declared, str):
            self.types.add(declared)
        elif isinstance(declared, list):
            self.types |= set(declared)
        if node.get("nullable") is True:
            self.types.add("null")
        if "format" in node:
            self.format = node["format"]
        if "enum" in node:
            self.enum = [v for v in node["enum"] if v is not None]
            if None in node["enum"]:
                self.types.add("null")
        if "const" in node:
            self.enum = [node["const"]]
        if isinstance(node.get("properties"), dict):
            self.properties.update(node["properties"])
            self.types.add("object")
        if isinstance(node.get("required"), list):
            self.required |= set(node["required"])
        if "items" in node:
            self.items = node["items"]
        if not self.types and not self.properties and self.enum is None and self.items is None:
            self.any = True


def _type_of(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "object" if isinstance(value, dict) else "array"


def _describe(shape: Shape) -> str:
    if shape.any:
        return "any"
    kinds = sorted(shape.types - {"null"}) or ["?"]
    text = "|".join(kinds)
    if shape.format:
        text += f" ({shape.format})"
    if "null" in shape.types:
        text += ", nullable"
    return text


def _widened(old: set[str], new: set[str]) -> set[str]:
    """Types `new` allows that `old` did not (an integer is a number)."""
    extra = set(new) - set(old)
    if "integer" in extra and "number" in old:
        extra.discard("integer")
    return extra


def compare(old_doc: dict, old, new_doc: dict, new, where: str, breaks: list[str], direction: str = "both", _seen=None) -> None:
    """Appends to `breaks` every change from `old` to `new` that breaks a reader of `old`.

    `direction`: "output" (a body the producer writes: the previous release reads it),
    "input" (a body clients send: the previous release's clients write it) or "both" (events:
    old consumers read new payloads, and new consumers read payloads still in the stream).
    """
    seen = _seen if _seen is not None else set()
    key = (id(old), id(new), where)
    if key in seen:
        return
    seen.add(key)
    o, n = Shape(old_doc, old), Shape(new_doc, new)
    if o.any:
        return
    if n.any and direction == "input":
        return
    old_kinds, new_kinds = o.types - {"null"}, n.types - {"null"}
    if n.any:
        breaks.append(f"{where}: retyped from {_describe(o)} to any")
        return
    if direction != "input":
        if _widened(old_kinds, new_kinds) or (old_kinds and not new_kinds):
            breaks.append(f"{where}: retyped from {_describe(o)} to {_describe(n)}")
            return
        if "null" in n.types and "null" not in o.types:
            breaks.append(f"{where}: made nullable ({_describe(o)} -> {_describe(n)})")
    if direction != "output":
        if _widened(new_kinds, old_kinds) or (new_kinds and not old_kinds):
            breaks.append(f"{where}: retyped from {_describe(o)} to {_describe(n)}")
            return
        if "null" in o.types and "null" not in n.types:
            breaks.append(f"{where}: no longer nullable ({_describe(o)} -> {_describe(n)})")
    if o.format != n.format and n.format is not None and (o.format is not None or direction != "output"):
        breaks.append(f"{where}: format changed from {o.format or 'none'} to {n.format}")
    elif o.format is not None and n.format is None and direction != "input":
        breaks.append(f"{where}: format {o.format} removed")
    if o.enum is not None:
        if n.enum is None:
            if direction != "input":
                breaks.append(f"{where}: no longer restricted to the values {_values(o.enum)}")
        else:
            removed = [v for v in o.enum if v not in n.enum]
            if removed:
                breaks.append(f"{where}: enum value {_values(removed)} removed")
            added = [v for v in n.enum if v not in o.enum]
            if added and direction != "input":
                breaks.append(f"{where}: enum value {_values(added)} added (the previous release cannot read it)")
    _compare_objects(old_doc, o, new_doc, n, where, breaks, direction, seen)
    if o.items is not None and n.items is not None:
        compare(old_doc, o.items, new_doc, n.items, f"{where}[]", breaks, direction, seen)


def _compare_objects(old_doc, o: Shape, new_doc, n: Shape, where, breaks, direction, seen) -> None:
    prefix = f"{where}." if where else ""
    removed = [name for name in o.properties if name not in n.properties]
    added = [name for name in n.properties if name not in o.properties]
    for name in removed:
        hint = ""
        same = [a for a in added if json.dumps(resolve(new_doc, n.properties[a]), sort_keys=True) == json.dumps(resolve(old_doc, o.properties[name]), sort_keys=True)]
        if same:
            hint = f" (renamed to {same[0]}?)"
        breaks.append(f"{prefix}{name}: field removed{hint}")
    for name, old_prop in o.properties.items():
        if name not in n.properties:
            continue
        compare(old_doc, old_prop, new_doc, n.properties[name], f"{prefix}{name}", breaks, direction, seen)
        if name in n.required and name not in o.required and direction != "output":
            breaks.append(f"{prefix}{name}: made required")
        if name in o.required and name not in n.required and direction != "input":
            breaks.append(f"{prefix}{name}: no longer always present (was required)")
    for name in added:
        if name in n.required and direction != "output":
            breaks.append(f"{prefix}{name}: new required field")


def _values(values) -> str:
    return ", ".join(json.dumps(v) for v in values)
