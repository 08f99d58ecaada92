#!/usr/bin/env python3
"""Prints CPU ms per saga of two bench reports side by side: mTLS on (first) and off (second).

Usage: compare_mtls.py ON/report.json OFF/report.json [OUT.md]
Every phase with a cost section is compared, per process, with the relative difference.
"""
import json
import sys


def costs(path):
    report = json.load(open(path))
    return {p["name"]: p["cost"]["cpu_ms_per_saga"] for p in report.get("phases", []) if p.get("cost")}


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    on, off = costs(sys.argv[1]), costs(sys.argv[2])
    lines = ["## CPU ms per saga: mTLS on vs off", ""]
    for phase in [p for p in on if p in off]:
        lines += [f"### {phase}", "", "| process | mTLS on | mTLS off | difference |", "|---|---:|---:|---:|"]
        for proc in on[phase]:
            a, b = on[phase][proc], off[phase].get(proc)
            diff = f"{(a - b) / b * 100:+.1f} %" if b else "-"
            lines.append(f"| {proc} | {a:.2f} | {'-' if b is None else f'{b:.2f}'} | {diff} |")
        lines.append("")
    text = "\n".join(lines)
    print(text)
    if len(sys.argv) > 3:
        open(sys.argv[3], "w").write(text + "\n")


if __name__ == "__main__":
    main()
