#!/usr/bin/env python3
"""A hostile registry for the e2e tests: a distribution API that serves one image,
``127.0.0.1:PORT/x:1``, with one part of it made by an attacker (``--scenario``).

    hostile_registry.py --scenario endless-manifest --port-file PORT [--log FILE]

It listens on 127.0.0.1 on a free port (written to --port-file once it accepts connections)
and on a second free port of 127.0.0.1, the *other* listener (written to --other-port-file):
the token realm of ``token-elsewhere`` and the target of ``redirect``'s blob redirects.
``--log`` gets one JSON line per request: ``listener`` (``registry`` or ``other``),
``method``, ``path``, ``authorization`` (the scheme, ``Basic``/``Bearer``, or null: never the
credentials), ``action`` (what was served).

The image (``x:1``; every other tag of every repository is 404 ``MANIFEST_UNKNOWN`` unless the
scenario says otherwise) is valid but for the scenario: one gzip layer holding
``hostile/hello.txt``, a config for linux/amd64, an OCI manifest. Scenarios:

- ``path-digest``, ``malformed-digest``: ``--digest VALUE`` is put where ``--digest-in``
  says: ``layer`` (the manifest's layer descriptor, default), ``config``, ``index`` (``x:1``
  is an index whose linux/amd64 entry has that digest) or ``header`` (every manifest answer's
  ``Docker-Content-Digest``, for every tag). A path-like digest (``sha256:../../v``, or an
  absolute path) names a victim file the test planted; every request for a path the API does
  not know (what a client makes of ``/v2/x/blobs/../../victim``) is answered 200 with
  ``PLANTED`` bytes, so a client that writes what it gets changes the victim.
- ``huge-manifest``: every manifest is 64 MiB (``--size``), with its Content-Length;
  ``endless-manifest``: a chunked body that never ends. HEAD answers carry no
  ``Docker-Content-Digest`` (a client must GET to learn the digest).
- ``huge-config`` (declared and served 64 MiB) / ``endless-config`` (declared at its real
  size, served without end): the config blob of ``x:1``.
- ``huge-error``: every manifest request is answered ``--status`` (500) with an endless body.
- ``endless-token``: the registry asks for a bearer token (realm ``/token`` on this port),
  whose answer never ends.
- ``wrong-media-type``: every manifest is served as ``--media-type`` (``text/html``) in its
  Content-Type and ``mediaType``, with a valid digest header.
- ``bad-schema``: ``x:1``'s manifest says ``schemaVersion`` ``--schema-version`` (1).
- ``mismatched-blob``: the ``--blob`` (``layer`` or ``config``) served is other bytes of the
  same length than the digest names.
- ``token-elsewhere``: the registry asks for a bearer token from the realm
  ``http://--realm-host:OTHERPORT/token`` (the other listener), which grants ``hostile-token``
  to anyone; the registry takes that token.
- ``redirect``: the registry wants HTTP basic credentials (any); blob GETs are redirected
  (307) to the same path on the other listener, which serves the blob.
- ``slow-headers``: every request gets its status line, then one header byte every
  ``--trickle`` (2) seconds.
- ``bad-upload-location``: uploads are taken as far as their start: a ``POST`` to
  ``/v2/NAME/blobs/uploads/`` is answered 202 with ``Location: --location`` (``::not a
  url``), which names no upload.

Bounded: an endless body stops at --cap bytes (2 GiB) or when the client goes; a trickle
stops after --cap-seconds (600). Stops on SIGTERM (and SIGINT).

Python's standard library only, like fault_proxy.py: it can be run by hand to reproduce a
finding (``curl -v http://127.0.0.1:$(cat PORT)/v2/x/manifests/1``).
"""

from __future__ import annotations

import argparse
import base64
import gzip
import hashlib
import http.server
import io
import json
import os
import re
import signal
import socketserver
import sys
import tarfile
import threading
import time
from typing import Optional

