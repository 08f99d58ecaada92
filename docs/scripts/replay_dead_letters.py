#!/usr/bin/env python3
"""List and replay Longship dead letters (docs/operations.md, "Dead letters").

A consumer that fails an event `max_deliver` (5) times publishes it to
`<prefix>.deadletter.<consumer>` (stream `DEADLETTER`, or `<PREFIX>_DEADLETTER` with NATS_PREFIX)
with the headers Dead-Letter-Reason, Dead-Letter-Consumer and Original-Subject. This tool lists
them and, once the cause is fixed, publishes each one again to its Original-Subject (the producer's
stream), with its original headers (Tenant-Id, traceparent, ...) and a new Nats-Msg-Id
`replay-<event id>-<dead-letter seq>`; every consumer of that subject sees it again, and the ones
that already handled the event skip it through their inbox. Replayed dead letters are deleted
from the dead-letter stream unless --keep is given.

  python3 docs/scripts/replay_dead_letters.py                       # list every dead letter
  python3 docs/scripts/replay_dead_letters.py --consumer inventory-order-confirmed
  python3 docs/scripts/replay_dead_letters.py --consumer inventory-order-confirmed --replay
  python3 docs/scripts/replay_dead_letters.py --seq 12 --seq 15 --replay --keep

Python 3 standard library only; speaks the NATS protocol and the JetStream API directly (plain TCP,
optional user:password in the URL; no TLS). NATS_URL and NATS_PREFIX are read like the services do.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import socket
import sys
import uuid
from urllib.parse import unquote, urlsplit


class NatsError(Exception):
    pass


class Nats:
    """Just enough of a NATS client for request/reply with headers."""

    def __init__(self, url: str, timeout: float = 5.0):
        u = urlsplit(url if "://" in url else f"nats://{url}")
        if u.scheme not in ("nats", ""):
            raise NatsError(f"only nats:// URLs are supported, got {url!r}")
        self.sock = socket.create_connection((u.hostname or "127.0.0.1", u.port or 4222), timeout=timeout)
        self.buf = b""
        info = self._line()
        if not info.startswith(b"INFO "):
            raise NatsError(f"{url} does not greet like a NATS server: {info[:80]!r}")
        connect = {"verbose": False, "pedantic": False, "headers": True, "no_responders": True,
                   "name": "longship-replay-dead-letters", "lang": "python", "version": "1"}
        if u.username:
            connect.update(user=unquote(u.username), **{"pass": unquote(u.password or "")})
        self.inbox = f"_INBOX.{uuid.uuid4().hex}"
        self.sock.sendall(f"CONNECT {json.dumps(connect)}\r\nSUB {self.inbox}.* 1\r\nPING\r\n".encode())
        while True:
            line = self._line()
            if line == b"PONG":
                break
            if line.startswith(b"-ERR"):
                raise NatsError(line.decode(errors="replace"))
        self.n = 0

    def _line(self) -> bytes:
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise NatsError("connection closed by the server")
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line

    def _exact(self, n: int) -> bytes:
        while len(self.buf) < n + 2:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise NatsError("connection closed by the server")
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def request(self, subject: str, payload: bytes, headers: dict[str, str] | None = None) -> tuple[dict, bytes]:
        self.n += 1
        reply = f"{self.inbox}.{self.n}"
        if headers:
            head = "NATS/1.0\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
            hb = head.encode()
            self.sock.sendall(f"HPUB {subject} {reply} {len(hb)} {len(hb) + len(payload)}\r\n".encode() + hb + payload + b"\r\n")
        else:
            self.sock.sendall(f"PUB {subject} {reply} {len(payload)}\r\n".encode() + payload + b"\r\n")
        while True:
            line = self._line()
            if line == b"PING":
                self.sock.sendall(b"PONG\r\n")
                continue
            if line.startswith(b"-ERR"):
                raise NatsError(line.decode(errors="replace"))
            parts = line.decode().split()
            if not parts or parts[0] not in ("MSG", "HMSG"):
                continue
            if parts[0] == "MSG":
                body = self._exact(int(parts[-1]))
                got_headers: dict = {}
            else:
                raw = self._exact(int(parts[-1]))
                hlen = int(parts[-2])
                got_headers, body = parse_headers(raw[:hlen]), raw[hlen:]
            if parts[1] != reply:
                continue
            if got_headers.get(":status") == "503":
                raise NatsError(f"no responders on {subject} (is JetStream enabled, does the stream exist?)")
            return got_headers, body

    def js(self, api: str, request: dict) -> dict:
        _, body = self.request(f"$JS.API.{api}", json.dumps(request).encode())
        response = json.loads(body or b"{}")
        if "error" in response:
            raise NatsError(f"{api}: {response['error'].get('description', response['error'])}")
        return response


def parse_headers(raw: bytes) -> dict[str, str]:
    lines = raw.decode(errors="replace").split("\r\n")
    out: dict[str, str] = {}
    status = lines[0].split()
    if len(status) > 1:
        out[":status"] = status[1]
    for line in lines[1:]:
        if ":" in line:
            k, _, v = line.partition(":")
            out[k.strip()] = v.strip()
    return out


def stream_name(prefix: str) -> str:
    return f"{prefix.upper().replace('-', '_')}_DEADLETTER" if prefix else "DEADLETTER"


def dead_letters(nc: Nats, stream: str, seqs: list[int] | None):
    info = nc.js(f"STREAM.INFO.{stream}", {})
    state = info["state"]
    wanted = seqs or range(state["first_seq"], state["last_seq"] + 1)
    for seq in wanted:
        try:
            msg = nc.js(f"STREAM.MSG.GET.{stream}", {"seq": seq})["message"]
        except NatsError as e:
            if "no message found" in str(e).lower() or "not found" in str(e).lower():
                continue
            raise
        headers = parse_headers(base64.b64decode(msg.get("hdrs") or b""))
        data = base64.b64decode(msg.get("data") or b"")
        yield seq, msg["subject"], headers, data


def main() -> int:
    ap = argparse.ArgumentParser(description="List and replay Longship dead letters.")
    ap.add_argument("--nats", default=os.environ.get("NATS_URL", "nats://127.0.0.1:4222"), help="NATS URL (default $NATS_URL or nats://127.0.0.1:4222)")
    ap.add_argument("--prefix", default=os.environ.get("NATS_PREFIX", ""), help="the services' NATS_PREFIX (default $NATS_PREFIX)")
    ap.add_argument("--consumer", help="only dead letters of this durable consumer, e.g. inventory-order-confirmed")
    ap.add_argument("--seq", type=int, action="append", help="only this dead-letter stream sequence (repeatable)")
    ap.add_argument("--replay", action="store_true", help="publish the selected dead letters to their Original-Subject")
    ap.add_argument("--keep", action="store_true", help="with --replay: keep them in the dead-letter stream")
    opts = ap.parse_args()

    stream = stream_name(opts.prefix)
    subject_root = f"{opts.prefix}.deadletter" if opts.prefix else "deadletter"
    try:
        nc = Nats(opts.nats)
        found = replayed = 0
        for seq, subject, headers, data in dead_letters(nc, stream, opts.seq):
            consumer = headers.get("Dead-Letter-Consumer") or subject.removeprefix(subject_root + ".")
            if opts.consumer and consumer != opts.consumer:
                continue
            found += 1
            try:
                envelope = json.loads(data)
                event = f"{envelope.get('type')} {envelope.get('id')} tenant {envelope.get('tenant_id')}"
            except ValueError:
                envelope, event = None, f"{len(data)} bytes, not JSON"
            print(f"#{seq} {consumer}: {event}\n    from {headers.get('Original-Subject')}: {headers.get('Dead-Letter-Reason')}")
            if not opts.replay:
                continue
            target = headers.get("Original-Subject")
            if not target:
                print("    skipped: no Original-Subject header")
                continue
            keep = {k: v for k, v in headers.items()
                    if not k.startswith((":", "Dead-Letter-")) and k not in ("Original-Subject", "Nats-Msg-Id")}
            event_id = (envelope or {}).get("id", "unknown")
            keep["Nats-Msg-Id"] = f"replay-{event_id}-{seq}"
            _, ack = nc.request(target, data, keep)
            ack_json = json.loads(ack or b"{}")
            if "error" in ack_json:
                print(f"    NOT replayed: {ack_json['error'].get('description')}")
                continue
            note = " (duplicate: already replayed)" if ack_json.get("duplicate") else ""
            print(f"    replayed to {target} -> stream {ack_json.get('stream')} seq {ack_json.get('seq')}{note}")
            replayed += 1
            if not opts.keep:
                nc.js(f"STREAM.MSG.DELETE.{stream}", {"seq": seq})
        action = f", replayed {replayed}" if opts.replay else " (add --replay to publish them again)"
        print(f"{found} dead letter(s) in {stream}{action}")
        return 0
    except (OSError, NatsError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
