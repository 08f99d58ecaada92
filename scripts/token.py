#!/usr/bin/env python3
"""Prints a development JWT (HS256) for a tenant: `just token acme`.

Signed with AUTH_JWT_SECRET (default: the secret `just up` gives the services). Standard library only.
"""
import base64
import hashlib
import hmac
import json
import os
import re
import sys
import time


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def main() -> int:
    if len(sys.argv) != 2 or not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,62}", sys.argv[1]):
        print("usage: just token TENANT   (TENANT matches [a-z0-9][a-z0-9-]{0,62})", file=sys.stderr)
        return 2
    secret = os.environ.get("AUTH_JWT_SECRET", "longship-dev-secret-change-me").encode()
    ttl = int(os.environ.get("TOKEN_TTL_SECS", "3600"))
    header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    claims = {"tenant_id": sys.argv[1], "sub": "dev", "exp": int(time.time()) + ttl}
    payload = b64(json.dumps(claims, separators=(",", ":")).encode())
    signature = b64(hmac.new(secret, f"{header}.{payload}".encode(), hashlib.sha256).digest())
    print(f"{header}.{payload}.{signature}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
