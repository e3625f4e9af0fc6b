#!/usr/bin/python3
"""End-to-end test of the reference flow: the five services as separate
processes over evk-dev-broker (scripts/start-services), fed by
`evk-order generate`, checked from the outside through evk-tail.

    e2e_flow.py --orders N [--instances K] [--chaos [--kill] [--broker-faults [--storm]]]

Stock is seeded so that some SKUs run out (rejections) and the credit limit
is low enough that some payments are declined (compensations). Records that
repeat an event id are redeliveries (a replay re-sends the same events) and
are counted apart; the checks read one record per event id. Once every
order has an outcome it checks:
  - every order has exactly one final status (SHIPPED, REJECTED, CANCELLED)
    and exactly one OrderConfirmed or OrderCancelled, agreeing with it;
  - no order and effect (stock decision, release, payment, shipment
    scheduled and dispatched, outcome, notification per template) has two
    event ids: "duplicated" counts those; and no event id of the flow's
    topics comes again with another type or value (a replay that decided
    otherwise than its first attempt);
  - final stock (inventory.levels, last value per SKU) == seed - units of the
    confirmed orders: declined orders' stock came back, nothing leaked; and
    within 60 s of the last outcome no unit is held (every hold sold or
    given back);
  - exactly one order_confirmed/order_cancelled notification per order and
    one shipment_dispatched per shipped order, both as NotificationSent
    events and as outbox lines, with distinct notification ids;
  - `evk-order status` agrees with orders.status and exits 5 for an unknown id;
  - nothing was dead-lettered, no service logged an error, and every service
    stopped cleanly on SIGTERM.

With --instances K, every service runs K copies started with the same
command line (docs/SCALING.md). With --chaos, orders are placed at a pace
that spreads them over the faults' schedule while, one disruption at a time
(SETTLE_S apart), the extra copies join, each service is stopped with
SIGTERM or SIGINT at a random point (it must exit 0) and, with --kill,
killed with SIGKILL twice, always restarted; poison messages (not Avro,
wrong magic byte, truncated, unknown schema id, schema-invalid body) are
written to `orders`; and with --broker-faults, again one disruption at a
time, each broker of the dev broker goes down for 0.5-3 s twice and 1-5
requests in a row fail with each of REQUEST_ERRORS (Produce, Fetch,
OffsetCommit, TxnOffsetCommit, EndTxn, AddPartitionsToTxn errors), through
evk-dev-broker --control. With --storm, outages and refused requests come
at random moments instead, whatever else is going on.
The same checks must hold, except that the outbox may repeat a notification
with the same id (at-least-once side effects) and services may log errors;
in addition every poison message must be in orders.dlq once per service
reading `orders` (again from the same origin: a redelivery), with its key,
value and evk_dlq_* headers, and no other DLQ may hold anything. It prints
`orders N, instances K ..., faults injected F (...), lost L, duplicated D,
redelivered R, longest wait for an outcome W s`, and with --max-wait fails
if W is larger.

Environment (set by ctest): EVK_BIN_DIR (build dir), EVK_SOURCE_DIR.
"""
import argparse
import collections
import datetime
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from procs import BIN, FLOW_TOPICS as TOPICS, SRC, Failure, check, read_raw  # noqa: E402

SERVICES = ["inventory-service", "payment-service", "shipping-service", "order-service",
            "notification-service"]
FINAL = {"SHIPPED", "REJECTED", "CANCELLED"}
CHANGELOGS = {"orders.status", "inventory.levels", "inventory.reservations"}
ORDERS_READERS = {"inventory-service", "order-service", "notification-service"}
# Transient failures a broker really returns; each is one that librdkafka
# retries or that makes the service abort and replay its batch.
REQUEST_ERRORS = [("Produce", "NOT_LEADER_FOR_PARTITION"), ("Produce", "NOT_ENOUGH_REPLICAS"),
                  ("Fetch", "NOT_LEADER_FOR_PARTITION"), ("Fetch", "UNKNOWN_LEADER_EPOCH"),
                  ("OffsetCommit", "COORDINATOR_NOT_AVAILABLE"),
                  ("TxnOffsetCommit", "COORDINATOR_NOT_AVAILABLE"),
                  ("TxnOffsetCommit", "NOT_COORDINATOR"), ("EndTxn", "NOT_COORDINATOR"),
                  ("EndTxn", "CONCURRENT_TRANSACTIONS"),
                  ("AddPartitionsToTxn", "CONCURRENT_TRANSACTIONS")]
DEV_BROKERS = 3  # evk-dev-broker's default
# Between two disruptions: one takes up to ~7 s on the dev broker (a dead
# member's session, a rebalance, docs/SCALING.md), and an order's path must
# fit between two of them for its wait to measure one.
SETTLE_S = 10
# With --broker-faults, outages of each broker among those disruptions, and
# after a burst of refused requests (librdkafka retries them within ~2.5 s)
# the time to the next disruption.
OUTAGES_PER_BROKER = 2
ERRORS_SETTLE_S = 5
# What a service logs when a stop gives its open batch up (exit 4).
ABANDONED = "the next instance redoes it"
CREDIT_LIMIT = 60000
BLOCKED = "c-7"


