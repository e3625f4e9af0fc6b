#!/usr/bin/python3
"""evk-admin (docs/CLI.md): the topic plan from the catalog without a broker,
then against evk-dev-broker what it supports (metadata, check, lag, dlq
replay) and the one line it prints where the dev broker has no Admin API
(create, cleanup.policy). Offsets are committed and dead letters written
with python3-confluent-kafka, and what a replay sent is read back with it.

Environment (set by ctest): EVK_BIN_DIR (build dir), EVK_SOURCE_DIR.
"""
import os
import subprocess
import sys
import tempfile
import time

from confluent_kafka import Consumer, Producer, TopicPartition

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from clitest import BIN, SRC, expect, summary  # noqa: E402

ADMIN = os.path.join(BIN, "lib/evk-admin")
ENV = {k: v for k, v in os.environ.items()
       if k not in ("EVK_BOOTSTRAP_SERVERS", "EVK_CONFIG")}
ENV["EVK_SCHEMAS_DIR"] = os.path.join(SRC, "schemas")
NO_API = ("the cluster names no controller among its brokers, so it has no {} API "
          "(evk-dev-broker, librdkafka's mock cluster, has none)")


def admin(*args, brokers=None):
    cmd = [ADMIN] + (["-b", brokers] if brokers else []) + list(args)
    return subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=60)


def plan_lines(*opts):
    r = admin("topics", "plan", *opts)
    expect(r.returncode == 0, f"topics plan {' '.join(opts)}: exit 0 ({r.stderr})")
    return r.stdout.splitlines()


class DevBroker:
    def __init__(self, work, topics):
        path = os.path.join(work, "bootstrap")
        args = [a for t in topics for a in ("--topic", t)]
        self.proc = subprocess.Popen([os.path.join(BIN, "lib/evk-dev-broker"),
                                      "--bootstrap-file", path] + args,
                                     stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while not os.path.exists(path):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise SystemExit("evk-dev-broker did not start")
            time.sleep(0.05)
        with open(path) as f:
            self.brokers = f.read().strip()

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)


def test_plan():
    """Every catalog topic once, in catalog order, each followed by its .dlq;
    the four store record types' topics compacted; no broker needed."""
    lines = plan_lines("--partitions", "8", "--replication", "3", "--dlq-partitions", "1")
    names = [line.split()[0] for line in lines]
    flow = ["orders", "inventory", "payments", "shipments", "notifications",
            "inventory.levels", "orders.status", "inventory.lines", "inventory.line-results",
            "inventory.reservations"]
    expect(names == [n for t in flow for n in (t, t + ".dlq")], f"plan: the topics ({names})")
    compact = {line.split()[0] for line in lines if line.endswith(" cleanup.policy=compact")}
    expect(compact == {"inventory.levels", "orders.status", "inventory.reservations"},
           f"plan: the changelogs are compacted ({compact})")
    expect("orders partitions=8 replication=3" in lines and
           "orders.dlq partitions=1 replication=3" in lines, "plan: the counts given")
    defaults = plan_lines()
    expect("orders partitions=4 replication=default" in defaults and
           "orders.dlq partitions=4 replication=default" in defaults,
           "plan: 4 partitions, the broker's replication, .dlq as the topic by default")
    for args, want in [(["--partitions", "0"], '--partitions: expected a positive number, got "0"'),
                       (["--replication", "x"], '--replication: expected a positive number'),
                       (["--dry-run"], "topics plan: --dry-run is for create"),
                       (["extra"], 'topics plan: unexpected argument "extra"')]:
        r = admin("topics", "plan", *args)
        expect(r.returncode == 1 and want in r.stderr, f"plan {args}: exit 1, {want!r}")
    r = admin("topics", "frob")
    expect(r.returncode == 1 and "topics: expected plan, check or create" in r.stderr,
           "topics frob: exit 1")


