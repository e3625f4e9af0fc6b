#!/usr/bin/python3
"""notification-service's webhook channel against a local HTTP receiver
(docs/FLOW.md, "notification-service"). One scenario per run:

  retry    (default) a failed POST is retried with the same Idempotency-Key
           and then succeeds; a POST that keeps failing is dead-lettered
           after retry_max attempts, with no outbox line and no
           NotificationSent.
  hostile  response bodies never reach stdout (a 5 MB one included); a
           failure's body is logged as a short snippet with its control
           characters escaped; a closed stderr does not kill the service
           (SIGPIPE is ignored).
  budget   a webhook_timeout_ms that, times retry_max, could outlast
           max.poll.interval.ms stops the service at start (exit 2).

Environment (set by ctest): EVK_BIN_DIR (build dir), EVK_SOURCE_DIR.
"""
import collections
import http.server
import json
import os
import select
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from clitest import expect, summary  # noqa: E402
from procs import BIN, SRC, dev_broker, tail  # noqa: E402

GOOD = [f"o-{i}" for i in range(1, 6)]
BAD = "o-always-fails"


class Receiver(http.server.BaseHTTPRequestHandler):
    """Answers 503 to the first POST of each key (500 always for BAD), then 200."""
    posts = collections.defaultdict(list)  # Idempotency-Key -> bodies
    lock = threading.Lock()

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        key = self.headers["Idempotency-Key"]
        with self.lock:
            self.posts[key].append(body)
            first = len(self.posts[key]) == 1
        ok = body["order_id"] != BAD and not first
        self.send_response(200 if ok else (500 if body["order_id"] == BAD else 503))
        self.end_headers()

    def log_message(self, *args):
        pass