def seed_stock(n):
    """Plenty of four SKUs, scarce two: they run out part way through."""
    plenty = 10 * n
    return {"SKU-1": plenty, "SKU-2": plenty, "SKU-3": plenty, "SKU-4": max(3, n * 3 // 10),
            "SKU-5": max(2, n * 15 // 100), "SKU-6": plenty}


def write_config(work, stock):
    with open(os.path.join(work, "stock.cfg"), "w") as f:
        f.write("stock = (\n%s\n);\n" % ",\n".join(
            '  { sku = "%s"; available = %d; }' % kv for kv in sorted(stock.items())))
    cfg = os.path.join(work, "evkit.cfg")
    with open(cfg, "w") as f:
        f.write(f'''schemas = {{ dir = "{SRC}/schemas"; }};
inventory-service = {{ seed_file = "{work}/stock.cfg"; }};
payment-service = {{ credit_limit_cents = {CREDIT_LIMIT}; blocked_customers = [ "{BLOCKED}" ]; }};
''')
        # A killed member keeps its partitions until its session times out,
        # and every rebalance on the dev broker lasts session.timeout.ms - 1 s
        # (docs/SCALING.md): 3 s bounds both, as start-services sets it.
        f.write('kafka = { session_timeout_ms = 3000; heartbeat_interval_ms = 500; };\n')
    return cfg


class Cluster:
    def __init__(self, work, cfg, partitions, control=None, keep=False):
        self.work, self.cfg, self.rundir = work, cfg, os.path.join(work, "run")
        self.control = control
        self.keep = keep  # keep each topic as last read, in WORK/topics
        self.children = {}  # service -> its Popen, once this script restarted it
        self.bad_exits = []  # (service, exit code) of stops that should have exited 0
        self.unexpected = []  # services that exited by themselves
        self.lock = threading.Lock()  # one restart at a time
        self.notes = threading.Lock()  # WORK/faults.log, written from two threads
        self.env = dict(os.environ, EVK_BIN_DIR=BIN)
        self.env.pop("EVK_BOOTSTRAP_SERVERS", None)  # the dev broker, always
        self.env.pop("EVK_CONFIG", None)
        self.env["EVK_LOG_FORMAT"] = "logfmt"  # check_logs() reads logfmt
        # Restarted copies find their state where start-services put it.
        self.env["EVK_STATE_DIR"] = os.path.join(self.rundir, "state")
        argv = [os.path.join(SRC, "scripts/start-services"), "-F", cfg, "--dir", self.rundir,
                "--partitions", str(partitions)]
        if control:
            argv += ["--control", control]
        subprocess.run(argv, env=self.env, check=True)
        # The config names no outbox: start-services --dir must have put it
        # in RUNDIR, where restarted copies write too.
        self.env["EVK_NOTIFICATION_OUTBOX"] = os.path.join(self.rundir, "outbox.jsonl")
        with open(os.path.join(self.rundir, "bootstrap")) as f:
            self.brokers = f.read().strip()
        self.acks = 0
        self.redeliveries = {}  # topic -> records that repeated an event id
        self.conflicts = {}  # topic -> (records that repeated an id with other content, e.g.)
        self.abandoned = 0  # stops that gave their batch up (exit 4), see _stopped_with
        self.instances = {s: 1 for s in SERVICES}  # copies started so far
        self.hwm = collections.defaultdict(int)  # (service, copy) -> peak VmHWM in KiB

    @staticmethod
    def _name(service, copy):
        return service if copy == 0 else f"{service}.{copy}"

    def pid(self, service, copy=0):
        with open(os.path.join(self.rundir, "pids", self._name(service, copy) + ".pid")) as f:
            return int(f.read())

    def log(self, service, copy=0):
        path = os.path.join(self.rundir, "logs", self._name(service, copy) + ".log")
        if not os.path.exists(path):
            return ""
        with open(path) as f:
            return f.read()

    def logs(self, service):
        return [self.log(service, k) for k in range(self.instances[service])]

    def sample_memory(self):
        """Peak resident memory of every live copy, from /proc."""
        for service in SERVICES:
            for k in range(self.instances[service]):
                try:
                    with open(f"/proc/{self.pid(service, k)}/status") as f:
                        for line in f:
                            if line.startswith("VmHWM:"):
                                kib = int(line.split()[1])
                                self.hwm[(service, k)] = max(self.hwm[(service, k)], kib)
                except (OSError, ValueError):
                    pass

    def add_copy(self, service):
        """One more copy of @service, started with the very same command line."""
        self.note(f"add a copy of {service}")
        with self.lock:
            k = self.instances[service]
            self.instances[service] += 1
            self._start(service, 0, k)

    def stop(self):
        """SIGTERM every service (exit 0 expected), then the broker; never raises."""
        with self.lock:
            self.sample_memory()
            for service, proc in self.children.items():
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
            for service, proc in self.children.items():
                try:
                    code = proc.wait(60)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    code = proc.wait()
                if code != 0:
                    self.bad_exits.append((service, code))
            subprocess.run([os.path.join(SRC, "scripts/start-services"), "stop", "--dir",
                            self.rundir], env=self.env, check=False)

    def _gone(self, name, pid):
        proc = self.children.get(name)
        if proc:
            return proc.poll() is not None
        return not os.path.exists(f"/proc/{pid}") or \
            "zombie" in open(f"/proc/{pid}/status").read()

    def note(self, what):
        """Log a disruption with its time (UTC) in WORK/faults.log, to lay
        beside the services' logs when a wait is long."""
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%H:%M:%S.%f")[:-3]
        with self.notes, open(os.path.join(self.work, "faults.log"), "a") as f:
            f.write(f"{stamp} {what}\n")

    def restart(self, service, sig=signal.SIGKILL, copy=0):
        """Stop a copy of @service with @sig (SIGTERM/SIGINT: it must exit 0)
        and start it again with the same command line; return once it is ready."""
        name = self._name(service, copy)
        self.note(f"{signal.Signals(sig).name} {name}")
        with self.lock:
            self.sample_memory()
            pid = self.pid(service, copy)
            readies = self.log(service, copy).count("msg=ready")
            os.kill(pid, sig)
            deadline = time.monotonic() + 60
            while not self._gone(name, pid):
                check(time.monotonic() < deadline, f"{name} did not exit on signal {sig}")
                time.sleep(0.01)
            proc = self.children.get(name)
            if proc and sig != signal.SIGKILL and proc.wait() != 0:
                self._stopped_with(name, proc.returncode, service, copy)
            self._start(service, readies, copy)

    def _stopped_with(self, name, code, service, copy):
        """A stop that had to give its open batch up (the cluster out of reach
        during a broker outage) exits 4 and says so; anything else is bad."""
        if self.control and code == 4 and ABANDONED in self.log(service, copy):
            self.abandoned += 1
        else:
            self.bad_exits.append((name, code))

    def _start(self, service, readies, copy=0):
        name = self._name(service, copy)
        # As start-services runs them on its dev broker (scripts/start-services).
        env = dict(self.env, EVK_KAFKA_FETCH_WAIT_MAX_MS="10")
        with open(os.path.join(self.rundir, "logs", name + ".log"), "a") as f:
            proc = subprocess.Popen([os.path.join(BIN, "consumers", service), "-F", self.cfg,
                                     "-b", self.brokers], cwd=SRC, env=env,
                                    stdin=subprocess.DEVNULL, stdout=f, stderr=f)
        self.children[name] = proc
        with open(os.path.join(self.rundir, "pids", name + ".pid"), "w") as f:
            f.write(f"{proc.pid}\n")
        deadline = time.monotonic() + 90
        while self.log(service, copy).count("msg=ready") <= readies:
            check(proc.poll() is None, f"{name} exited after its (re)start")
            check(time.monotonic() < deadline, f"{name} not ready after its (re)start")
            time.sleep(0.05)

    def supervise(self):
        """Restart, as an orchestrator would, any copy that exited by itself."""
        with self.lock:
            self.sample_memory()
            for service in SERVICES:
                for k in range(self.instances[service]):
                    name = self._name(service, k)
                    if self._gone(name, self.pid(service, k)):
                        proc = self.children.get(name)
                        self.unexpected.append((name, proc.returncode if proc else None))
                        print(f"e2e_flow: {name} exited by itself, restarting it", flush=True)
                        self._start(service, self.log(service, k).count("msg=ready"), k)

    def inject(self, command):
        """One evk-dev-broker --control command; returns once the broker applied it."""
        self.note(command)
        with open(self.control, "w") as f:
            f.write(command + "\n")
        self.acks += 1
        log = os.path.join(self.rundir, "logs", "evk-dev-broker.log")
        deadline = time.monotonic() + 10
        while True:
            with open(log) as f:
                lines = [ln for ln in f if ln.startswith("control: ")]
            if len(lines) >= self.acks:
                break
            check(time.monotonic() < deadline, f"evk-dev-broker did not acknowledge {command}")
            time.sleep(0.01)
        check(lines[self.acks - 1].startswith("control: ok: "), f"{command}: {lines[self.acks - 1]}")

    def tool(self, *args, **kw):
        return subprocess.run([os.path.join(BIN, args[0]), "-F", self.cfg, "-b", self.brokers,
                               *args[1:]], env=self.env, capture_output=True, text=True, **kw)

    def read(self, topic):
        """Every committed message of @topic, decoded."""
        r = self.tool("consumers/evk-tail", "-e", topic)
        if self.keep:
            os.makedirs(os.path.join(self.work, "topics"), exist_ok=True)
            with open(os.path.join(self.work, "topics", topic + ".jsonl"), "w") as f:
                f.write(r.stdout)
        msgs = [json.loads(line) for line in r.stdout.splitlines()]
        # The poison written under faults is undecodable by design (exit 3).
        poison = [m for m in msgs if "error" in m and self.control and topic == "orders"
                  and (m.get("key") or "").startswith("poison-")]
        check(r.returncode == 0 or (r.returncode == 3 and poison),
              f"evk-tail {topic}: exit {r.returncode}: {r.stderr}")
        msgs = [m for m in msgs if m not in poison]
        bad = [m for m in msgs if "error" in m]
        check(not bad, f"{topic}: undecodable messages, e.g. {bad[:1]}")
        # A changelog is read as a store reads it: every record, the last
        # one per key wins (a replay may write a key again under an id it
        # used before, after records that came between).
        if topic in CHANGELOGS:
            return msgs
        # A record repeating an event id is a redelivery (a replay after a
        # crash or an abort the broker did not hide), not a second effect.
        # A replay must send what the first attempt sent: a repeated id with
        # another type or value is a decision taken twice, differently.
        first, unique, conflicts = {}, [], []
        for m in msgs:
            ce_id = (m.get("headers") or {}).get("ce_id")
            if ce_id is None or ce_id not in first:
                unique.append(m)
                first[ce_id] = m
            elif (m["type"], m["value"]) != (first[ce_id]["type"], first[ce_id]["value"]):
                conflicts.append((first[ce_id], m))
        self.redeliveries[topic] = len(msgs) - len(unique)
        self.conflicts[topic] = (len(conflicts), conflicts[:1])
        return unique


def by_type(msgs):
    out = collections.defaultdict(list)
    for m in msgs:
        out[m["type"].rsplit(".", 1)[-1]].append(m["value"])
    return out


def progress(cluster):
    """(#outcomes, #notifications expected, #notifications seen, #confirmed,
    #shipped, #placed)."""
    orders = by_type(cluster.read("orders"))
    shipped = len(by_type(cluster.read("shipments"))["ShipmentDispatched"])
    sent = len(cluster.read("notifications"))
    # Distinct orders: a duplicate must not stand in for a missing outcome.
    outcomes = len({v["order_id"] for v in orders["OrderConfirmed"] + orders["OrderCancelled"]})
    placed = len({v["order_id"] for v in orders["OrderPlaced"]})
    return outcomes, outcomes + shipped, sent, len(orders["OrderConfirmed"]), shipped, placed


def wait_for_outcomes(cluster, n, timeout):
    """Until every order placed has its outcome (@n, or, with broker faults,
    as many as `orders` holds: see broker_lost())."""
    deadline = time.monotonic() + timeout
    while True:
        cluster.supervise()
        outcomes, want_sent, sent, confirmed, shipped, placed = progress(cluster)
        if cluster.control:
            n = placed
        if outcomes >= n and shipped >= confirmed and sent >= want_sent:
            return
        check(time.monotonic() < deadline,
              f"after {timeout} s: {outcomes}/{n} outcomes, {shipped}/{confirmed} shipped, "
              f"{sent}/{want_sent} notifications")
        time.sleep(1)


# What each service's group reads: once every group has committed the end of
# each of its inputs, nothing more is in flight.
INPUTS = {"inventory-service": ["orders", "payments", "inventory.lines", "inventory.line-results"], "payment-service": ["inventory"],
          "shipping-service": ["payments", "shipments"],
          "order-service": ["orders", "inventory", "payments", "shipments"],
          "notification-service": ["orders", "shipments"]}


def wait_idle(cluster, timeout=120):
    """Until every service has committed all of its input."""
    from confluent_kafka import Consumer, TopicPartition
    deadline = time.monotonic() + timeout
    for group, topics in INPUTS.items():
        c = Consumer({"bootstrap.servers": cluster.brokers, "group.id": group,
                      "enable.auto.commit": False})
        try:
            parts = [TopicPartition(t, p) for t in topics
                     for p in c.list_topics(t, timeout=30).topics[t].partitions]
            while True:
                ends = [c.get_watermark_offsets(tp, timeout=10)[1] for tp in parts]
                done = [tp.offset for tp in c.committed(parts, timeout=10)]
                behind = [(tp.topic, tp.partition) for tp, d, e in zip(parts, done, ends)
                          if e > 0 and d < e]
                if not behind:
                    break
                check(time.monotonic() < deadline, f"{group} still behind on {behind[:3]}")
                cluster.supervise()
                time.sleep(0.5)
        finally:
            c.close()


def check_statuses(placed, statuses, orders):
    last = {}
    for s in statuses:
        last[s["order_id"]] = s
    check(set(last) == set(placed), f"{len(set(placed) - set(last))} orders have no status")
    not_final = [o for o, s in last.items() if s["status"] not in FINAL]
    check(not not_final, f"{len(not_final)} orders not final, e.g. {not_final[:1]}")
    outcome = collections.Counter(v["order_id"] for v in orders["OrderConfirmed"])
    outcome.update(v["order_id"] for v in orders["OrderCancelled"])
    check(set(outcome) == set(placed) and set(outcome.values()) == {1},
          "not exactly one OrderConfirmed/OrderCancelled per order")
    confirmed = {v["order_id"] for v in orders["OrderConfirmed"]}
    for oid, s in last.items():
        check((s["status"] == "SHIPPED") == (oid in confirmed),
              f"{oid}: status {s['status']} disagrees with its outcome event")
    for v in orders["OrderCancelled"]:
        check(last[v["order_id"]]["status"] == v["status"],
              f"{v['order_id']}: OrderCancelled {v['status']} vs status")
    return last, confirmed


def settled_levels(cluster, timeout=60):
    """The SKU records once no unit is held any more: every outcome is out,
    so each hold must be sold (CONFIRM) or given back (CANCEL) soon after.
    A hold that stays is a lost command: the check fails after @timeout."""
    deadline = time.monotonic() + timeout
    while True:
        # The SKUs' holds share the changelog (SkuHold entries, tombstones).
        levels = [m["value"] for m in cluster.read("inventory.levels")
                  if (m.get("type") or "").endswith(".SkuStock")]
        last = {lv["sku"]: lv for lv in levels}
        held = {sku: lv["held_units"] for sku, lv in last.items() if lv["held_units"]}
        if not held:
            return levels
        check(time.monotonic() < deadline,
              f"units still held {timeout} s after the last outcome: {held}")
        time.sleep(0.5)


def check_stock(seed, placed, confirmed, levels):
    sold = collections.Counter()
    for oid in confirmed:
        for line in placed[oid]["items"]:
            sold[line["sku"]] += line["quantity"]
    final = dict(seed)  # a SKU nobody ordered has no record: it still has its seed
    last = {}
    for lv in levels:
        final[lv["sku"]] = lv["available"]
        last[lv["sku"]] = lv
    for sku, units in seed.items():
        rec = last.get(sku, {})
        check(final.get(sku) == units - sold[sku],
              f"{sku}: level {final.get(sku)} != seed {units} - sold {sold[sku]} "
              f"(held {rec.get('held_units')}, waiting turns {rec.get('wait_head')}..{rec.get('wait_next')})")
        check(final[sku] >= 0, f"{sku}: negative stock {final[sku]}")
    return sold, final


def check_notifications(placed, last, sent, outbox, allow_repeats):
    per_order = collections.defaultdict(collections.Counter)
    for v in sent:
        per_order[v["order_id"]][v["template"]] += 1
    for oid in placed:
        t = per_order[oid]
        shipped = last[oid]["status"] == "SHIPPED"
        want = {"order_confirmed": 1, "shipment_dispatched": 1} if shipped else {"order_cancelled": 1}
        check(dict(t) == want, f"{oid} ({last[oid]['status']}): notifications {dict(t)}")
    ids = [v["notification_id"] for v in sent]
    check(len(set(ids)) == len(ids), "NotificationSent ids repeat")
    box = [v["notification_id"] for v in outbox]
    check(len(set(box)) == len(box) or allow_repeats,
          f"{len(box) - len(set(box))} outbox lines repeat")
    check(set(box) == set(ids), "outbox and NotificationSent disagree")
    return len(box) - len(set(box))


def check_status_cli(cluster, last):
    """evk-order status finds the order's partition and agrees with the topic."""
    for oid in sorted(last)[:5]:
        r = cluster.tool("producers/evk-order", "status", "--json", oid)
        check(r.returncode == 0, f"evk-order status {oid}: exit {r.returncode}: {r.stderr}")
        check(json.loads(r.stdout) == last[oid], f"evk-order status {oid} disagrees")
    r = cluster.tool("producers/evk-order", "status", "o-no-such-order")
    check(r.returncode == 5, f"evk-order status of an unknown order: exit {r.returncode}")


def broker_lost(cluster, args, gen, placed):
    """OrderPlaced that evk-order had delivered (acknowledged) but that
    `orders` does not hold, when no service ever saw their order: under
    broker faults the dev broker (librdkafka 2.0.2's mock cluster) loses an
    acknowledged record now and then, whichever client wrote it (one of
    10,000 records from confluent-kafka's Python producer in 2 runs of 5,
    docs/SCALING.md). Anything else missing is the flow's loss."""
    check(f"{args.orders} delivered" in gen.stderr, f"evk-order generate: {gen.stderr}")
    missing = args.orders - len(placed)
    if not missing or not args.broker_faults:
        return 0
    seen = set()
    for s in SERVICES:
        for log in cluster.logs(s):
            seen.update(re.findall(r"order_id=(o-[0-9a-f-]+)", log))
    check(seen <= set(placed), f"services saw orders that `orders` does not hold: "
                               f"{sorted(seen - set(placed))[:3]}")
    print(f"e2e_flow: the dev broker lost {missing} acknowledged OrderPlaced before any "
          f"service read them (not the flow's loss)", flush=True)
    return missing


def check_logs(cluster, no_errors):
    for s in SERVICES:
        for k, log in enumerate(cluster.logs(s)):
            name = cluster._name(s, k)
            check(not no_errors or "level=error" not in log, f"{name} logged an error")
            # A sanitizer build reports (leaks: at exit) on stderr, i.e. the log.
            check("Sanitizer" not in log and "runtime error:" not in log,
                  f"{name}: sanitizer report in its log")
            check("msg=stopped" in log, f"{name} did not stop cleanly")


def poison_kinds():
    """(kind, value, the evk_dlq_error it must be dead-lettered with)."""
    with open(os.path.join(SRC, "tests", "data", "codec", "python_frames.jsonl")) as f:
        frame = bytes.fromhex(json.loads(f.readline())["frame"])  # a valid OrderPlaced
    return [("not-avro", b'{"order_id": "o-json"}', "EVK_ERR_BAD_MAGIC"),
            ("wrong-magic", b"\x01" + frame[1:], "EVK_ERR_BAD_MAGIC"),
            ("truncated", frame[:3], "EVK_ERR_TRUNCATED"),
            ("unknown-schema-id", b"\x00\x00\x00\x03\xe7" + frame[5:],
             "EVK_ERR_UNKNOWN_SCHEMA_ID"),
            ("schema-invalid", frame[:5] + b"\x03", "EVK_ERR_DECODE")]  # length -2


class Faults:
    """kill -9 / SIGTERM / SIGINT and restart the services, break the dev
    broker and write poison to `orders`, at random points while orders flow."""

    def __init__(self, cluster, seed, kill, broker_faults, instances=1, storm=False):
        self.kill, self.broker_faults, self.instances = kill, broker_faults, instances
        self.storm = storm  # broker faults at random moments, not one disruption at a time
        self.cluster, self.rng = cluster, random.Random(seed)
        self.kills = self.stops = self.outages = self.refused = self.added = 0
        self.poison = {}  # key -> (value, expected evk_dlq_error)
        self.errors = []
        self.done = threading.Event()  # the orders are all produced
        self.schedule = self.plan()

    def plan(self):
        """[(kind, what, arg)] in the order to apply: ("add", service, None)
        adds a copy, ("signal", service, sig) stops one with sig and restarts
        it, ("outage", broker, None) takes a broker down for 0.5-3 s, and
        ("errors", api, error) fails the next 1-5 requests of api."""
        # Everyone is killed first, so that every later SIGTERM/SIGINT goes to a
        # child of this script, whose exit status can be checked.
        # Without --kill the first round is SIGTERM, whose exit status cannot be
        # seen (start-services' children are not ours).
        first_sig = signal.SIGKILL if self.kill else signal.SIGTERM
        # With several instances, the copies join while orders flow first.
        adds = [("add", s, None) for s in SERVICES for _ in range(self.instances - 1)]
        first = [("signal", s, first_sig) for s in self.rng.sample(SERVICES, len(SERVICES))]
        rest = [("signal", s, signal.SIGKILL) for s in SERVICES if self.kill]
        rest += [("signal", s, self.rng.choice((signal.SIGTERM, signal.SIGINT)))
                 for s in SERVICES]
        if self.broker_faults and not self.storm:
            rest += [("outage", b, None) for b in range(1, DEV_BROKERS + 1)
                     for _ in range(OUTAGES_PER_BROKER)]
            rest += [("errors", api, err) for api, err in REQUEST_ERRORS]
        self.rng.shuffle(adds)
        self.rng.shuffle(rest)
        return adds + first + rest

    @staticmethod
    def settle(kind):
        """Seconds from a disruption of @kind to the next."""
        return ERRORS_SETTLE_S if kind == "errors" else SETTLE_S

    def duration(self):
        """Seconds the schedule takes at its pace: the orders are spread over it."""
        return sum(self.settle(kind) + 1 for kind, _, _ in self.schedule)

    def services(self):
        """Apply plan() at random points, one disruption at a time: what it
        hit settles (a rebalance, a dead member's session timing out, a
        broker back) before the next, so that a wait measures one
        disruption."""
        try:
            last, settle = time.monotonic(), SETTLE_S  # the services settle after start too
            for kind, what, arg in self.schedule:
                time.sleep(self.rng.uniform(0, 2) + max(0, last + settle - time.monotonic()))
                self.cluster.supervise()
                self.apply(kind, what, arg)
                last, settle = time.monotonic(), self.settle(kind)
        except Exception as e:  # reported by the main thread
            self.errors.append(e)

    def apply(self, kind, what, arg):
        """One disruption of plan()'s."""
        if kind == "outage":
            self.outage(what)
        elif kind == "errors":
            self.cluster.inject(f"err {what} {self.rng.randint(1, 5)} {arg}")
            self.refused += 1
        elif kind == "add":
            self.cluster.add_copy(what)
            self.added += 1
        else:
            sig = arg
            copy = self.rng.randrange(self.cluster.instances[what])
            # Copy 0 is start-services' child until this script restarts
            # it: only then can its exit status be seen.
            if copy == 0 and what not in self.cluster.children:
                sig = signal.SIGKILL if self.kill else signal.SIGTERM
            self.cluster.restart(what, sig, copy)
            if sig == signal.SIGKILL:
                self.kills += 1
            else:
                self.stops += 1

    def outage(self, b):
        """Broker @b unreachable for 0.5-3 s: its partitions' leaders and the
        coordinators it hosts are out of reach, then back."""
        self.cluster.inject(f"down {b}")
        time.sleep(self.rng.uniform(0.5, 3))
        self.cluster.inject(f"up {b}")
        self.outages += 1

    def brokers(self, services_thread):
        from confluent_kafka import Producer
        producer = Producer({"bootstrap.servers": self.cluster.brokers,
                             "enable.idempotence": True,
                             "log_level": 2})  # the outages' disconnects are expected
        kinds = poison_kinds()
        try:
            n = 0
            while services_thread.is_alive() or not self.done.is_set():
                time.sleep(self.rng.uniform(0.3, 2))
                what = self.rng.random()
                storm = self.broker_faults and self.storm
                if what < 0.4:
                    if storm:
                        self.outage(self.rng.randint(1, DEV_BROKERS))
                elif what < 0.8:
                    if storm:
                        self.apply("errors", *self.rng.choice(REQUEST_ERRORS))
                else:
                    kind, value, want = kinds[n % len(kinds)]
                    key = f"poison-{kind}-{n}"
                    producer.produce("orders", key=key, value=value)
                    self.poison[key] = (value, want)
                    n += 1
            # Poison of every kind, even if the dice never chose one.
            for kind, value, want in kinds:
                key = f"poison-{kind}-last"
                producer.produce("orders", key=key, value=value)
                self.poison[key] = (value, want)
            check(producer.flush(60) == 0, "poison messages not delivered")
        except Exception as e:
            self.errors.append(e)


def read_text(brokers, topic):
    """Every committed message of @topic as (key, value, headers), key and
    header values as text."""
    return [(k.decode() if k else None, v,
             {n: (x.decode() if x is not None else None) for n, x in h.items()})
            for k, v, h in read_raw(brokers, topic, timeout=60)]


def check_dead_letters(poison, dlq):
    """(lost, duplicated, redelivered) poison messages; raises on a wrong DLQ
    record. The same origin dead-lettered again by one service (a replay of
    its batch) is a redelivery."""
    seen = collections.Counter()
    origins = collections.defaultdict(set)
    for key, value, h in dlq:
        check(key in poison, f"orders.dlq holds a message that is not poison: {key} {h}")
        want_value, want_error = poison[key]
        check(value == want_value, f"{key}: DLQ value differs from the original")
        check(h.get("evk_dlq_error") == want_error,
              f"{key}: evk_dlq_error {h.get('evk_dlq_error')}, expected {want_error}")
        check(h.get("evk_dlq_topic") == "orders", f"{key}: evk_dlq_topic {h.get('evk_dlq_topic')}")
        check(h.get("evk_dlq_reason"), f"{key}: no evk_dlq_reason")
        check(h.get("evk_dlq_partition") and h.get("evk_dlq_offset"), f"{key}: no origin")
        check(h.get("evk_dlq_service") in ORDERS_READERS, f"{key}: from {h.get('evk_dlq_service')}")
        seen[(key, h["evk_dlq_service"])] += 1
        origins[(key, h["evk_dlq_service"])].add((h["evk_dlq_partition"], h["evk_dlq_offset"]))
    want = {(k, s) for k in poison for s in ORDERS_READERS}
    duplicated = sum(len(o) - 1 for o in origins.values())
    return (len(want - set(seen)), duplicated,
            sum(n - len(origins[k]) for k, n in seen.items()))


def per_order(*lists):
    c = collections.Counter()
    for lst in lists:
        c.update(v["order_id"] for v in lst)
    return c


def count_faults(placed, statuses, orders, inventory, payments, shipments, sent):
    """(lost, duplicated) effects across the flow, counted rather than
    asserted so that the figures line is printed before any check fails.
    The lists hold one record per event id (Cluster.read), so a count above
    one is a second effect with an id of its own, never a redelivery."""
    last = {s["order_id"]: s for s in statuses}
    outcomes = per_order(orders["OrderConfirmed"], orders["OrderCancelled"])
    effects = {"stock decisions": per_order(inventory["StockReserved"], inventory["StockRejected"]),
               "releases": per_order(inventory["StockReleased"]),
               "payments": per_order(payments["PaymentAuthorized"], payments["PaymentDeclined"]),
               "shipments scheduled": per_order(shipments["ShipmentScheduled"]),
               "shipments dispatched": per_order(shipments["ShipmentDispatched"]),
               "outcome events": outcomes,
               "notifications": collections.Counter((v["order_id"], v["template"]) for v in sent)}
    lost = [o for o in placed if outcomes[o] == 0 or last.get(o, {}).get("status") not in FINAL]
    if lost:
        print("e2e_flow: lost: e.g. " + ", ".join(
            f"{o} ({outcomes[o]} outcome events, status {last.get(o, {}).get('status')})"
            for o in lost[:3]), flush=True)
    dups = {what: sum(n - 1 for n in c.values() if n > 1) for what, c in effects.items()}
    if any(dups.values()):
        print(f"e2e_flow: duplicated: {dups}, e.g. " + ", ".join(
            str([k for k, n in c.items() if n > 1][:2]) for c in effects.values()), flush=True)
    return len(lost), sum(dups.values())


def longest_wait(orders_msgs):
    """(seconds, order id, UTC time placed) from an OrderPlaced record to its
    outcome record, the worst order."""
    placed, worst = {}, (0.0, None, None)
    for m in orders_msgs:
        t = m["type"].rsplit(".", 1)[-1]
        oid = m["value"]["order_id"]
        if t == "OrderPlaced":
            placed[oid] = m["ts"]
        elif t in ("OrderConfirmed", "OrderCancelled") and oid in placed:
            wait = (m["ts"] - placed[oid]) / 1000
            if wait > worst[0]:
                at = time.strftime("%H:%M:%S", time.gmtime(placed[oid] / 1000))
                worst = (wait, oid, at)
    return worst


def run(args, work):
    seed = seed_stock(args.orders)
    cfg = write_config(work, seed)
    t0 = time.monotonic()
    control = os.path.join(work, "broker-control") if args.chaos else None
    cluster = Cluster(work, cfg, args.partitions, control, args.keep)
    faults = Faults(cluster, args.seed, args.kill, args.broker_faults,
                    args.instances, args.storm) if args.chaos else None
    if not faults:
        for service in SERVICES:
            for _ in range(args.instances - 1):
                cluster.add_copy(service)
    try:
        threads = []
        if faults:
            threads.append(threading.Thread(target=faults.services))
            threads.append(threading.Thread(target=faults.brokers, args=(threads[0],)))
            for t in threads:
                t.start()
        # Spread over the faults' schedule, so that every fault meets orders in flight.
        rate = str(args.orders / faults.duration()) if faults else "0"
        try:
            gen = cluster.tool("producers/evk-order", "generate", "--count", str(args.orders),
                               "--seed", "42", "--customers", "50", "--rate", rate,
                               "--skus", ",".join(sorted(seed)))
        finally:
            if faults:
                faults.done.set()
            for t in threads:
                t.join()
        check(gen.returncode == 0, f"evk-order generate: exit {gen.returncode}: {gen.stderr}")
        t1 = time.monotonic()
        if faults:
            check(not faults.errors, f"fault injection: {faults.errors}")
        wait_for_outcomes(cluster, args.orders, args.timeout)
        t2 = time.monotonic()
        wait_idle(cluster)  # so that a duplicate, were there one, is there to see
        orders_msgs = cluster.read("orders")
        placed = {v["order_id"]: v for v in by_type(orders_msgs)["OrderPlaced"]}
        orders = by_type(orders_msgs)
        statuses = [m["value"] for m in cluster.read("orders.status")]
        payments = by_type(cluster.read("payments"))
        inventory = by_type(cluster.read("inventory"))
        shipments = by_type(cluster.read("shipments"))
        sent = [m["value"] for m in cluster.read("notifications")]
        lost, dup = count_faults(placed, statuses, orders, inventory, payments, shipments, sent)
        wait = longest_wait(orders_msgs)
        lost += args.orders - len(placed) - broker_lost(cluster, args, gen, placed)
        if faults:
            dlq = read_text(cluster.brokers, "orders.dlq")
            plost, pdup, predelivered = check_dead_letters(faults.poison, dlq)
            lost, dup = lost + plost, dup + pdup
            cluster.redeliveries["orders.dlq"] = predelivered
        injected = ""
        if faults:
            injected = (f" ({faults.added} added while orders flowed), faults injected "
                        f"{faults.kills + faults.stops + faults.outages + faults.refused} "
                        f"(kills {faults.kills}, SIGTERM/SIGINT restarts {faults.stops}, "
                        f"broker outages {faults.outages}, requests refused {faults.refused})")
        print(f"orders {args.orders}, instances {args.instances} per service{injected}, "
              f"lost {lost}, duplicated {dup}, redelivered {sum(cluster.redeliveries.values())}, "
              f"longest wait for an outcome {wait[0]:.1f} s ({wait[1]}, placed {wait[2]} UTC)",
              flush=True)
        if faults:
            print(f"e2e_flow: "
                  f"{len(faults.poison)} poison messages -> {len(dlq)} orders.dlq records, "
                  f"{len(cluster.unexpected)} services exited by themselves, "
                  f"{cluster.abandoned} stops gave their batch up (exit 4, broker away)",
                  flush=True)
        conflicts = {t: c for t, c in cluster.conflicts.items() if c[0]}
        if conflicts:
            print(f"e2e_flow: event ids sent again with other content: {conflicts}", flush=True)
        check(lost == 0 and dup == 0, f"lost {lost}, duplicated {dup}")
        check(not conflicts, f"event ids sent again with other content in {sorted(conflicts)}")
        check(not args.max_wait or wait[0] <= args.max_wait,
              f"{wait[1]} waited {wait[0]:.1f} s for its outcome (limit {args.max_wait} s)")
        last, confirmed = check_statuses(placed, statuses, orders)
        check({v["order_id"] for v in payments["PaymentAuthorized"]} == confirmed,
              "PaymentAuthorized and OrderConfirmed disagree")
        released = by_type(cluster.read("inventory"))["StockReleased"]
        check(len(released) == len(payments["PaymentDeclined"]),
              "not one StockReleased per PaymentDeclined")
        sold, final = check_stock(seed, placed, confirmed, settled_levels(cluster))
        with open(os.path.join(cluster.rundir, "outbox.jsonl")) as f:
            outbox = [json.loads(line) for line in f]
        # Replays after a crash or a rebalance repeat a side effect with its id.
        repeats = check_notifications(placed, last, sent, outbox,
                                      args.chaos or args.instances > 1)
        check_status_cli(cluster, last)
        for t in TOPICS:
            if not (faults and t == "orders"):
                check(not cluster.read(t + ".dlq"), f"{t}.dlq is not empty")
        check(not cluster.unexpected, f"services exited by themselves: {cluster.unexpected}")
    finally:
        cluster.stop()
    check(not cluster.bad_exits, f"services stopped by a signal exited non-zero: "
                                 f"{cluster.bad_exits}")
    check_logs(cluster, not args.chaos)
    if cluster.hwm:
        print("e2e_flow: peak memory per instance (VmHWM, MiB): " + ", ".join(
            f"{cluster._name(s, k)} {kib / 1024:.0f}" for (s, k), kib in sorted(cluster.hwm.items())))

    status = collections.Counter(s["status"] for s in last.values())
    print(f"e2e_flow: {args.orders} orders: {status['SHIPPED']} shipped, "
          f"{status['REJECTED']} rejected (stock), {status['CANCELLED']} cancelled "
          f"(payment declined, stock released)")
    print(f"e2e_flow: generated in {t1 - t0:.1f} s (incl. start); all outcomes "
          f"{t2 - t1:.1f} s later ({args.orders / max(t2 - t1, 1e-3):.0f} orders/s end to end)")
    print("e2e_flow: stock (seed - sold = final): " + ", ".join(
        f"{k} {seed[k]}-{sold[k]}={final[k]}" for k in sorted(seed)))
    print(f"e2e_flow: {len(sent)} notifications, {len(outbox)} outbox lines "
          f"({repeats} repeated by a restart); "
          f"{len(statuses)} status records; " + ("only poison dead-lettered" if args.chaos
                                                  else "DLQs empty"))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--orders", type=int, default=200)
    p.add_argument("--partitions", type=int, default=8)
    p.add_argument("--max-wait", type=float, default=0,
                   help="fail if an order waits longer for its outcome (seconds; 0: no limit)")
    p.add_argument("--instances", type=int, default=1,
                   help="copies of every service, started with the same command line")
    p.add_argument("--timeout", type=float, default=600, help="seconds for all outcomes")
    p.add_argument("--chaos", action="store_true",
                   help="kill and restart services, break the broker, write poison")
    p.add_argument("--seed", type=int, default=1, help="of the fault schedule")
    p.add_argument("--kill", action="store_true",
                   help="with --chaos, also kill -9 each service twice (records of the "
                        "transaction it had open stay visible on the dev broker: redeliveries)")
    p.add_argument("--broker-faults", action="store_true",
                   help="with --chaos, also take brokers down and up and push request errors "
                        "(the transactions they abort stay visible on the dev broker: "
                        "redeliveries)")
    p.add_argument("--storm", action="store_true",
                   help="with --broker-faults, bring the outages and refused requests at random "
                        "moments, whatever else is going on (some broker is down ~40%% of the "
                        "time), instead of one disruption at a time")
    p.add_argument("--keep", action="store_true",
                   help="keep the work directory, with the topics as last read in topics/ "
                        "and the faults' times in faults.log")
    args = p.parse_args()
    # ctest's timeout and ^C end the run through the finally clauses, which
    # stop every process it started.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("e2e_flow: terminated"))
    work = tempfile.mkdtemp(prefix="evk-e2e-")
    try:
        run(args, work)
    except (Failure, subprocess.CalledProcessError) as e:
        print(f"e2e_flow: FAILED: {e} (work directory kept: {work})", file=sys.stderr)
        return 1
    if args.keep:
        print(f"e2e_flow: work directory: {work}")
    else:
        shutil.rmtree(work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