def test_check_and_create(work):
    """On a dev broker made with the plan's own topics, check passes; one
    topic with another partition count differs (exit 3); absent topics are
    missing (exit 5). create says in one line that the dev broker cannot."""
    planned = [line.split() for line in plan_lines()]
    topics = [f"{p[0]}:{p[1].split('=')[1]}" for p in planned if p[0] != "payments.dlq"]
    topics = [t if not t.startswith("inventory.reservations:") else "inventory.reservations:2"
              for t in topics]
    b = DevBroker(work, topics)
    try:
        r = admin("topics", "check", brokers=b.brokers)
        out = r.stdout.splitlines()
        expect(r.returncode == 5 and "missing payments.dlq partitions=4 replication=default" in out
               and "differs inventory.reservations: 2 partitions, planned 4" in out and
               sum(line.startswith("ok ") for line in out) == len(planned) - 2,
               f"check: one missing, one differs, the rest ok (exit {r.returncode})")
        expect(r.stderr == "evk-admin: cleanup.policy not checked: " +
               NO_API.format("DescribeConfigs") + "\n", f"check: one line for the configs "
               f"({r.stderr!r})")
        r = admin("topics", "create", "--dry-run", brokers=b.brokers)
        expect(r.returncode == 3 and r.stdout.splitlines() == [
            "would create payments.dlq partitions=4 replication=default",
            "differs inventory.reservations: 2 partitions, planned 4"],
            f"create --dry-run: what it would create, and what differs ({r.stdout!r})")
        t0 = time.monotonic()
        r = admin("topics", "create", brokers=b.brokers)
        expect(r.returncode == 4 and r.stderr == "evk-admin: topics not created: " +
               NO_API.format("CreateTopics") + "\n" and time.monotonic() - t0 < 5,
               f"create on the dev broker: one line, exit 4, at once ({r.stderr!r})")

        r = admin("metadata", "orders", "nope", brokers=b.brokers)
        out = r.stdout.splitlines()
        expect(r.returncode == 5 and out[0].startswith("Metadata for the named topics") and
               " 3 brokers:" in out and '  topic "orders" with 4 partitions:' in out and
               sum(line.startswith("    partition ") for line in out) == 4 and
               '  topic "nope": does not exist' in out, "metadata TOPIC...: like kcat -L")
        r = admin("metadata", brokers=b.brokers)
        expect(r.returncode == 0 and f" {len(topics)} topics:" in r.stdout.splitlines(),
               "metadata: every topic")
    finally:
        b.stop()


