#!/usr/bin/python3
"""End-to-end test of the reference flow: the five services as separate
processes over evk-dev-broker (scripts/start-services), fed by
`evk-order generate`, checked from the outside through evk-tail.

    e2e_flow.py --orders N [--chaos]

Stock is seeded so that some SKUs run out (rejections) and the credit limit
is low enough that some payments are declined (compensations). Once every
order has an outcome it checks:
  - every order has exactly one final status (SHIPPED, REJECTED, CANCELLED)
    and exactly one OrderConfirmed or OrderCancelled, agreeing with it;
  - final stock (inventory.levels, last value per SKU) == seed - units of the
    confirmed orders: declined orders' stock came back, nothing leaked;
  - exactly one order_confirmed/order_cancelled notification per order and
    one shipment_dispatched per shipped order, both as NotificationSent
    events and as outbox lines, with distinct notification ids;
  - `evk-order status` agrees with orders.status and exits 5 for an unknown id;
  - nothing was dead-lettered, no service logged an error, and every service
    stopped cleanly on SIGTERM.

With --chaos, orders are generated over ~10 s while each service in turn is
killed with SIGKILL and restarted: the same checks must hold (the outbox may
then repeat a notification, with the same id: at-least-once side effects).

Environment (set by ctest): EVK_BIN_DIR (build dir), EVK_SOURCE_DIR.
"""
import argparse
import collections
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

