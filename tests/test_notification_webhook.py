#!/usr/bin/python3
"""notification-service's webhook channel against a local HTTP receiver:
a failed POST is retried with the same Idempotency-Key and then succeeds; a
POST that keeps failing is dead-lettered after retry_max attempts, with no
outbox line and no NotificationSent (docs/FLOW.md, "notification-service").

Environment (set by ctest): EVK_BIN_DIR (build dir), EVK_SOURCE_DIR.
"""
import collections
import http.server
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

BIN = os.environ.get("EVK_BIN_DIR", "build")
SRC = os.environ.get("EVK_SOURCE_DIR", os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GOOD = [f"o-{i}" for i in range(1, 6)]
BAD = "o-always-fails"
failures = []


def expect(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        failures.append(what)


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


def start_broker(work):
    path = os.path.join(work, "bootstrap")
    args = []
    for t in ("orders", "orders.dlq", "shipments", "shipments.dlq", "notifications"):
        args += ["--topic", t + ":2"]
    proc = subprocess.Popen([os.path.join(BIN, "lib/evk-dev-broker"), "--bootstrap-file", path,
                             *args], stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while not os.path.exists(path):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("evk-dev-broker did not start")
        time.sleep(0.05)
    with open(path) as f:
        return proc, f.read().strip()


def wait_ready(log, proc, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        with open(log) as f:
            if "msg=ready" in f.read():
                return True
        time.sleep(0.05)
    return False


def tail(cfg, brokers, topic):
    r = subprocess.run([os.path.join(BIN, "consumers/evk-tail"), "-F", cfg, "-b", brokers, "-e",
                        topic], capture_output=True, text=True, timeout=60)
    return [json.loads(line) for line in r.stdout.splitlines()]


def run(work, brokers):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    outbox = os.path.join(work, "outbox.jsonl")
    cfg = os.path.join(work, "evkit.cfg")
    with open(cfg, "w") as f:
        f.write(f'''schemas = {{ dir = "{SRC}/schemas"; }};
notification-service = {{
  outbox = "{outbox}";
  webhook_url = "http://127.0.0.1:{server.server_port}/hook";
  retry_max = 2; retry_backoff_ms = 50;
}};
''')
    env = dict(os.environ, EVK_LOG_FORMAT="logfmt")
    log = os.path.join(work, "notification-service.log")
    with open(log, "w") as logf:
        svc = subprocess.Popen([os.path.join(BIN, "consumers/notification-service"), "-F", cfg,
                                "-b", brokers], stderr=logf, env=env)
    try:
        expect(wait_ready(log, svc), "notification-service is ready")
        lines = "".join(json.dumps({"order_id": o, "customer_id": "c-1", "total_cents": 100,
                                    "currency": "EUR"}) + "\n" for o in GOOD + [BAD])
        r = subprocess.run([os.path.join(BIN, "producers/evk-produce"), "-F", cfg, "-b", brokers,
                            "-t", "OrderConfirmed", "-"], input=lines, text=True,
                           capture_output=True, timeout=60)
        expect(r.returncode == 0, "OrderConfirmed events produced")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            sent, dlq = tail(cfg, brokers, "notifications"), tail(cfg, brokers, "orders.dlq")
            if len(sent) >= len(GOOD) and dlq:
                break
            time.sleep(0.5)
    finally:
        svc.terminate()
        expect(svc.wait(30) == 0, "notification-service exits 0 on SIGTERM")
        server.shutdown()

    sent = [m["value"] for m in sent]
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


def main():
    with tempfile.TemporaryDirectory(prefix="evk-webhook-") as work:
        broker, brokers = start_broker(work)
        try:
            run(work, brokers)
        finally:
            broker.terminate()
            broker.wait(10)
    print(f"{len(failures)} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
