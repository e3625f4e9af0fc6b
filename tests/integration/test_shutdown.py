#!/usr/bin/python3
"""SIGTERM ends a service within its shutdown budget (service.h:
`<service>.shutdown_timeout_ms`, 10 s by default: Docker's grace period)
whatever the broker does:

  1. no broker reachable at start-up: it exits 0 (nothing was consumed);
  2. the broker killed (SIGKILL) while the service is idle: it exits 0;
  3. the broker killed while a transaction is open (its commit held up by
     EndTxn errors, then the broker gone): it gives up the batch, says so in
     its log and exits 4; the batch is redone by the next instance;
  4. and an outage (every broker down for a few seconds while a transaction
     is open) is waited out: the transaction commits once the brokers are
     back, the service keeps going and later stops with exit 0.

Before the budget, SIGTERM took ~28 s in (1) and never ended in (3):
rd_kafka_commit_transaction(-1) waits for as long as the broker is gone.

Each scenario runs inventory-service over its own evk-dev-broker; with
--outage only (4) runs, else (1)-(3).
Environment (set by ctest): EVK_BIN_DIR (build dir), EVK_SOURCE_DIR.
"""
import os
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from procs import (BIN, FLOW_TOPICS, Failure, Service, check, committed_at_end, unused_port,
                   wait_until, write_config)  # noqa: E402

BOUND = 10.0  # the default shutdown_timeout_ms, in seconds
# How long a test waits for a stop before it calls it a hang (the old
# behaviour: ~28 s at start-up, 11+ minutes in a commit).
PATIENCE = 20


def stop_within_bound(svc, want_code):
    code, took = svc.stop(PATIENCE)
    check(code is not None, f"{svc.name} still running {PATIENCE} s after SIGTERM")
    print(f"test_shutdown: {svc.name} exited {code} {took:.1f} s after SIGTERM", flush=True)
    check(took <= BOUND, f"{svc.name} took {took:.1f} s to stop, more than {BOUND} s")
    check(code == want_code, f"{svc.name} exited {code}, expected {want_code}: "
                             f"{svc.log()[-1500:]}")


def no_broker_at_start(work):
    cfg = write_config(work)
    svc = Service(work, "inventory-service", cfg, f"127.0.0.1:{unused_port()}")
    try:
        # librdkafka reports the refused connection: the service is waiting
        # for its cluster (init_transactions).
        svc.wait_log("Connection refused")
        stop_within_bound(svc, 0)
    finally:
        svc.kill()


