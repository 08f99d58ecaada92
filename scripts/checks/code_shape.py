#!/usr/bin/env python3
"""The shape rules of the codebase, checked on every `just lint`:

- every `services/*/src/main.rs` is at most 15 lines (the runtime owns `main`);
- no Rust source file under libs/ or services/ is over 600 lines;
- no Rust function anywhere (libs, services, tools, templates) is over 120 lines;
- no two files of a crate import each other (`crate::a` in b.rs and `crate::b` in a.rs): put the
  types both need in a third module.

Prints every violation with its place and exits 1 when there is any. Standard library only.
Usage: scripts/checks/code_shape.py [ROOT]
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

MAX_MAIN_LINES = 15
MAX_FILE_LINES = 600
MAX_FN_LINES = 120

FN_RE = re.compile(
    r"^\s*(?:pub(?:\([^)]*\))?\s+)?(?:default\s+)?(?:const\s+)?(?:async\s+)?(?:unsafe\s+)?"
    r"(?:extern\s+\"[^\"]*\"\s+)?fn\s+(\w+)"
)
USE_CRATE_RE = re.compile(r"\bcrate::(\w+)")
USE_SUPER_RE = re.compile(r"\bsuper::(\w+)")


def strip_code(text: str) -> str:
    """The text with comments, string and char literals blanked (newlines kept), so braces and
    paths are only those of the code."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif text.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if text.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif text.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c == "r" and re.match(r'r#*"', text[i:]) and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            hashes = re.match(r"r(#*)\"", text[i:]).group(1)
            end = text.find('"' + hashes, i + 2 + len(hashes))
            end = n if end < 0 else end + 1 + len(hashes)
            out.append(re.sub(r"[^\n]", " ", text[i:end]))
            i = end
        elif c == '"' or (c == "b" and text.startswith('b"', i)):
            j = i + (2 if c == "b" else 1)
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append(re.sub(r"[^\n]", " ", text[i : j + 1]))
            i = j + 1
        elif c == "'":
            m = re.match(r"'(\\.|\\u\{[0-9a-fA-F]+\}|\\x[0-9a-fA-F]{2}|[^\\'])'", text[i:])
            if m:
                out.append(" " * len(m.group(0)))
                i += len(m.group(0))
            else:  # a lifetime
                out.append(c)
                i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def long_functions(path: Path, code: str) -> list[str]:
    lines = code.split("\n")
    found = []
    for start, line in enumerate(lines):
        m = FN_RE.match(line)
        if not m:
            continue
        depth, opened, end = 0, False, None
        for k in range(start, len(lines)):
            for ch in lines[k]:
                if ch == "{":
                    depth, opened = depth + 1, True
                elif ch == "}":
                    depth -= 1
                elif ch == ";" and not opened and depth == 0:
                    end = -1  # a declaration without a body
                    break
            if end == -1 or (opened and depth == 0):
                end = k if end is None else end
                break
        if end is None or end < 0:
            continue
        length = end - start + 1
        if length > MAX_FN_LINES:
            found.append(f"{path}:{start + 1}: fn {m.group(1)} is {length} lines (at most {MAX_FN_LINES})")
    return found


def module_of(src: Path, file: Path) -> str:
    rel = file.relative_to(src).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "mod":
        parts = parts[:-1]
    return "::".join(parts)


def import_cycles(src: Path, codes: dict[Path, str]) -> list[str]:
    files = {module_of(src, f): f for f in codes if f.parent == src or f.is_relative_to(src)}
    roots = {"lib", "main"}
    edges: dict[str, set[str]] = {}
    for mod, f in files.items():
        if mod in roots:
            continue
        targets = set()
        for m in USE_CRATE_RE.finditer(codes[f]):
            if m.group(1) in files and m.group(1) not in roots:
                targets.add(m.group(1))
        parent = mod.rsplit("::", 1)[0] if "::" in mod else None
        for m in USE_SUPER_RE.finditer(codes[f]):
            if parent is None:
                continue  # `super::` of a top-level module's inline tests
            sibling = f"{parent}::{m.group(1)}"
            targets.add(sibling if sibling in files else parent)
        edges[mod] = {t for t in targets if t != mod}
    found = []
    for a, ts in sorted(edges.items()):
        for b in sorted(ts):
            if a < b and a in edges.get(b, set()):
                found.append(f"{files[a]} and {files[b]} import each other (crate::{a} <-> crate::{b})")
    return found


def main() -> int:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else ".").resolve()
    problems: list[str] = []
    for main_rs in sorted(root.glob("services/*/src/main.rs")):
        n = len(main_rs.read_text().splitlines())
        if n > MAX_MAIN_LINES:
            problems.append(f"{main_rs.relative_to(root)}: {n} lines (a service's main.rs is at most {MAX_MAIN_LINES})")
    seen = set()
    for base in ("libs", "services", "tools"):
        for src in sorted(root.glob(f"{base}/*/src")):
            if src in seen:
                continue
            seen.add(src)
            codes = {}
            for f in sorted(src.rglob("*.rs")):
                text = f.read_text()
                rel = f.relative_to(root)
                n = len(text.splitlines())
                if base != "tools" and n > MAX_FILE_LINES:
                    problems.append(f"{rel}: {n} lines (at most {MAX_FILE_LINES})")
                codes[f] = strip_code(text)
                problems += long_functions(rel, codes[f])
            problems += [p.replace(str(root) + "/", "") for p in import_cycles(src, codes)]
        for tests in sorted(root.glob(f"{base}/*/tests")):
            for f in sorted(tests.rglob("*.rs")):
                problems += long_functions(f.relative_to(root), strip_code(f.read_text()))
    for f in sorted(root.glob("templates/**/*.rs.tmpl")):
        problems += long_functions(f.relative_to(root), strip_code(f.read_text()))
    for p in problems:
        print(p)
    if problems:
        print(f"{len(problems)} shape problem(s): see scripts/checks/code_shape.py for the rules")
        return 1
    print("code shape ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