def wait_ready(log, proc, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        with open(log) as f:
            if "msg=ready" in f.read():
                return True
        time.sleep(0.05)
    return False


def write_config(work, port, settings="retry_max = 2; retry_backoff_ms = 50;"):
    cfg = os.path.join(work, "evkit.cfg")
    with open(cfg, "w") as f:
        f.write(f'''schemas = {{ dir = "{SRC}/schemas"; }};
notification-service = {{
  outbox = "{os.path.join(work, "outbox.jsonl")}";
  webhook_url = "http://127.0.0.1:{port}/hook";
  {settings}
}};
''')
    return cfg


def produce_confirmed(cfg, brokers, orders):
    lines = "".join(json.dumps({"order_id": o, "customer_id": "c-1", "total_cents": 100,
                                "currency": "EUR"}) + "\n" for o in orders)
    r = subprocess.run([os.path.join(BIN, "producers/evk-produce"), "-F", cfg, "-b", brokers,
                        "-t", "OrderConfirmed", "-"], input=lines, text=True,
                       capture_output=True, timeout=60)
    expect(r.returncode == 0, f"OrderConfirmed events produced: {', '.join(orders)}")


def wait_outcomes(cfg, brokers, sent_orders, dlq_orders, timeout=60):
    """NotificationSent and orders.dlq values once the wanted orders are in them."""
    deadline = time.monotonic() + timeout
    while True:
        sent = [m["value"] for m in tail(cfg, brokers, "notifications")]
        dlq = [m for m in tail(cfg, brokers, "orders.dlq")]
        if (set(sent_orders) <= {v["order_id"] for v in sent} and
                set(dlq_orders) <= {m["value"]["order_id"] for m in dlq}):
            return sent, dlq
        if time.monotonic() > deadline:
            return sent, dlq
        time.sleep(0.2)


def run_retry(work, brokers):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    outbox = os.path.join(work, "outbox.jsonl")
    cfg = write_config(work, server.server_port)
    env = dict(os.environ, EVK_LOG_FORMAT="logfmt")
    log = os.path.join(work, "notification-service.log")
    with open(log, "w") as logf:
        svc = subprocess.Popen([os.path.join(BIN, "consumers/notification-service"), "-F", cfg,
                                "-b", brokers], stderr=logf, env=env)
    try:
        expect(wait_ready(log, svc), "notification-service is ready")
        produce_confirmed(cfg, brokers, GOOD + [BAD])
        sent, dlq = wait_outcomes(cfg, brokers, GOOD, [BAD])
    finally:
        svc.terminate()
        expect(svc.wait(30) == 0, "notification-service exits 0 on SIGTERM")
        server.shutdown()

    expect(sorted(v["order_id"] for v in sent) == GOOD and
           all(v["channel"] == "webhook" for v in sent),
           "one NotificationSent (channel webhook) per delivered notification")
    posts = Receiver.posts
    for v in sent:
        bodies = posts.get(v["notification_id"], [])
        expect(len(bodies) == 2 and bodies[0] == bodies[1],
               f"{v['order_id']}: retried once with the same key and body")
    bad_keys = [k for k, b in posts.items() if b[0]["order_id"] == BAD]
    expect(len(bad_keys) == 1 and len(posts[bad_keys[0]]) == 2,
           "the failing notification was tried retry_max (2) times")
    expect(len(dlq) == 1 and dlq[0]["value"]["order_id"] == BAD and
           dlq[0]["headers"].get("evk_dlq_service") == "notification-service",
           "then dead-lettered to orders.dlq")
    with open(outbox) as f:
        box = [json.loads(line) for line in f]
    expect(sorted(b["notification_id"] for b in box) == sorted(v["notification_id"] for v in sent),
           "the outbox holds exactly the delivered notifications")
    expect(all(b == posts[b["notification_id"]][0] for b in box),
           "outbox lines are the POSTed bodies")


BIG = 5 * 1024 * 1024
# A response that pretends to be a log line of its own, with terminal
# escapes (clear screen, red), a bell and a C1 control byte.
EVIL = (b"denied\n2030-01-01T00:00:00.000Z level=info component=notification-service "
        b"msg=notified order_id=o-evil\x1b[2J\x1b[31mpwned\x1b[0m\x07\x9b\n")


class Hostile(http.server.BaseHTTPRequestHandler):
    """200 with a 5 MB body for o-big, 500 with EVIL for o-evil, else 200 "ok"."""

    def do_POST(self):
        order = json.loads(self.rfile.read(int(self.headers["Content-Length"])))["order_id"]
        status, body = {"o-big": (200, b"x" * BIG), "o-evil": (500, EVIL)}.get(order,
                                                                              (200, b"ok\n"))
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class StderrPipe:
    """Reads a child's stderr until told to close the pipe's read end."""

    def __init__(self):
        self.read_fd, self.write_fd = os.pipe()
        self.data = bytearray()
        self.lock = threading.Lock()
        self.closing = threading.Event()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        while not self.closing.is_set():
            if select.select([self.read_fd], [], [], 0.05)[0]:
                chunk = os.read(self.read_fd, 65536)
                if not chunk:
                    break
                with self.lock:
                    self.data += chunk
        os.close(self.read_fd)

    def text(self):
        with self.lock:
            return bytes(self.data)

    def wait_for(self, needle, proc, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and proc.poll() is None:
            if needle in self.text():
                return True
            time.sleep(0.05)
        return needle in self.text()

    def close(self):
        """From now on every write of the child to stderr meets EPIPE."""
        self.closing.set()
        self.thread.join()


def run_hostile(work, brokers):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hostile)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    cfg = write_config(work, server.server_port)
    env = dict(os.environ, EVK_LOG_FORMAT="logfmt")
    stdout_path = os.path.join(work, "stdout")
    err = StderrPipe()
    with open(stdout_path, "wb") as out:
        svc = subprocess.Popen([os.path.join(BIN, "consumers/notification-service"), "-F", cfg,
                                "-b", brokers], stdout=out, stderr=err.write_fd, env=env)
    os.close(err.write_fd)
    try:
        expect(err.wait_for(b"msg=ready", svc), "notification-service is ready")
        produce_confirmed(cfg, brokers, ["o-big", "o-evil"])
        sent, dlq = wait_outcomes(cfg, brokers, ["o-big"], ["o-evil"])
        expect([v["order_id"] for v in sent] == ["o-big"], "the 5 MB answer counts as delivered")
        expect([m["value"]["order_id"] for m in dlq] == ["o-evil"],
               "the failing one is dead-lettered")
        expect(os.path.getsize(stdout_path) == 0, "nothing was written to stdout")
        log = err.text()
        expect(len(log) < 64 * 1024, f"the log stays small ({len(log)} bytes)")
        expect(not any(c in log for c in (b"\x1b", b"\x07", b"\x9b")),
               "no control character of a response reached the log")
        expect(b"\n2030-01-01" not in log, "no forged log line")
        failed = [line for line in log.decode(errors="replace").splitlines()
                  if "msg=\"webhook failed\"" in line]
        expect(len(failed) == 2 and all("http_status=500" in line and
                                        "body=\"denied\\\\x0a2030-01-01" in line and
                                        "\\\\x1b[31mpwned" in line for line in failed),
               "each failure logs the body's start, escaped: " + (failed[0] if failed else ""))

        err.close()
        produce_confirmed(cfg, brokers, ["o-after"])
        sent, _ = wait_outcomes(cfg, brokers, ["o-big", "o-after"], [], timeout=30)
        expect("o-after" in [v["order_id"] for v in sent],
               "with stderr closed, the service keeps delivering")
    finally:
        svc.terminate()
        rc = svc.wait(30)
        expect(rc == 0, f"notification-service exits 0 on SIGTERM (got {rc})")
        server.shutdown()
        err.close()


def start_failure(work, settings, *args):
    """Exit code and stderr of a start that should fail before any broker
    is contacted (the one given accepts no connection)."""
    cfg = write_config(work, 9, settings)
    cmd = [os.path.join(BIN, "consumers/notification-service"), "-F", cfg, "-b", "127.0.0.1:9",
           *args]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=15)
        return r.returncode, r.stderr
    except subprocess.TimeoutExpired as e:
        return "still running after 15 s", (e.stderr or b"").decode()


def run_budget(work):
    rc, log = start_failure(work, "webhook_timeout_ms = 20000; retry_max = 3;", "-X",
                            "max.poll.interval.ms=60000")
    expect(rc == 2, f"3 tries of 20 s against max.poll.interval.ms=60000: exit 2 (got {rc})")
    expect("notification-service.webhook_timeout_ms (20000 ms)" in log and
           "notification-service.retry_max (3)" in log and "max.poll.interval.ms (60000 ms)" in log,
           "the error names the settings: " + log.strip()[-400:])
    rc, log = start_failure(work, "webhook_timeout_ms = 0;")
    expect(rc == 2 and "notification-service.webhook_timeout_ms: must be at least 1" in log,
           f"webhook_timeout_ms = 0 (no timeout to libcurl): exit 2 (got {rc})")


def main():
    scenario = sys.argv[1] if len(sys.argv) > 1 else "retry"
    with tempfile.TemporaryDirectory(prefix="evk-webhook-") as work:
        if scenario == "budget":
            run_budget(work)
        else:
            with dev_broker(work, ["orders", "shipments", "notifications"]) as brokers:
                {"retry": run_retry, "hostile": run_hostile}[scenario](work, brokers)
    return summary()


if __name__ == "__main__":
    sys.exit(main())