def test_lag_and_replay(work):
    b = DevBroker(work, ["orders:2", "orders.dlq:1"])
    try:
        p = Producer({"bootstrap.servers": b.brokers})
        for i in range(5):
            p.produce("orders", key=f"k{i}", value=b"v", partition=0)
        p.produce("orders", key="k9", value=b"v", partition=1)
        letters = [("EVK_ERR_VALIDATION", "items: order has no items", "shop.orders.OrderPlaced"),
                   ("EVK_ERR_IO", "disk full", "shop.orders.OrderPlaced"),
                   ("EVK_ERR_VALIDATION", "currency: bad", "shop.orders.OrderConfirmed")]
        for i, (err, reason, ce_type) in enumerate(letters):
            p.produce("orders.dlq", key=f"d-{i}", value=bytes([0, 0, 0, 0, 1, i]), headers=[
                ("ce_type", ce_type), ("ce_id", f"id-{i}"), ("evk_dlq_reason", reason),
                ("evk_dlq_error", err), ("evk_dlq_topic", "orders"),
                ("evk_dlq_partition", "0"), ("evk_dlq_offset", str(i))])
        p.produce("orders.dlq", key="stray", value=b"x")
        p.flush(10)
        del p  # its log lines would outlive the broker
        c = Consumer({"bootstrap.servers": b.brokers, "group.id": "g-lag"})
        c.commit(offsets=[TopicPartition("orders", 0, 2)], asynchronous=False)
        c.close()

        r = admin("lag", "g-lag", brokers=b.brokers)
        rows = [line.split() for line in r.stdout.splitlines()]
        expect(r.returncode == 0 and ["orders", "0", "2", "5", "3"] in rows and
               ["orders", "1", "-", "1", "-"] in rows and
               rows[-1] == "total lag 3 over 1 partitions with a committed offset".split(),
               f"lag: committed, end and lag per partition ({r.stdout})")
        r = admin("lag", "g-none", brokers=b.brokers)
        expect(r.returncode == 5 and 'group "g-none" has no committed offset' in r.stderr,
               "lag of a group without offsets: exit 5")

        r = admin("dlq", "replay", "orders.dlq", "--dry-run", brokers=b.brokers)
        expect(r.returncode == 3 and r.stderr.splitlines()[-1] ==
               "evk-admin: 3 to replay (--dry-run: nothing sent), 0 filtered out, "
               "1 without evk_dlq_topic", f"replay --dry-run: counts ({r.stderr})")
        for args, want in [(["--error", "EVK_ERR_VALIDATION"], ["d-0", "d-2"]),
                           (["--reason", "disk"], ["d-1"]),
                           (["--type", "OrderConfirmed"], ["d-2"]),
                           (["--offsets", "1-1"], ["d-1"]),
                           (["--offsets", "1-"], ["d-1", "d-2"])]:
            r = admin("dlq", "replay", "orders.dlq", "--dry-run", *args, brokers=b.brokers)
            keys = [line.split("key ")[1].split(",")[0] for line in r.stdout.splitlines()]
            expect(keys == want, f"replay --dry-run {args}: {want} ({keys})")
        expect(keys_on(b, "orders") == {f"k{i}" for i in range(5)} | {"k9"},
               "--dry-run sent nothing")

        r = admin("dlq", "replay", "orders.dlq", "--error", "EVK_ERR_VALIDATION",
                  brokers=b.brokers)
        expect(r.returncode == 0 and r.stderr == "evk-admin: 2 replayed, 2 filtered out\n",
               f"replay --error: 2 sent ({r.stderr})")
        sent = {m.key().decode(): m for m in read(b, "orders") if m.key().startswith(b"d-")}
        expect(sorted(sent) == ["d-0", "d-2"] and sent["d-2"].value() == bytes([0, 0, 0, 0, 1, 2])
               and dict(sent["d-2"].headers()) == {"ce_type": b"shop.orders.OrderConfirmed",
                                                   "ce_id": b"id-2"},
               "replayed: key, value and the original headers, without evk_dlq_*")
        r = admin("dlq", "replay", "orders.dlq", "--type", "Nope", brokers=b.brokers)
        expect(r.returncode == 1 and 'unknown event type "Nope"' in r.stderr, "--type Nope")
        r = admin("dlq", "replay", "nope.dlq", brokers=b.brokers)
        expect(r.returncode == 5 and 'topic "nope.dlq" does not exist' in r.stderr,
               "replay of a topic that does not exist: exit 5")
    finally:
        b.stop()


def read(b, topic):
    c = Consumer({"bootstrap.servers": b.brokers, "group.id": "reader",
                  "enable.partition.eof": True, "enable.auto.commit": False})
    c.assign([TopicPartition(topic, p, 0) for p in range(2)])
    msgs, eof, deadline = [], 0, time.monotonic() + 30
    while eof < 2 and time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is None:
            continue
        if m.error():
            eof += 1
        else:
            msgs.append(m)
    c.close()
    return msgs


def keys_on(b, topic):
    return {m.key().decode() for m in read(b, topic)}


def test_no_broker():
    """One line of evk-admin's own among librdkafka's log lines (which may
    still come after it, while the client shuts down)."""
    t0 = time.monotonic()
    r = admin("metadata", brokers="127.0.0.1:1")
    took = time.monotonic() - t0
    said = [line for line in r.stderr.splitlines() if line.startswith("evk-admin:")]
    expect(r.returncode == 4 and len(said) == 1 and said[0].startswith(
        "evk-admin: no broker reachable at 127.0.0.1:1 after 10 s") and took < 15,
        f"no broker: exit 4 within 10 s, one line ({r.returncode}, {took:.1f} s, {said})")


def main():
    test_plan()
    with tempfile.TemporaryDirectory(prefix="evk-admin-") as work:
        os.mkdir(os.path.join(work, "a"))
        os.mkdir(os.path.join(work, "b"))
        test_check_and_create(os.path.join(work, "a"))
        test_lag_and_replay(os.path.join(work, "b"))
    test_no_broker()
    return summary()


if __name__ == "__main__":
    sys.exit(main())
