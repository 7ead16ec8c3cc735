#!/usr/bin/env python3
"""A token server for distribution's `auth: token` (docker's bearer token scheme), for tests.

Python's standard library only; tokens are RS256 JWTs signed with `openssl dgst`, their header
carrying the signing certificate (`x5c`), which is also the registry's `rootcertbundle`.

Endpoints (one realm, `/token`):
  GET  /token?service=S&scope=...            HTTP basic auth or none (anonymous)
  POST /token  grant_type=password           username, password   (distribution's OAuth2 spec)
  POST /token  grant_type=refresh_token      refresh_token        (identity tokens)
     both with service, scope (space separated), client_id; access_type=offline (password
     grant) also returns a refresh_token.

Users (--users FILE, JSON {"name": {"password": P, "actions": ["pull", "push"]}}): what each may
do on every repository; anyone may pull `public/*`. Refresh tokens (--refresh-tokens FILE, JSON
{"token": "user"}) are the identity tokens tests put in a docker config. A wrong password or an
unknown refresh token is a 401 with distribution's error JSON; scopes a user may not have are
granted empty, as the spec says (the registry then answers 401 insufficient_scope).

Tokens live --ttl seconds (`exp` and `expires_in`), so that clients refresh them during one
push or build (the request log shows it). The registry itself accepts a token up to 60 s past
its `exp` (distribution's clock-skew leeway), and docker's and containerd's clients count a
token as good for at least 60 s whatever it says (they rely on that leeway): a token set to
die earlier than that would break dockerd's own pushes, as no registry does.

--log FILE records one JSON line per request (method, grant, user, scopes asked and granted,
status): never a password or a token.
"""

import argparse
import base64
import http.server
import json
import os
import secrets
import subprocess
import sys
import threading
import time
import urllib.parse

def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Issuer:
    def __init__(self, key, cert, issuer, ttl):
        self.key = key
        self.issuer = issuer
        self.ttl = ttl
        der = subprocess.run(
            ["openssl", "x509", "-in", cert, "-outform", "DER"],
            check=True,
            capture_output=True,
        ).stdout
        self.x5c = base64.b64encode(der).decode()

    def sign(self, subject, audience, access):
        now = int(time.time())
        header = {"typ": "JWT", "alg": "RS256", "x5c": [self.x5c]}
        claims = {
            "iss": self.issuer,
            "sub": subject,
            "aud": audience,
            "exp": now + self.ttl,
            "nbf": now - 1,
            "iat": now,
            "jti": secrets.token_hex(8),
            "access": access,
        }
        signing_input = (
            b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(claims).encode())
        )
        signature = subprocess.run(
            ["openssl", "dgst", "-sha256", "-sign", self.key],
            input=signing_input.encode(),
            check=True,
            capture_output=True,
        ).stdout
        return signing_input + "." + b64url(signature), now


def parse_scopes(values):
    """`repository:NAME:ACTIONS` scopes (several per value, space separated)."""
    out = []
    for value in values:
        for scope in value.split():
            parts = scope.split(":")
            if len(parts) >= 3 and parts[0] == "repository":
                name = ":".join(parts[1:-1])
                out.append((name, [a for a in parts[-1].split(",") if a]))
    return out