MIB = 1024 * 1024
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
#: What the registry answers for a path its API does not have (a climbing blob path).
PLANTED = b"PLANTED by hostile_registry.py\n"
#: The token `token-elsewhere`'s realm grants.
TOKEN = "hostile-token"
#: How much of an endless body goes out per write.
STEP = 64 * 1024
#: A digest as the OCI image spec writes one (the others are the scenarios' business).
WELL_FORMED = re.compile(r"sha256:[a-f0-9]{64}")

SCENARIOS = (
    "valid",
    "path-digest",
    "malformed-digest",
    "huge-manifest",
    "endless-manifest",
    "huge-config",
    "endless-config",
    "huge-error",
    "endless-token",
    "wrong-media-type",
    "bad-schema",
    "mismatched-blob",
    "token-elsewhere",
    "redirect",
    "bad-upload-location",
    "slow-headers",
)


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonical(value) -> bytes:
    return json.dumps(value, separators=(",", ":"), sort_keys=True).encode()


class Image:
    """The valid image every scenario starts from (deterministic bytes)."""

    def __init__(self) -> None:
        tar_bytes = io.BytesIO()
        with tarfile.open(fileobj=tar_bytes, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for name, kind in (("hostile", tarfile.DIRTYPE), ("hostile/hello.txt", tarfile.REGTYPE)):
                info = tarfile.TarInfo(name)
                info.type = kind
                info.mtime = 0
                content = b"hello from a hostile registry's base\n" if kind == tarfile.REGTYPE else b""
                info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content) if content else None)
        diff_id = sha256(tar_bytes.getvalue())
        self.layer = gzip.compress(tar_bytes.getvalue(), mtime=0)
        self.config = canonical(
            {
                "architecture": "amd64",
                "os": "linux",
                "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]},
                "rootfs": {"type": "layers", "diff_ids": [diff_id]},
                "history": [{"created_by": "hostile_registry.py"}],
            }
        )

    def manifest(self, layer_digest: Optional[str] = None, config_digest: Optional[str] = None,
                 config_size: Optional[int] = None, schema_version: int = 2,
                 media_type: str = OCI_MANIFEST) -> dict:
        return {
            "schemaVersion": schema_version,
            "mediaType": media_type,
            "config": {
                "mediaType": OCI_CONFIG,
                "digest": config_digest or sha256(self.config),
                "size": len(self.config) if config_size is None else config_size,
            },
            "layers": [
                {
                    "mediaType": OCI_LAYER_GZIP,
                    "digest": layer_digest or sha256(self.layer),
                    "size": len(self.layer),
                }
            ],
        }


