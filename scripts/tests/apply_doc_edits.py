#!/usr/bin/env python3
"""Applies the hand edits a document shows to a checkout, so a test follows the document's exact text.

A hand edit is an HTML comment `<!-- hand-edit N: PATH append -->` followed by one fenced code
block (appended to PATH), or `<!-- hand-edit N: PATH replace -->` followed by two fenced code
blocks (the first, which must occur exactly once in PATH, is replaced by the second). Prints one
line per edit and the count; exits 1 (changing nothing) when an edit cannot be applied.

Usage: scripts/tests/apply_doc_edits.py DOC ROOT      Python 3.9+, standard library only.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

MARKER_RE = re.compile(r"^<!-- hand-edit (\d+): (\S+) (append|replace) -->$", re.M)
FENCE_RE = re.compile(r"^```[a-z]*\n(.*?)^```$", re.M | re.S)


def edits(doc: str) -> list[tuple[int, str, str, list[str]]]:
    found = []
    for m in MARKER_RE.finditer(doc):
        number, path, kind = int(m.group(1)), m.group(2), m.group(3)
        blocks = FENCE_RE.findall(doc, m.end())[: 1 if kind == "append" else 2]
        if len(blocks) != (1 if kind == "append" else 2):
            raise ValueError(f"hand edit {number}: expected {1 if kind == 'append' else 2} code block(s)")
        found.append((number, path, kind, blocks))
    return found


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    doc, root = Path(argv[1]), Path(argv[2])
    try:
        planned = edits(doc.read_text(encoding="utf-8"))
        if not planned:
            raise ValueError(f"{doc} shows no hand edit")
        new: dict[Path, str] = {}
        for number, path, kind, blocks in planned:
            target = root / path
            text = new.get(target) or target.read_text(encoding="utf-8")
            if kind == "append":
                text = text + blocks[0]
            else:
                if text.count(blocks[0]) != 1:
                    raise ValueError(f"hand edit {number}: the text to replace occurs "
                                     f"{text.count(blocks[0])} times in {path}, not once")
                text = text.replace(blocks[0], blocks[1])
            new[target] = text
            print(f"hand edit {number}: {kind} in {path}")
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    for target, text in new.items():
        target.write_text(text, encoding="utf-8")
    print(f"{len(planned)} hand edits of code applied from {doc}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
