#!/usr/bin/env python3
"""Prints a development JWT (HS256).

  just token TENANT            a tenant token (claim tenant_id) for the /v1 APIs
  just token --operator        an admin token with scope longship:operator (every tenant)
  just token --admin TENANT    an admin token with scope longship:admin for TENANT only

Signed with AUTH_JWT_SECRET (default: the secret `just up` gives the services); valid for
TOKEN_TTL_SECS (default 3600); the subject is TOKEN_SUB (default dev). Standard library only.
"""
import base64
import hashlib
import hmac
import json
import os
import re
import sys
import time

TENANT_RE = r"[a-z0-9][a-z0-9-]{0,62}"
USAGE = (
    "usage: just token TENANT | just token --operator | just token --admin TENANT\n"
    "       (TENANT matches [a-z0-9][a-z0-9-]{0,62})"
)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def claims_for(args: list[str]) -> dict | None:
    """The claims the arguments ask for, or None when they are not a valid request."""
    if args == ["--operator"]:
        return {"scope": "longship:operator"}
    if len(args) == 2 and args[0] == "--admin" and re.fullmatch(TENANT_RE, args[1]):
        return {"scope": "longship:admin", "tenant_id": args[1]}
    if len(args) == 1 and re.fullmatch(TENANT_RE, args[0]):
        return {"tenant_id": args[0]}
    return None


def main() -> int:
    claims = claims_for(sys.argv[1:])
    if claims is None:
        print(USAGE, file=sys.stderr)
        return 2
    secret = os.environ.get("AUTH_JWT_SECRET", "longship-dev-secret-change-me").encode()
    ttl = int(os.environ.get("TOKEN_TTL_SECS", "3600"))
    header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    claims.update({"sub": os.environ.get("TOKEN_SUB", "dev"), "exp": int(time.time()) + ttl})
    payload = b64(json.dumps(claims, separators=(",", ":")).encode())
    signature = b64(hmac.new(secret, f"{header}.{payload}".encode(), hashlib.sha256).digest())
    print(f"{header}.{payload}.{signature}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
