"""Helpers of the program tests that run on one evk-dev-broker each
(tests/integration/test_evk_order_cli.py, test_producers_cli.py,
test_kcat_options.py, test_evk_admin.py): expectations counted, the broker
with fault injection, a main that runs a list of tests on it."""
import json
import os
import subprocess
import tempfile
import time

from procs import BIN, SRC

failures = []


def summary():
    """Print the count of failed expectations; the exit code."""
    print(f"{len(failures)} failure(s)")
    return 1 if failures else 0


def expect(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        failures.append(what)


class Broker:
    """evk-dev-broker in @work; commands() takes fault-injection commands."""

    def __init__(self, work):
        path = os.path.join(work, "bootstrap")
        self.fifo, self.log = os.path.join(work, "control"), os.path.join(work, "broker.out")
        with open(self.log, "w") as out:
            self.proc = subprocess.Popen([os.path.join(BIN, "lib/evk-dev-broker"),
                                          "--bootstrap-file", path, "--topic", "orders:4",
                                          "--control", self.fifo], stdout=out)
        self.wait_for(lambda: os.path.exists(path), "evk-dev-broker did not start")
        with open(path) as f:
            self.brokers = f.read().strip()
        self.env = dict(os.environ, EVK_SCHEMAS_DIR=os.path.join(SRC, "schemas"))
        for var in ("EVK_BOOTSTRAP_SERVERS", "EVK_CONFIG"):
            self.env.pop(var, None)

    def wait_for(self, cond, failure):
        deadline = time.monotonic() + 10
        while not cond():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(failure)
            time.sleep(0.05)

    def acks(self, line):
        with open(self.log) as f:
            return f.read().count(f"control: ok: {line}\n")

    def command(self, line):
        """Apply @line (docs/CLI.md, evk-dev-broker --control) and wait for its ack."""
        before = self.acks(line)
        with open(self.fifo, "w") as f:
            f.write(line + "\n")
        self.wait_for(lambda: self.acks(line) > before, f"evk-dev-broker did not apply {line!r}")

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)

    def run(self, prog, *args, stdin=None, brokers=True):
        cmd = [os.path.join(BIN, prog)] + (["-b", self.brokers] if brokers else []) + list(args)
        return subprocess.run(cmd, env=self.env, input=stdin, capture_output=True, text=True,
                              timeout=60)

    def orders(self):
        r = self.run("consumers/evk-tail", "-e", "orders")
        return [json.loads(line)["value"] for line in r.stdout.splitlines()]

    def new_orders(self, before):
        """Orders not in @before (partitions interleave, so not a suffix)."""
        seen = {o["order_id"] for o in before}
        return [o for o in self.orders() if o["order_id"] not in seen]


def run_with_broker(name, tests):
    """A test's main: each of @tests on one evk-dev-broker in a scratch
    directory, then the count of failed expectations; the exit code."""
    with tempfile.TemporaryDirectory(prefix=f"evk-{name}-") as work:
        b = Broker(work)
        try:
            for test in tests:
                test(b)
        finally:
            b.stop()
    return summary()