class Registry(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, args, listener: str, log, lock: threading.Lock):
        super().__init__(("127.0.0.1", 0), Handler)
        self.args = args
        self.listener = listener
        self.log_file = log
        self.lock = lock
        self.image = Image()
        self.other_port = 0
        self.port = self.server_address[1]
        self.stopping = threading.Event()

    def handle_error(self, request, client_address) -> None:
        # A client that goes away mid-body (what a bounded client does) is no error here.
        pass

    def log_line(self, record: dict) -> None:
        if self.log_file is not None:
            with self.lock:
                self.log_file.write(json.dumps(record) + "\n")
                self.log_file.flush()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "hostile-registry/1"
    server: Registry

    def log_message(self, format, *args):  # noqa: A002 (the base class's name)
        pass

    # -- answers ---------------------------------------------------------------------------

    def record(self, action: str) -> None:
        header = self.headers.get("Authorization")
        self.server.log_line(
            {
                "listener": self.server.listener,
                "method": self.command,
                "path": self.path,
                "authorization": header.split(" ", 1)[0] if header else None,
                "action": action,
            }
        )

    def reply(self, status: int, body: bytes, content_type: str = "application/json",
              headers: Optional[dict] = None, length: Optional[int] = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def error(self, status: int, code: str, message: str, headers: Optional[dict] = None) -> None:
        body = json.dumps({"errors": [{"code": code, "message": message, "detail": None}]}).encode()
        self.reply(status, body, headers=headers)

    def endless(self, status: int, content_type: str, headers: Optional[dict] = None,
                filler: bytes = b" ") -> None:
        """A chunked body that never ends (up to --cap bytes, or until the client goes)."""
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Transfer-Encoding", "chunked")
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.close_connection = True
        if self.command == "HEAD":
            return
        chunk = filler * STEP
        framed = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
        sent = 0
        try:
            # Something that opens like a JSON document, so that a parser reads on.
            first = b'{"schemaVersion":2,"padding":"'
            self.wfile.write(f"{len(first):x}\r\n".encode() + first + b"\r\n")
            while sent < self.server.args.cap and not self.server.stopping.is_set():
                self.wfile.write(framed)
                sent += len(chunk)
        except OSError:
            pass

    def huge(self, content_type: str, size: int, headers: Optional[dict] = None) -> None:
        """A body of `size` bytes with its Content-Length (a JSON string that is too long)."""
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(size))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.close_connection = True
        if self.command == "HEAD":
            return
        head, tail = b'{"schemaVersion":2,"padding":"', b'"}'
        chunk = b"A" * STEP
        try:
            self.wfile.write(head)
            left = size - len(head) - len(tail)
            while left > 0 and not self.server.stopping.is_set():
                self.wfile.write(chunk[: min(left, STEP)])
                left -= min(left, STEP)
            self.wfile.write(tail)
        except OSError:
            pass

    def trickle(self) -> None:
        """The status line, then one header byte every --trickle seconds."""
        self.close_connection = True
        started = time.monotonic()
        line = b"X-Hostile-Trickle: " + b"a" * 1_000_000
        try:
            self.wfile.write(b"HTTP/1.1 200 OK\r\n")
            self.wfile.flush()
            for byte in line:
                if time.monotonic() - started > self.server.args.cap_seconds:
                    return
                if self.server.stopping.wait(self.server.args.trickle):
                    return
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
        except OSError:
            pass

    # -- the API ---------------------------------------------------------------------------

    def manifest_headers(self, body: bytes) -> dict:
        args = self.server.args
        if args.scenario == "malformed-digest" and args.digest_in == "header":
            return {"Docker-Content-Digest": args.digest}
        return {"Docker-Content-Digest": sha256(body)}

    def the_manifest(self) -> tuple[bytes, str]:
        """x:1's manifest (or index) and its media type."""
        args, image = self.server.args, self.server.image
        if args.scenario in ("path-digest", "malformed-digest") and args.digest_in == "layer":
            return canonical(image.manifest(layer_digest=args.digest)), OCI_MANIFEST
        if args.scenario in ("path-digest", "malformed-digest") and args.digest_in == "config":
            return canonical(image.manifest(config_digest=args.digest)), OCI_MANIFEST
        if args.scenario in ("path-digest", "malformed-digest") and args.digest_in == "index":
            index = {
                "schemaVersion": 2,
                "mediaType": OCI_INDEX,
                "manifests": [
                    {
                        "mediaType": OCI_MANIFEST,
                        "digest": args.digest,
                        "size": len(canonical(image.manifest())),
                        "platform": {"os": "linux", "architecture": "amd64"},
                    }
                ],
            }
            return canonical(index), OCI_INDEX
        if args.scenario == "huge-config":
            return canonical(image.manifest(config_size=args.size)), OCI_MANIFEST
        if args.scenario == "bad-schema":
            return canonical(image.manifest(schema_version=args.schema_version)), OCI_MANIFEST
        return canonical(image.manifest()), OCI_MANIFEST

    def manifest(self, name: str, reference: str) -> None:
        args, image = self.server.args, self.server.image
        scenario = args.scenario
        if scenario == "huge-manifest":
            self.record("huge-manifest")
            return self.huge(OCI_MANIFEST, args.size)
        if scenario == "endless-manifest":
            self.record("endless-manifest")
            return self.endless(200, OCI_MANIFEST)
        if scenario == "huge-error":
            self.record(f"endless-{args.status}")
            return self.endless(args.status, "application/json")
        if scenario == "wrong-media-type":
            body = canonical(image.manifest(media_type=args.media_type))
            self.record("wrong-media-type")
            return self.reply(200, body, args.media_type, self.manifest_headers(body))
        the_body, the_type = self.the_manifest()
        known = {sha256(the_body): (the_body, the_type)}
        plain = canonical(image.manifest())
        known.setdefault(sha256(plain), (plain, OCI_MANIFEST))
        if name == "x" and reference == "1":
            found = (the_body, the_type)
        else:
            found = known.get(reference)
        header_everywhere = scenario == "malformed-digest" and args.digest_in == "header"
        if found is None and header_everywhere:
            # Every tag "exists", named by a digest that is none.
            found = (plain, OCI_MANIFEST)
        if found is None:
            self.record("manifest-unknown")
            return self.error(404, "MANIFEST_UNKNOWN", f"manifest unknown: {name}:{reference}")
        body, media_type = found
        self.record("manifest")
        self.reply(200, body, media_type, self.manifest_headers(body))

    def blob(self, name: str, digest: str) -> None:
        args, image = self.server.args, self.server.image
        scenario = args.scenario
        config, layer = sha256(image.config), sha256(image.layer)
        if scenario == "huge-config" and digest == config:
            self.record("huge-config")
            return self.huge("application/octet-stream", args.size)
        if scenario == "endless-config" and digest == config:
            self.record("endless-config")
            return self.endless(200, "application/octet-stream")
        if scenario == "redirect" and self.server.listener == "registry":
            self.record("redirect")
            self.send_response(307)
            self.send_header("Location", f"http://127.0.0.1:{self.server.other_port}{self.path}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        blobs = {config: image.config, layer: image.layer}
        if digest not in blobs and not WELL_FORMED.fullmatch(digest):
            # A digest that is a path: what a client that writes it somewhere gets to write.
            self.record("planted")
            return self.reply(200, PLANTED, "application/octet-stream")
        if digest not in blobs:
            self.record("blob-unknown")
            return self.error(404, "BLOB_UNKNOWN", f"blob unknown: {digest}")
        data = blobs[digest]
        if scenario == "mismatched-blob" and digest == (config if args.blob == "config" else layer):
            # Other bytes of the same length.
            data = bytes(b ^ 0x20 for b in data)
            self.record("mismatched-blob")
        else:
            self.record("blob")
        self.reply(200, data, "application/octet-stream", {"Docker-Content-Digest": digest})

    def token(self) -> None:
        scenario = self.server.args.scenario
        if scenario == "endless-token":
            self.record("endless-token")
            return self.endless(200, "application/json")
        body = json.dumps({"token": TOKEN, "access_token": TOKEN, "expires_in": 300}).encode()
        self.record("token")
        self.reply(200, body)

    def challenge(self) -> Optional[dict]:
        """The `WWW-Authenticate` header when the request lacks what the scenario asks."""
        args = self.server.args
        given = self.headers.get("Authorization", "")
        if args.scenario == "redirect":
            return None if given.startswith("Basic ") else {"WWW-Authenticate": 'Basic realm="hostile"'}
        if args.scenario in ("endless-token", "token-elsewhere"):
            if given == f"Bearer {TOKEN}":
                return None
            if args.scenario == "endless-token":
                realm = f"http://127.0.0.1:{self.server.port}/token"
            else:
                realm = f"http://{args.realm_host}:{self.server.other_port}/token"
            scope = ""
            parts = self.path.split("/")
            if len(parts) > 3 and parts[1] == "v2":
                scope = f',scope="repository:{parts[2]}:pull"'
            return {"WWW-Authenticate": f'Bearer realm="{realm}",service="hostile"{scope}'}
        return None

    def handle_any(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(min(length, 16 * MIB))
        if self.server.args.scenario == "slow-headers":
            self.record("trickle")
            return self.trickle()
        path = self.path.split("?", 1)[0]
        if self.server.listener == "other":
            if path == "/token":
                return self.token()
            if path.startswith("/v2/") and "/blobs/" in path:
                name, digest = path[len("/v2/"):].rsplit("/blobs/", 1)
                return self.blob(name, digest)
            self.record("unknown")
            return self.error(404, "NOT_FOUND", "not here")
        if path == "/token":
            return self.token()
        challenge = self.challenge()
        if challenge is not None:
            self.record("challenge")
            return self.error(401, "UNAUTHORIZED", "authentication required", challenge)
        if path in ("/v2", "/v2/"):
            self.record("ping")
            return self.reply(200, b"{}")
        if self.command in ("GET", "HEAD") and path.startswith("/v2/"):
            rest = path[len("/v2/"):]
            if "/manifests/" in rest:
                name, reference = rest.rsplit("/manifests/", 1)
                return self.manifest(name, reference)
            if "/blobs/" in rest and "/blobs/uploads" not in rest:
                name, digest = rest.rsplit("/blobs/", 1)
                return self.blob(name, digest)
        if (
            self.server.args.scenario == "bad-upload-location"
            and self.command == "POST"
            and path.startswith("/v2/")
            and path.endswith("/blobs/uploads/")
        ):
            self.record("bad-location")
            self.send_response(202)
            self.send_header("Location", self.server.args.location)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        if self.command in ("GET", "HEAD"):
            # A path no API route has: what a digest with `..` in it becomes.
            self.record("planted")
            return self.reply(200, PLANTED, "application/octet-stream")
        self.record("unsupported")
        self.error(405, "UNSUPPORTED", "this registry takes no uploads")

    do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = handle_any


def write_port(path: str, port: int) -> None:
    # Written whole and renamed: a reader never sees half a port number.
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(str(port))
    os.replace(tmp, path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", required=True, choices=SCENARIOS)
    parser.add_argument("--port-file", required=True, help="where to write the port, once listening")
    parser.add_argument("--other-port-file", help="where to write the other listener's port")
    parser.add_argument("--log", help="one JSON line per request")
    parser.add_argument("--digest", default="sha256:xyz", help="path-digest, malformed-digest: the digest")
    parser.add_argument("--digest-in", default="layer", choices=("layer", "config", "index", "header"))
    parser.add_argument("--size", type=int, default=64 * MIB, help="huge-*: the body's size")
    parser.add_argument("--status", type=int, default=500, help="huge-error: the status")
    parser.add_argument("--media-type", default="text/html", help="wrong-media-type: the type")
    parser.add_argument("--schema-version", type=int, default=1, help="bad-schema: the version")
    parser.add_argument("--blob", default="layer", choices=("layer", "config"), help="mismatched-blob")
    parser.add_argument("--location", default="::not a url", help="bad-upload-location")
    parser.add_argument("--realm-host", default="127.0.0.1", help="token-elsewhere: the realm's host")
    parser.add_argument("--trickle", type=float, default=2.0, help="slow-headers: seconds per byte")
    parser.add_argument("--cap", type=int, default=2 * 1024 * MIB, help="most bytes of an endless body")
    parser.add_argument("--cap-seconds", type=float, default=600.0, help="longest trickle")
    args = parser.parse_args()
    log = open(args.log, "a", encoding="utf-8") if args.log else None
    lock = threading.Lock()
    registry = Registry(args, "registry", log, lock)
    other = Registry(args, "other", log, lock)
    registry.other_port = other.other_port = other.port
    other.other_port = other.port

    def stop(signum, frame):
        registry.stopping.set()
        other.stopping.set()
        # shutdown() waits for serve_forever's loop: not from its own thread.
        threading.Thread(target=registry.shutdown, daemon=True).start()
        threading.Thread(target=other.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    threading.Thread(target=other.serve_forever, daemon=True).start()
    if args.other_port_file:
        write_port(args.other_port_file, other.port)
    write_port(args.port_file, registry.port)
    registry.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
