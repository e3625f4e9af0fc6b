"""Helpers for tests that run evkit's programs as processes over their own
evk-dev-broker: start the broker and services, wait for log lines (polling
with a deadline), read topics with confluent_kafka.

Environment (set by ctest): EVK_BIN_DIR (build dir), EVK_SOURCE_DIR.
"""
import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time

BIN = os.environ.get("EVK_BIN_DIR", "build")
SRC = os.environ.get("EVK_SOURCE_DIR", os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
FLOW_TOPICS = ["orders", "inventory", "payments", "shipments", "notifications",
               "inventory.levels", "orders.status", "inventory.lines", "inventory.line-results",
               "inventory.reservations"]


class Failure(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Failure(what)


def run_main(name, run, summary):
    """A test's main: @run(work) in a scratch directory. Prints @summary
    and returns 0, or prints the Failure and returns 1."""
    with tempfile.TemporaryDirectory(prefix=f"evk-{name}-") as work:
        try:
            run(work)
        except Failure as e:
            print(f"{name}: FAILED: {e}", file=sys.stderr)
            return 1
    print(f"{name}: {summary}")
    return 0


def wait_until(cond, timeout, what):
    """Poll @cond until it is true; Failure(@what) after @timeout seconds."""
    deadline = time.monotonic() + timeout
    while not cond():
        check(time.monotonic() < deadline, f"after {timeout} s: {what}")
        time.sleep(0.05)


def start_broker(work, topics, partitions=2):
    """evk-dev-broker with @topics and their .dlq; returns (Popen, bootstrap)."""
    path = os.path.join(work, "bootstrap")
    args = []
    for t in topics:
        args += ["--topic", f"{t}:{partitions}", "--topic", f"{t}.dlq:{partitions}"]
    proc = subprocess.Popen([os.path.join(BIN, "lib/evk-dev-broker"), "--bootstrap-file", path,
                             *args], stdout=subprocess.DEVNULL)
    wait_until(lambda: os.path.exists(path) or proc.poll() is not None, 10,
               "evk-dev-broker wrote no bootstrap file")
    check(proc.poll() is None, "evk-dev-broker exited")
    with open(path) as f:
        return proc, f.read().strip()


@contextlib.contextmanager
def dev_broker(work, topics, partitions=2):
    """start_broker() for a with block, which gets the bootstrap servers; the
    broker is stopped however the block ends."""
    proc, brokers = start_broker(work, topics, partitions)
    try:
        yield brokers
    finally:
        proc.terminate()
        proc.wait(10)


def unused_port():
    """A loopback port nothing listens on (a broker that is not there)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_config(work, extra="", inventory=""):
    """A config for the reference flow's services, writing into @work;
    @inventory: more settings of inventory-service."""
    with open(os.path.join(work, "stock.cfg"), "w") as f:
        f.write('stock = ( { sku = "SKU-1"; available = 1000000; } );\n')
    cfg = os.path.join(work, "evkit.cfg")
    with open(cfg, "w") as f:
        f.write(f'''schemas = {{ dir = "{SRC}/schemas"; }};
inventory-service = {{ seed_file = "{work}/stock.cfg"; {inventory} }};
notification-service = {{ outbox = "{work}/outbox.jsonl"; }};
{extra}''')
    return cfg


class Service:
    """One of the flow's services as a process, logging (logfmt) to a file."""

    def __init__(self, work, name, cfg, brokers):
        self.name, self.log_path = name, os.path.join(work, name + ".log")
        env = dict(os.environ, EVK_LOG_FORMAT="logfmt", EVK_METRICS_PORT="0")
        env.pop("EVK_BOOTSTRAP_SERVERS", None)
        with open(self.log_path, "w") as log:
            self.proc = subprocess.Popen([os.path.join(BIN, "consumers", name), "-F", cfg, "-b",
                                          brokers], cwd=SRC, env=env, stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=log)

    def log(self):
        with open(self.log_path) as f:
            return f.read()

    def wait_log(self, text, timeout=30):
        wait_until(lambda: text in self.log() or self.proc.poll() is not None, timeout,
                   f"{self.name} did not log {text!r}")
        check(text in self.log(), f"{self.name} exited ({self.proc.returncode}) before it "
                                  f"logged {text!r}: {self.log()[-2000:]}")

    def stop(self, timeout):
        """SIGTERM; (exit code, seconds until it exited). Killed after @timeout."""
        t0 = time.monotonic()
        self.proc.terminate()
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            code = None
        return code, time.monotonic() - t0

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def tail(cfg, brokers, topic):
    """Every committed message of @topic as evk-tail -e prints it (dicts with
    type, key, headers and the decoded value)."""
    r = subprocess.run([os.path.join(BIN, "consumers/evk-tail"), "-F", cfg, "-b", brokers, "-e",
                        topic], capture_output=True, text=True, timeout=60)
    check(r.returncode == 0, f"evk-tail {topic}: exit {r.returncode}: {r.stderr}")
    return [json.loads(line) for line in r.stdout.splitlines()]


def read_raw(brokers, topic, timeout=30):
    """Every committed message of @topic as (key, value, headers dict)."""
    from confluent_kafka import Consumer, TopicPartition, OFFSET_BEGINNING
    c = Consumer({"bootstrap.servers": brokers, "group.id": "procs-reader",
                  "enable.auto.commit": False, "isolation.level": "read_committed",
                  "enable.partition.eof": True})
    try:
        md = c.list_topics(topic, timeout=10).topics[topic]
        check(md.error is None, f"{topic}: {md.error}")
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in md.partitions])
        pending, out = set(md.partitions), []
        deadline = time.monotonic() + timeout
        while pending:
            check(time.monotonic() < deadline, f"{topic}: not read to its end in {timeout} s")
            m = c.poll(0.5)
            if m is None:
                continue
            if m.error():
                check(m.error().code() == -191, f"{topic}: {m.error()}")  # _PARTITION_EOF
                pending.discard(m.partition())
                continue
            headers = {k: v for k, v in m.headers() or []}
            out.append((m.key(), m.value(), headers))
        return out
    finally:
        c.close()


def committed_at_end(brokers, group, topic):
    """Whether @group has committed the end of every partition of @topic."""
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": brokers, "group.id": group, "enable.auto.commit": False})
    try:
        parts = [TopicPartition(topic, p)
                 for p in c.list_topics(topic, timeout=10).topics[topic].partitions]
        ends = [c.get_watermark_offsets(tp, timeout=10)[1] for tp in parts]
        done = [tp.offset for tp in c.committed(parts, timeout=10)]
        return all(e == 0 or d == e for d, e in zip(done, ends))
    finally:
        c.close()