BIN = os.environ.get("EVK_BIN_DIR", "build")
SRC = os.environ.get("EVK_SOURCE_DIR", os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SERVICES = ["inventory-service", "payment-service", "shipping-service", "order-service",
            "notification-service"]
TOPICS = ["orders", "inventory", "payments", "shipments", "notifications", "inventory.levels",
          "orders.status"]
FINAL = {"SHIPPED", "REJECTED", "CANCELLED"}
CREDIT_LIMIT = 60000
BLOCKED = "c-7"


class Failure(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Failure(what)


def seed_stock(n):
    """Plenty of four SKUs, scarce two: they run out part way through."""
    plenty = 10 * n
    return {"SKU-1": plenty, "SKU-2": plenty, "SKU-3": plenty, "SKU-4": max(3, n * 3 // 10),
            "SKU-5": max(2, n * 15 // 100), "SKU-6": plenty}


def write_config(work, stock, chaos):
    with open(os.path.join(work, "stock.cfg"), "w") as f:
        f.write("stock = (\n%s\n);\n" % ",\n".join(
            '  { sku = "%s"; available = %d; }' % kv for kv in sorted(stock.items())))
    cfg = os.path.join(work, "evkit.cfg")
    with open(cfg, "w") as f:
        f.write(f'''schemas = {{ dir = "{SRC}/schemas"; }};
inventory-service = {{ seed_file = "{work}/stock.cfg"; }};
payment-service = {{ credit_limit_cents = {CREDIT_LIMIT}; blocked_customers = [ "{BLOCKED}" ]; }};
notification-service = {{ outbox = "{work}/run/outbox.jsonl"; }};
''')
        if chaos:
            # A killed member stays in its group until its session times out
            # (45 s by default), holding up the restarted one's assignment.
            f.write('kafka = { session_timeout_ms = 6000; heartbeat_interval_ms = 1000; };\n')
    return cfg


class Cluster:
    def __init__(self, work, cfg, partitions):
        self.work, self.cfg, self.rundir = work, cfg, os.path.join(work, "run")
        self.restarted = []
        self.env = dict(os.environ, EVK_BIN_DIR=BIN)
        self.env.pop("EVK_BOOTSTRAP_SERVERS", None)  # the dev broker, always
        self.env.pop("EVK_CONFIG", None)
        self.env["EVK_LOG_FORMAT"] = "logfmt"  # check_logs() reads logfmt
        subprocess.run([os.path.join(SRC, "scripts/start-services"), "-F", cfg, "--dir",
                        self.rundir, "--partitions", str(partitions)],
                       env=self.env, check=True)
        with open(os.path.join(self.rundir, "bootstrap")) as f:
            self.brokers = f.read().strip()

    def stop(self):
        subprocess.run([os.path.join(SRC, "scripts/start-services"), "stop", "--dir",
                        self.rundir], env=self.env, check=False)
        # Checked by the caller, so that a failure before the stop is not masked.
        self.bad_exits = [(p.args[0], p.wait(10)) for p in self.restarted if p.wait(10) != 0]

    def restart(self, service):
        """kill -9 @service and start it again as start-services did."""
        pidfile = os.path.join(self.rundir, "pids", service + ".pid")
        log = os.path.join(self.rundir, "logs", service + ".log")
        with open(pidfile) as f:
            pid = int(f.read())
        with open(log) as f:
            readies = f.read().count("msg=ready")
        os.kill(pid, signal.SIGKILL)
        while os.path.exists(f"/proc/{pid}") and "zombie" not in open(f"/proc/{pid}/status").read():
            time.sleep(0.01)
        with open(log, "a") as f:
            proc = subprocess.Popen([os.path.join(BIN, "consumers", service), "-F", self.cfg,
                                     "-b", self.brokers], cwd=SRC, env=self.env,
                                    stdin=subprocess.DEVNULL, stdout=f, stderr=f)
        self.restarted.append(proc)  # reaped by stop()
        with open(pidfile, "w") as f:
            f.write(f"{proc.pid}\n")
        deadline = time.monotonic() + 60
        while True:
            with open(log) as f:
                if f.read().count("msg=ready") > readies:
                    return
            check(proc.poll() is None, f"{service} exited after its restart")
            check(time.monotonic() < deadline, f"{service} not ready after its restart")
            time.sleep(0.05)

    def tool(self, *args, **kw):
        return subprocess.run([os.path.join(BIN, args[0]), "-F", self.cfg, "-b", self.brokers,
                               *args[1:]], env=self.env, capture_output=True, text=True, **kw)

    def read(self, topic):
        """Every committed message of @topic, decoded."""
        r = self.tool("consumers/evk-tail", "-e", topic)
        check(r.returncode == 0, f"evk-tail {topic}: exit {r.returncode}: {r.stderr}")
        msgs = [json.loads(line) for line in r.stdout.splitlines()]
        bad = [m for m in msgs if "error" in m]
        check(not bad, f"{topic}: undecodable messages, e.g. {bad[:1]}")
        return msgs


def by_type(msgs):
    out = collections.defaultdict(list)
    for m in msgs:
        out[m["type"].rsplit(".", 1)[-1]].append(m["value"])
    return out


def progress(cluster):
    """(#outcomes, #notifications expected, #notifications seen)."""
    orders = by_type(cluster.read("orders"))
    shipped = len(by_type(cluster.read("shipments"))["ShipmentDispatched"])
    sent = len(cluster.read("notifications"))
    outcomes = len(orders["OrderConfirmed"]) + len(orders["OrderCancelled"])
    return outcomes, outcomes + shipped, sent, len(orders["OrderConfirmed"]), shipped


def wait_for_outcomes(cluster, n, timeout):
    deadline = time.monotonic() + timeout
    while True:
        outcomes, want_sent, sent, confirmed, shipped = progress(cluster)
        if outcomes >= n and shipped >= confirmed and sent >= want_sent:
            return
        check(time.monotonic() < deadline,
              f"after {timeout} s: {outcomes}/{n} outcomes, {shipped}/{confirmed} shipped, "
              f"{sent}/{want_sent} notifications")
        time.sleep(1)


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


def check_stock(seed, placed, confirmed, levels):
    sold = collections.Counter()
    for oid in confirmed:
        for line in placed[oid]["items"]:
            sold[line["sku"]] += line["quantity"]
    final = {}
    for lv in levels:
        final[lv["sku"]] = lv["available"]
    for sku, units in seed.items():
        check(final.get(sku) == units - sold[sku],
              f"{sku}: level {final.get(sku)} != seed {units} - sold {sold[sku]}")
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


def check_logs(rundir):
    for s in SERVICES:
        with open(os.path.join(rundir, "logs", s + ".log")) as f:
            log = f.read()
        check("level=error" not in log, f"{s} logged an error")
        # A sanitizer build reports (leaks: at exit) on stderr, i.e. the log.
        check("Sanitizer" not in log and "runtime error:" not in log,
              f"{s}: sanitizer report in its log")
        check("msg=stopped" in log, f"{s} did not stop cleanly")


def chaos(cluster, errors):
    """One service after another: kill -9 while orders flow, restart."""
    try:
        for service in SERVICES:
            time.sleep(1.5)
            cluster.restart(service)
            print(f"e2e_flow: killed and restarted {service}", flush=True)
    except Exception as e:  # reported by the main thread
        errors.append(e)


def run(args, work):
    seed = seed_stock(args.orders)
    cfg = write_config(work, seed, args.chaos)
    t0 = time.monotonic()
    cluster = Cluster(work, cfg, args.partitions)
    try:
        errors = []
        killer = threading.Thread(target=chaos, args=(cluster, errors)) if args.chaos else None
        if killer:
            killer.start()
        rate = str(args.orders / 10) if args.chaos else "0"  # spread over the kills
        gen = cluster.tool("producers/evk-order", "generate", "--count", str(args.orders),
                           "--seed", "42", "--customers", "50", "--rate", rate,
                           "--skus", ",".join(sorted(seed)))
        check(gen.returncode == 0, f"evk-order generate: exit {gen.returncode}: {gen.stderr}")
        t1 = time.monotonic()
        if killer:
            killer.join()
            check(not errors, f"chaos: {errors}")
        wait_for_outcomes(cluster, args.orders, args.timeout)
        t2 = time.monotonic()
        time.sleep(2)  # a duplicate, were there one, would arrive now
        placed = {v["order_id"]: v for v in by_type(cluster.read("orders"))["OrderPlaced"]}
        check(len(placed) == args.orders, f"{len(placed)} OrderPlaced, expected {args.orders}")
        orders = by_type(cluster.read("orders"))
        statuses = [m["value"] for m in cluster.read("orders.status")]
        last, confirmed = check_statuses(placed, statuses, orders)
        payments = by_type(cluster.read("payments"))
        released = by_type(cluster.read("inventory"))["StockReleased"]
        check(len(released) == len(payments["PaymentDeclined"]),
              "not one StockReleased per PaymentDeclined")
        sold, final = check_stock(seed, placed, confirmed,
                                  [m["value"] for m in cluster.read("inventory.levels")])
        sent = [m["value"] for m in cluster.read("notifications")]
        with open(os.path.join(cluster.rundir, "outbox.jsonl")) as f:
            outbox = [json.loads(line) for line in f]
        repeats = check_notifications(placed, last, sent, outbox, args.chaos)
        check_status_cli(cluster, last)
        for t in TOPICS:
            check(not cluster.read(t + ".dlq"), f"{t}.dlq is not empty")
    finally:
        cluster.stop()
    check(not cluster.bad_exits, f"restarted services exited non-zero: {cluster.bad_exits}")
    check_logs(cluster.rundir)

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
          f"{len(statuses)} status records; DLQs empty")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--orders", type=int, default=200)
    p.add_argument("--partitions", type=int, default=8)
    p.add_argument("--timeout", type=float, default=600, help="seconds for all outcomes")
    p.add_argument("--chaos", action="store_true", help="kill -9 and restart each service")
    p.add_argument("--keep", action="store_true", help="keep the work directory")
    args = p.parse_args()
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