class Handler(http.server.BaseHTTPRequestHandler):
    server_version = "imagespec-e2e-token/1"

    def log_message(self, fmt, *args):  # the JSON log is the log
        pass

    def reply(self, status, body, record):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if status == 401:
            self.send_header("WWW-Authenticate", 'Basic realm="imagespec-e2e-token"')
        self.end_headers()
        self.wfile.write(data)
        record["status"] = status
        state = self.server.state
        with state["lock"]:
            if state["log"]:
                with open(state["log"], "a") as f:
                    f.write(json.dumps(record) + "\n")

    def refuse(self, record, message):
        self.reply(401, {"errors": [{"code": "UNAUTHORIZED", "message": message}]}, record)

    def grant(self, user, service, scopes, record, refresh=None):
        state = self.server.state
        allowed = state["users"].get(user, {}).get("actions", []) if user else []
        access = []
        for name, actions in scopes:
            granted = [
                a
                for a in actions
                if a in allowed or (a == "pull" and name.startswith("public/"))
            ]
            access.append({"type": "repository", "name": name, "actions": granted})
        record["granted"] = [f"{a['name']}:{','.join(a['actions'])}" for a in access]
        token, issued = state["issuer"].sign(user or "", service, access)
        body = {
            "token": token,
            "access_token": token,
            "expires_in": state["issuer"].ttl,
            "issued_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(issued)),
        }
        if refresh:
            body["refresh_token"] = refresh
        self.reply(200, body, record)

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(url.query)
        record = {"method": "GET", "grant": "basic", "scopes": query.get("scope", [])}
        if url.path != "/token":
            return self.reply(404, {"errors": [{"code": "NOT_FOUND"}]}, record)
        user = None
        header = self.headers.get("Authorization", "")
        if header.startswith("Basic "):
            try:
                name, _, password = base64.b64decode(header[6:]).decode().partition(":")
            except ValueError:
                return self.refuse(record, "malformed basic auth")
            record["user"] = name
            if self.server.state["users"].get(name, {}).get("password") != password:
                return self.refuse(record, "authentication failed")
            user = name
        else:
            record["grant"] = "anonymous"
        service = (query.get("service") or [""])[0]
        self.grant(user, service, parse_scopes(query.get("scope", [])), record)

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        form = urllib.parse.parse_qs(self.rfile.read(length).decode())
        grant_type = (form.get("grant_type") or [""])[0]
        record = {
            "method": "POST",
            "grant": grant_type,
            "client_id": (form.get("client_id") or [""])[0],
            "scopes": form.get("scope", []),
        }
        if urllib.parse.urlsplit(self.path).path != "/token":
            return self.reply(404, {"errors": [{"code": "NOT_FOUND"}]}, record)
        state = self.server.state
        service = (form.get("service") or [""])[0]
        scopes = parse_scopes(form.get("scope", []))
        if grant_type == "password":
            name = (form.get("username") or [""])[0]
            record["user"] = name
            if state["users"].get(name, {}).get("password") != (form.get("password") or [""])[0]:
                return self.refuse(record, "authentication failed")
            refresh = None
            if (form.get("access_type") or [""])[0] == "offline":
                refresh = secrets.token_urlsafe(24)
                with state["lock"]:
                    state["refresh"][refresh] = name
            return self.grant(name, service, scopes, record, refresh)
        if grant_type == "refresh_token":
            token = (form.get("refresh_token") or [""])[0]
            name = state["refresh"].get(token)
            if name is None:
                return self.refuse(record, "unknown refresh token")
            record["user"] = name
            return self.grant(name, service, scopes, record, token)
        self.reply(400, {"errors": [{"code": "UNSUPPORTED", "message": "grant_type"}]}, record)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--listen", default="127.0.0.1:5003")
    p.add_argument("--key", required=True)
    p.add_argument("--cert", required=True)
    p.add_argument("--issuer", default="imagespec-e2e-token-issuer")
    p.add_argument("--users", required=True)
    p.add_argument("--refresh-tokens", required=True)
    p.add_argument("--ttl", type=int, default=int(os.environ.get("TOKEN_TTL", "5")))
    p.add_argument("--log")
    a = p.parse_args()
    with open(a.users) as f:
        users = json.load(f)
    with open(a.refresh_tokens) as f:
        refresh = json.load(f)
    host, port = a.listen.rsplit(":", 1)
    server = http.server.ThreadingHTTPServer((host, int(port)), Handler)
    server.daemon_threads = True
    server.state = {
        "users": users,
        "refresh": refresh,
        "issuer": Issuer(a.key, a.cert, a.issuer, a.ttl),
        "log": a.log,
        "lock": threading.Lock(),
    }
    print(f"token server on {a.listen}, ttl {a.ttl}s", file=sys.stderr, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
