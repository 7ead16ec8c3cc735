#!/usr/bin/env python3
"""A fault-injecting HTTP proxy for the e2e tests: put it in front of a registry, and chosen
requests stall or fail; everything else passes through unchanged.

    fault_proxy.py --upstream 127.0.0.1:5000 --port-file PORT \
        --fault 'PUT:/blobs/uploads/:stall' --fault 'HEAD,GET:/manifests/:503:1'

It listens on 127.0.0.1 on a free port (written to --port-file once it accepts
connections) and logs one line per request to --log (``METHOD PATH -> ACTION``), so a test
can tell that a request was retried. A fault is ``METHODS:PATH_REGEX:ACTION[:COUNT]``:

- METHODS: comma-separated (``HEAD,GET``) or ``*``;
- PATH_REGEX: searched in the request path (``/manifests/``, ``/blobs/uploads/``);
- ACTION: ``stall`` (read the whole request, then never answer: a registry that takes a
  blob and hangs), ``stall-body`` (answer the status line, the headers and half the body,
  then hang: a download that stops), ``slow`` (pass through, reading the request body and
  writing the answer body at 4 MiB/s in 64 KiB steps: slow, never silent), ``close`` (read
  64 KiB of the request body, then reset the connection: a registry that dies mid-upload),
  or a status code (``503``: answered with an OCI error body);
- COUNT: how many matching requests get the fault (default: all of them); later ones pass.

The first fault that matches a request (and has count left) applies. Stalled connections
stay open until the proxy is stopped (SIGTERM/SIGKILL from the test, by PID).

Python's standard library only: the test harness already needs python3, and the proxy can be
run by hand to reproduce a fault against a real registry.
"""

from __future__ import annotations

import argparse
import http.client
import http.server
import json
import os
import re
import socket
import socketserver
import struct
import sys
import threading
import time

#: ``slow``: 64 KiB every 1/64 s (4 MiB/s at most).
SLOW_STEP = 64 * 1024
SLOW_PAUSE = 1 / 64

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection"}


class Fault:
    def __init__(self, text: str):
        # PATH_REGEX may hold colons (`sha256:`): METHODS is cut from the left, ACTION and
        # COUNT from the right.
        parts = text.split(":")
        if len(parts) < 3:
            raise argparse.ArgumentTypeError(f"{text!r}: expected METHODS:PATH_REGEX:ACTION[:COUNT]")
        if len(parts) >= 4 and parts[-1].isdigit() and self.is_action(parts[-2]):
            pattern, action, count = ":".join(parts[1:-2]), parts[-2], int(parts[-1])
        else:
            pattern, action, count = ":".join(parts[1:-1]), parts[-1], None
        if not self.is_action(action):
            raise argparse.ArgumentTypeError(f"{text!r}: ACTION is stall, stall-body or a status code")
        methods = parts[0]
        self.methods = None if methods == "*" else {m.strip().upper() for m in methods.split(",")}
        self.pattern = re.compile(pattern)
        self.action = action
        self.left = count
        self.text = text

    @staticmethod
    def is_action(text: str) -> bool:
        return text in ("stall", "stall-body", "slow", "close") or (text.isdigit() and len(text) == 3)

    def take(self, method: str, path: str) -> bool:
        """Whether this fault applies to the request (using up one of its count)."""
        if self.methods is not None and method not in self.methods:
            return False
        if not self.pattern.search(path):
            return False
        if self.left is not None:
            if self.left <= 0:
                return False
            self.left -= 1
        return True


class Proxy(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, upstream: str, faults: list[Fault], log):
        super().__init__(("127.0.0.1", 0), Handler)
        self.upstream = upstream
        self.faults = faults
        self.lock = threading.Lock()
        self.log_file = log

    def choose(self, method: str, path: str) -> str:
        with self.lock:
            for fault in self.faults:
                if fault.take(method, path):
                    return fault.action
        return "pass"

    def handle_error(self, request, client_address) -> None:
        # A connection the proxy reset on purpose (`close`) fails its handler's cleanup.
        pass

    def log_line(self, text: str) -> None:
        if self.log_file is not None:
            with self.lock:
                self.log_file.write(text + "\n")
                self.log_file.flush()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Proxy

    def log_message(self, format, *args):  # noqa: A002 (the base class's name)
        pass

    def read_exactly(self, size: int, slow: bool) -> bytes:
        if not slow:
            return self.rfile.read(size)
        data = bytearray()
        while len(data) < size:
            data += self.rfile.read(min(SLOW_STEP, size - len(data)))
            time.sleep(SLOW_PAUSE)
        return bytes(data)

    def read_body(self, slow: bool = False) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            body = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return bytes(body)
                body += self.read_exactly(size, slow)
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.read_exactly(length, slow) if length else b""

    def stall(self) -> None:
        # Hold the connection open, answering nothing, until the proxy is stopped.
        while True:
            time.sleep(3600)

    def upstream_response(self, body: bytes):
        connection = http.client.HTTPConnection(self.server.upstream, timeout=300)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        if body or self.command in ("PUT", "POST", "PATCH"):
            headers["Content-Length"] = str(len(body))
        connection.request(self.command, self.path, body=body, headers=headers)
        response = connection.getresponse()
        data = response.read()
        connection.close()
        return response, data

    def handle_any(self) -> None:
        # Chosen before the body is read: `slow` reads it slowly, `close` hardly at all.
        action = self.server.choose(self.command, self.path)
        if action == "close":
            self.server.log_line(f"{self.command} {self.path} -> {action}")
            self.rfile.read(min(64 * 1024, int(self.headers.get("Content-Length") or 0)))
            # SO_LINGER 0: the close sends a reset, as a killed process's socket does.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
            self.close_connection = True
            return
        body = self.read_body(slow=action == "slow")
        self.server.log_line(f"{self.command} {self.path} -> {action}")
        if action == "stall":
            self.stall()
        if action not in ("pass", "stall-body", "slow"):
            payload = json.dumps(
                {"errors": [{"code": "UNAVAILABLE", "message": f"fault_proxy: {action}", "detail": None}]}
            ).encode()
            self.send_response(int(action))
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)
            return
        response, data = self.upstream_response(body)
        self.send_response(response.status, response.reason)
        for key, value in response.getheaders():
            if key.lower() not in HOP_BY_HOP and key.lower() != "content-length":
                self.send_header(key, value)
        if self.command == "HEAD":
            # A HEAD answer carries the length of the body it does not send.
            length = response.getheader("Content-Length")
            if length is not None:
                self.send_header("Content-Length", length)
            self.end_headers()
            return
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if action == "stall-body":
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.stall()
        if action == "slow":
            for start in range(0, len(data), SLOW_STEP):
                self.wfile.write(data[start : start + SLOW_STEP])
                self.wfile.flush()
                time.sleep(SLOW_PAUSE)
            return
        self.wfile.write(data)

    do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = handle_any


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--upstream", required=True, help="HOST:PORT of the registry (plain HTTP)")
    parser.add_argument("--port-file", required=True, help="where to write the port, once listening")
    parser.add_argument("--fault", action="append", type=Fault, default=[], help="METHODS:PATH_REGEX:ACTION[:COUNT]")
    parser.add_argument("--log", help="one line per request: METHOD PATH -> ACTION")
    args = parser.parse_args()
    log = open(args.log, "a", encoding="utf-8") if args.log else None
    proxy = Proxy(args.upstream, args.fault, log)
    # Written whole and renamed: a reader never sees half a port number.
    tmp = f"{args.port_file}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(str(proxy.server_address[1]))
    os.replace(tmp, args.port_file)
    try:
        proxy.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
