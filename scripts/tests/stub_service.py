#!/usr/bin/env python3
"""A stand-in for the order/inventory/payment binaries, for testing scripts/up.sh and
friends without cargo. Link or copy it as `<dir>/order` etc. and run up.sh with
LONGSHIP_BIN_DIR=<dir> LONGSHIP_NO_BUILD=1.

Like the real binaries: `<name> migrate` exits, `<name>` serves GET /healthz, /readyz,
/metrics, /openapi.json, /docs on HTTP_ADDR and listens on GRPC_ADDR.

Behaviour per service from STUB_<NAME>_MODE (default ok):
  ok            ready at once
  slow          /readyz answers 503 for STUB_READY_AFTER seconds (default 2), then 200
  never_ready   /readyz always 503
  crash         exits with status 3 after printing an error
  migrate_fail  `migrate` fails
  ignore_term   ignores SIGTERM (down.sh must escalate to SIGKILL)
If STUB_ENV_DIR is set, the environment the service received is written there as
<name>.env (KEY=VALUE lines) so tests can check what up.sh passed.
"""

import http.server
import os
import signal
import socket
import sys
import threading
import time

NAME = os.path.basename(sys.argv[0])
MODE = os.environ.get(f"STUB_{NAME.upper()}_MODE", "ok")
STARTED = time.monotonic()


def addr(var):
    host, _, port = os.environ[var].rpartition(":")
    return host, int(port)


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "migrate":
        print(f"{NAME}: applying migrations to {os.environ.get('DATABASE_URL')}")
        if MODE == "migrate_fail":
            print(f"{NAME}: error: migration 0001 failed: relation already exists", file=sys.stderr)
            return 1
        return 0
    if MODE == "crash":
        print(f"{NAME}: error: cannot connect to the database", file=sys.stderr, flush=True)
        return 3
    env_dir = os.environ.get("STUB_ENV_DIR")
    if env_dir:
        with open(os.path.join(env_dir, f"{NAME}.env"), "w") as f:
            for k in sorted(os.environ):
                f.write(f"{k}={os.environ[k]}\n")
    if MODE == "ignore_term":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    else:
        signal.signal(signal.SIGTERM, lambda *_: os._exit(0))

    ready_after = float(os.environ.get("STUB_READY_AFTER", "2"))

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            ready = MODE != "never_ready" and (
                MODE != "slow" or time.monotonic() - STARTED >= ready_after
            )
            routes = {
                "/healthz": (200, "ok"),
                "/readyz": (200, "ready") if ready else (503, "not ready"),
                "/metrics": (200, "# TYPE up gauge\nup 1\n"),
                "/openapi.json": (200, '{"openapi":"3.1.0"}'),
                "/docs": (200, "<html>docs</html>"),
            }
            code, body = routes.get(self.path, (404, "not found"))
            data = body.encode()
            self.send_response(code)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, fmt, *args):
            print(f"{NAME}: " + fmt % args, flush=True)

    grpc = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    grpc.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    grpc.bind(addr("GRPC_ADDR"))
    grpc.listen(8)
    server = http.server.ThreadingHTTPServer(addr("HTTP_ADDR"), Handler)
    print(f"{NAME}: listening on {os.environ['HTTP_ADDR']} (mode {MODE})", flush=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    sys.exit(main())