class Broker:
    """evk-dev-broker with a control FIFO, acknowledged on its stdout."""

    def __init__(self, work):
        self.control = os.path.join(work, "control")
        self.out = os.path.join(work, "broker.out")
        self.acks = 0
        bootstrap = os.path.join(work, "bootstrap")
        args = []
        for t in FLOW_TOPICS:
            args += ["--topic", f"{t}:2", "--topic", f"{t}.dlq:2"]
        with open(self.out, "w") as out:
            self.proc = subprocess.Popen(
                [os.path.join(BIN, "lib/evk-dev-broker"), "--bootstrap-file", bootstrap,
                 "--control", self.control, *args], stdout=out, stderr=subprocess.STDOUT)
        wait_until(lambda: os.path.exists(bootstrap) or self.proc.poll() is not None, 10,
                   "evk-dev-broker wrote no bootstrap file")
        with open(bootstrap) as f:
            self.brokers = f.read().strip()

    def command(self, line):
        with open(self.control, "w") as f:
            f.write(line + "\n")
        self.acks += 1

        def acks():
            with open(self.out) as f:
                return [ln.strip() for ln in f if ln.startswith("control: ")]
        wait_until(lambda: len(acks()) >= self.acks, 10, f"evk-dev-broker did not acknowledge {line}")
        check(acks()[self.acks - 1] == "control: ok: " + line, acks()[self.acks - 1])

    def kill(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()


def place_order(cfg, brokers):
    r = subprocess.run([os.path.join(BIN, "producers/evk-order"), "-F", cfg, "-b", brokers,
                        "place", "--customer", "c-1", "--item", "SKU-1:1:100"],
                       capture_output=True, timeout=30)
    check(r.returncode == 0, f"evk-order place: {r.stderr}")


def handled(svc, n):
    """@svc logged @n OrderPlaced inputs handled (the per-event line, at info)."""
    log = svc.log()
    return sum(1 for line in log.splitlines()
               if "msg=event" in line and "type=shop.orders.OrderPlaced" in line
               and "outcome=ok" in line) >= n


def idle(svc, brokers, orders):
    """@svc decided @orders orders and committed all that followed: the
    OrderPlaced, the RESERVE and its answer, the CONFIRM (its input topics
    all committed to their end)."""
    return svc.log().count("msg=reserved") >= orders and all(
        committed_at_end(brokers, "inventory-service", t)
        for t in ("orders", "inventory.lines", "inventory.line-results"))


def broker_killed(work, mid_transaction):
    broker = Broker(work)
    cfg = write_config(work, inventory='event_log_level = "info";')
    svc = Service(work, "inventory-service", cfg, broker.brokers)
    try:
        svc.wait_log("msg=ready")
        # One order handled and committed: the service is idle.
        place_order(cfg, broker.brokers)
        wait_until(lambda: idle(svc, broker.brokers, 1), 30,
                   "inventory-service did not commit its input")
        if mid_transaction:
            # No transaction commits from here on (librdkafka retries EndTxn
            # every retry.backoff.ms, 1000 times): the next order is handled
            # in a transaction that stays open.
            broker.command("err EndTxn 1000 COORDINATOR_NOT_AVAILABLE")
            place_order(cfg, broker.brokers)
            wait_until(lambda: handled(svc, 2), 30, "the second order was not handled")
        broker.kill()
        stop_within_bound(svc, 4 if mid_transaction else 0)
        if mid_transaction:
            log = svc.log()
            check("was not committed within shutdown_timeout_ms" in log and
                  "the next instance redoes it" in log,
                  f"the log does not say the batch was given up: {log[-1500:]}")
    finally:
        svc.kill()
        broker.kill()


def outage_survived(work):
    broker = Broker(work)
    # Reconnect soon after the outage (librdkafka backs off up to 10 s).
    cfg = write_config(work, "kafka = { reconnect_backoff_max_ms = 500; };\n",
                       inventory='event_log_level = "info";')
    svc = Service(work, "inventory-service", cfg, broker.brokers)
    try:
        svc.wait_log("msg=ready")
        place_order(cfg, broker.brokers)
        wait_until(lambda: idle(svc, broker.brokers, 1), 30,
                   "inventory-service did not commit its input")
        # A transaction held open by EndTxn errors (~4 s of librdkafka's
        # retries) while every broker is down for 3 s: its commit outlasts
        # many of the service's call slices, and must still go through.
        broker.command("err EndTxn 8 COORDINATOR_NOT_AVAILABLE")
        place_order(cfg, broker.brokers)
        wait_until(lambda: handled(svc, 2), 30, "the second order was not handled")
        for b in (1, 2, 3):
            broker.command(f"down {b}")
        time.sleep(3)  # the outage itself
        for b in (1, 2, 3):
            broker.command(f"up {b}")
        wait_until(lambda: committed_at_end(broker.brokers, "inventory-service", "orders"), 60,
                   "inventory-service did not commit the order after the outage")
        check(svc.proc.poll() is None, f"inventory-service exited: {svc.log()[-1500:]}")
        stop_within_bound(svc, 0)
    finally:
        svc.kill()
        broker.kill()


def main():
    if sys.argv[1:] == ["--outage"]:
        scenarios = [("an outage while a transaction is open", outage_survived)]
    else:
        scenarios = [("no broker at start-up", no_broker_at_start),
                     ("broker killed while idle", lambda w: broker_killed(w, False)),
                     ("broker killed mid-transaction", lambda w: broker_killed(w, True))]
    failed = 0
    for name, run in scenarios:
        with tempfile.TemporaryDirectory(prefix="evk-shutdown-") as work:
            try:
                run(work)
                print(f"ok   {name}", flush=True)
            except Failure as e:
                print(f"FAIL {name}: {e}", flush=True)
                failed += 1
    print(f"{failed} failure(s)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
