#!/usr/bin/python3
"""A service's /healthz under slow clients (README, "Health and metrics").

payment-service runs as deployed, with the usual 1,024-descriptor limit.
1,200 connections from 127.0.0.1 each send the start of a request and then
one byte a second, never finishing it. While they trickle:
  - a fresh GET /healthz from another address (127.0.0.2: the loopback
    network is all of 127/8) is answered 200 within 1 s: one address holds
    at most metrics_max_connections_per_ip slots, so it cannot take them all;
  - a fresh GET from 127.0.0.1 itself is answered or refused within 1 s,
    never left hanging (with the defaults it is refused: that address has
    used its share, and trickling keeps the slots from timing out);
  - the endpoint closes all but that share of the 1,200 at once;
  - connections that send nothing are closed after metrics.timeout_s (set
    to 2 here);
  - the service logs the rejections in a few lines, not one per connection,
    and still stops cleanly.

Environment (set by ctest): EVK_BIN_DIR (build dir), EVK_SOURCE_DIR.
"""
import os
import resource
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from clitest import expect, summary  # noqa: E402
from procs import BIN, dev_broker, unused_port  # noqa: E402

SLOW = 1200
PER_IP = 8  # metrics_max_connections_per_ip's default
IDLE_S = 2  # metrics.timeout_s in this test


def get(port, source="127.0.0.1", timeout=1.0):
    """Status of GET /healthz, None if the connection was closed without an
    answer; raises socket.timeout when nothing happened within @timeout."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout,
                                  source_address=(source, 0)) as s:
        s.settimeout(timeout)
        s.sendall(b"GET /healthz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        data = b""
        try:
            while chunk := s.recv(4096):
                data += chunk
        except ConnectionResetError:
            pass
    return int(data.split()[1]) if data.startswith(b"HTTP/1.") else None


def timed_get(port, source):
    start = time.monotonic()
    try:
        status = get(port, source)
    except (socket.timeout, ConnectionRefusedError, ConnectionResetError) as e:
        status = type(e).__name__
    return status, time.monotonic() - start


def wait_healthy(port, proc, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if get(port) == 200:
                return True
        except OSError:
            pass
        time.sleep(0.05)
    return False


class Tricklers:
    """SLOW connections that start a request and add one byte a second."""

    def __init__(self, port):
        self.socks = []
        self.closed = set()  # closed by the server
        self.rounds = 0
        self.stop = threading.Event()
        for _ in range(SLOW):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", port))
            self.socks.append(s)
        self._wait_connected()
        for s in self.socks:
            self._send(s, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        self.thread = threading.Thread(target=self._trickle, daemon=True)
        self.thread.start()

    def _wait_connected(self, timeout=10):
        poller, pending = select.poll(), {s.fileno(): s for s in self.socks}
        for fd in pending:
            poller.register(fd, select.POLLOUT)
        deadline = time.monotonic() + timeout
        while pending and time.monotonic() < deadline:
            for fd, _ in poller.poll(100):
                poller.unregister(fd)
                del pending[fd]

    def _send(self, s, data):
        try:
            s.send(data)
        except OSError:
            self.closed.add(s)

    def _trickle(self):
        while not self.stop.wait(0.5):
            for s in self.socks:
                if s not in self.closed:
                    self._send(s, b"a")
            self.rounds += 1

    def wait_rounds(self, n, timeout=10):
        deadline = time.monotonic() + timeout
        while self.rounds < n and time.monotonic() < deadline:
            time.sleep(0.05)

    def count_open(self):
        """Connections the server has not closed (EOF or reset)."""
        poller, by_fd = select.poll(), {}
        for s in self.socks:
            if s not in self.closed:
                poller.register(s, select.POLLIN)
                by_fd[s.fileno()] = s
        for fd, _ in poller.poll(0):
            try:
                if not by_fd[fd].recv(4096):
                    self.closed.add(by_fd[fd])
            except OSError:
                self.closed.add(by_fd[fd])
        return len(self.socks) - len(self.closed)

    def wait_open_at_most(self, n, timeout=10):
        deadline = time.monotonic() + timeout
        while (left := self.count_open()) > n and time.monotonic() < deadline:
            time.sleep(0.1)
        return left

    def close(self):
        self.stop.set()
        self.thread.join()
        for s in self.socks:
            s.close()


def expect_idle_closed(port, n=3):
    """@n connections from 127.0.0.3 that never send a byte are closed by the
    endpoint after IDLE_S, not held."""
    socks = [socket.create_connection(("127.0.0.1", port), source_address=("127.0.0.3", 0))
             for _ in range(n)]
    start, closed = time.monotonic(), 0
    for s in socks:
        s.settimeout(max(0.1, start + IDLE_S + 3 - time.monotonic()))
        try:
            closed += s.recv(1) == b""
        except ConnectionResetError:
            closed += 1
        except socket.timeout:
            pass
        s.close()
    took = time.monotonic() - start
    expect(closed == n and took >= IDLE_S - 0.5,
           f"{closed} of {n} silent connections closed after {took:.1f} s (timeout_s {IDLE_S})")


def limit_fds(n):
    """The child's descriptor limit: what a service gets by default."""
    return lambda: resource.setrlimit(resource.RLIMIT_NOFILE,
                                      (n, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))


