#!/usr/bin/env python3
"""Idle keep-alive clients for bench/l7.sh: opens N connections to 127.0.0.1:PORT, sends
one `GET /ok` on each and reads its answer, then holds them all open for HOLD seconds and
reads the proxy's VmRSS before the first connection and while all are held. Prints one
WRKRESULT line (the same fields as wrk's, plus rss_before_kib and rss_held_kib) and
closes everything. A benchmark helper: it never judges a number.

Usage: l7_idle.py PORT N HOLD_SECONDS [PID]
"""
import socket
import sys
import time


def vm_rss_kib(pid):
    if not pid:
        return ""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return line.split()[1]
    return ""


def read_response(s):
    """Reads one response with a Content-Length body; returns its status code."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(4096)
        if not chunk:
            raise ConnectionError("closed before the head")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    length = 0
    for h in lines[1:]:
        name, _, value = h.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = s.recv(4096)
        if not chunk:
            raise ConnectionError("closed in the body")
        body += chunk
    return status


def main():
    port, n, hold = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
    pid = sys.argv[4] if len(sys.argv) > 4 else ""
    request = b"GET /ok HTTP/1.1\r\nHost: localhost\r\n\r\n"
    rss_before = vm_rss_kib(pid)
    held, latencies = [], []
    errors = {"connect": 0, "read": 0, "write": 0, "status": 0, "timeout": 0}
    t0 = time.monotonic()
    for _ in range(n):
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
        except OSError:
            errors["connect"] += 1
            continue
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        start = time.monotonic()
        try:
            s.sendall(request)
        except OSError:
            errors["write"] += 1
            s.close()
            continue
        try:
            status = read_response(s)
        except socket.timeout:
            errors["timeout"] += 1
            s.close()
            continue
        except (OSError, ValueError, IndexError):
            errors["read"] += 1
            s.close()
            continue
        latencies.append((time.monotonic() - start) * 1e6)
        if status >= 400:
            errors["status"] += 1
        held.append(s)
    elapsed = time.monotonic() - t0
    time.sleep(hold)
    rss_held = vm_rss_kib(pid)
    # A connection the proxy closed while held reads as end of file: count it.
    closed = 0
    for s in held:
        s.setblocking(False)
        try:
            if s.recv(1) == b"":
                closed += 1
        except BlockingIOError:
            pass
        except OSError:
            closed += 1
    errors["read"] += closed
    latencies.sort()

    def pct(p):
        return latencies[min(len(latencies) - 1, int(len(latencies) * p / 100))] if latencies else 0

    print(f"opened {n} connections, {len(held)} answered and held for {hold}s "
          f"({closed} closed by the server meanwhile); VmRSS {rss_before or '-'} -> {rss_held or '-'} KiB")
    print("WRKRESULT requests=%d duration_us=%.0f bytes=0 p50_us=%.0f p99_us=%.0f max_us=%.0f "
          "connect=%d read=%d write=%d status=%d timeout=%d rss_before_kib=%s rss_held_kib=%s" % (
              len(latencies), elapsed * 1e6, pct(50), pct(99), latencies[-1] if latencies else 0,
              errors["connect"], errors["read"], errors["write"], errors["status"], errors["timeout"],
              rss_before, rss_held))
    for s in held:
        s.close()


if __name__ == "__main__":
    main()