def run(work, brokers):
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard != resource.RLIM_INFINITY and hard < SLOW + 200:
        raise SystemExit(f"need {SLOW + 200} descriptors, the hard limit is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (SLOW + 200, hard))
    port = unused_port()
    cfg = os.path.join(work, "evkit.cfg")
    with open(cfg, "w") as f:
        f.write(f"metrics = {{ timeout_s = {IDLE_S}; }};\n")
    log = os.path.join(work, "payment-service.log")
    env = dict(os.environ, EVK_METRICS_PORT=str(port), EVK_LOG_FORMAT="logfmt")
    with open(log, "w") as logf:
        svc = subprocess.Popen([os.path.join(BIN, "consumers/payment-service"), "-F", cfg, "-b",
                                brokers], stderr=logf, env=env, preexec_fn=limit_fds(1024))
    slow = None
    try:
        expect(wait_healthy(port, svc), "payment-service answers /healthz")
        slow = Tricklers(port)
        slow.wait_rounds(2)  # every one of them is connected and trickling
        status, took = timed_get(port, "127.0.0.2")
        expect(status == 200 and took < 1,
               f"{SLOW} slow clients on 127.0.0.1: GET /healthz from 127.0.0.2 -> "
               f"{status} in {took:.2f} s")
        status, took = timed_get(port, "127.0.0.1")
        expect(took < 1, f"GET /healthz from 127.0.0.1 itself -> {status or 'refused'} in "
                         f"{took:.2f} s, not left hanging")
        left = slow.wait_open_at_most(PER_IP)
        expect(left <= PER_IP, f"the endpoint holds {left} of them (at most {PER_IP}), "
                               "closed the rest")
        expect_idle_closed(port)
        expect(svc.poll() is None, "payment-service still runs")
    finally:
        if slow:
            slow.close()
        svc.send_signal(signal.SIGTERM)
        rc = svc.wait(30)
        expect(rc == 0, f"payment-service exits 0 on SIGTERM (got {rc})")
    with open(log) as f:
        lines = [line for line in f if "msg=\"metrics endpoint\"" in line]
    expect(0 < len(lines) <= 5, f"the rejections take {len(lines)} log line(s), not one each")
    expect(any("suppressed=" in line for line in lines),
           "the summary counts what it left out: " + (lines[-1].strip() if lines else ""))


def main():
    with tempfile.TemporaryDirectory(prefix="evk-slow-") as work:
        with dev_broker(work, ["inventory", "payments"], 1) as brokers:
            run(work, brokers)
    return summary()


if __name__ == "__main__":
    sys.exit(main())
