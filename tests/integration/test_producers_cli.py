#!/usr/bin/python3
"""evk-produce -t OrderPlaced and evk-order publish on the same awkward input,
against evk-dev-broker. Both read JSON lines through producers/lines.c, so
every case must give both programs the same exit code, the same reports
(by line number) and the same summary line (docs/CLI.md, "evk-produce").

Environment (set by ctest): EVK_BIN_DIR (build dir), EVK_SOURCE_DIR.
"""
import collections
import json
import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from clitest import expect, run_with_broker  # noqa: E402

PROGRAMS = {
    "evk-produce": ("producers/evk-produce", ["-t", "OrderPlaced"]),
    "evk-order": ("producers/evk-order", ["publish"]),
}


def order(order_id, customer="c-1", currency="EUR", sku="SKU-1"):
    return json.dumps({"order_id": order_id, "customer_id": customer,
                       "items": [{"sku": sku, "quantity": 1, "unit_price_cents": 100}],
                       "currency": currency, "created_at": 1700000000000},
                      separators=(",", ":"))


def publish(b, name, text, *opts, brokers=True):
    """Run one program on @text; opts go before the input ("-")."""
    path, args = PROGRAMS[name]
    return b.run(path, *args, *opts, "-", stdin=text, brokers=brokers)


def check(b, what, lines, want_rc, want_err, *opts, brokers=True):
    """Both programs on the same lines (each with its own order ids: "{p}"
    becomes the program's name): the exit code, and stderr ending with the
    summary. Delivery reports of different partitions may come in any
    order, so the lines before the summary are compared as a set.
    Returns {program: its result}."""
    results = {}
    for name in PROGRAMS:
        text = "".join(line.replace("{p}", name) + "\n" for line in lines)
        r = publish(b, name, text, *opts, brokers=brokers)
        want = [w.replace("{p}", name) for w in want_err]
        got = r.stderr.splitlines()
        ok = r.returncode == want_rc and got[-1:] == want[-1:] and sorted(got) == sorted(want)
        expect(ok, f"{name}: {what}: exit {want_rc} and\n" + "\n".join(want)
               + ("" if ok else f"\n     got exit {r.returncode} and\n{r.stderr}"))
        results[name] = r
    return results


def keys_on(b):
    r = b.run("consumers/evk-tail", "-e", "orders")
    return collections.Counter(json.loads(line)["key"] for line in r.stdout.splitlines())


def test_undeliverable_line(b):
    """A line over message.max.bytes is reported by number and counted as
    failed; the lines after it are still sent; exit 4."""
    big = order("{p}-big-2", customer="c-" + "x" * 5000)
    lines = [order("{p}-big-1"), big, order("{p}-big-3")]
    err = ["line 2: not delivered: produce to orders: Broker: Message size too large",
           "{p}: 2 sent, 0 invalid, 1 failed"]
    got = check(b, "an oversized line", lines, 4, err, "-X", "message.max.bytes=4096")
    expect(sorted(got["evk-order"].stdout.split()) == ["evk-order-big-1", "evk-order-big-3"],
           "evk-order: prints the ids of the delivered orders only")
    check(b, "an oversized line, --strict", [line.replace("big", "strict") for line in lines],
          4, err, "--strict", "-X", "message.max.bytes=4096")
    keys = keys_on(b)
    for name in PROGRAMS:
        for kind in ("big", "strict"):
            sent = [keys[f"{name}-{kind}-{i}"] for i in (1, 2, 3)]
            expect(sent == [1, 0, 1], f"{name}: {kind}: lines 1 and 3 sent once, 2 never: {sent}")


def test_failed_deliveries_name_their_lines(b):
    """Delivery reports come back asynchronously: each still names its line."""
    lines = ['{"order_id":"{p}-x"}', order("{p}-late-2"), "", order("{p}-late-4")]
    err = ["line 1: customer_id: missing required field",
           "line 2: not delivered to orders: Local: Message timed out",
           "line 4: not delivered to orders: Local: Message timed out",
           "{p}: 0 sent, 1 invalid, 2 failed"]
    # Every broker answers after 2 s: the programs connect (they wait up to
    # 10 s for a first answer), then every message times out.
    for broker in (1, 2, 3):
        b.command(f"rtt {broker} 2000")
    try:
        check(b, "undelivered lines by number", lines, 4, err,
              "-X", "message.timeout.ms=500", "-X", "log_level=0")
    finally:
        for broker in (1, 2, 3):
            b.command(f"rtt {broker} 0")


def test_no_broker(b):
    """Nothing listens on port 1: a one-line error after 10 s, exit 4, not
    a wait of message.timeout.ms (5 minutes) for each message."""
    check(b, "no broker", [order("{p}-nb-1")], 4,
          ["{p}: no broker reachable at 127.0.0.1:1 after 10 s: Local: Broker transport failure"],
          "-b", "127.0.0.1:1", "-X", "log_level=0", brokers=False)


def test_fatal_producer_error(b):
    """A fatal error fails every later send: reading stops there, and what
    was queued is reported line by line. When the error comes (early, here)
    depends on timing, so the counts are checked against the reports."""
    text = "".join(order(f"f-{i}") + "\n" for i in range(1, 20001))
    for name in PROGRAMS:
        b.command("err InitProducerId 1 CLUSTER_AUTHORIZATION_FAILED")
        r = publish(b, name, text.replace('"f-', f'"{name}-f-'), "-X", "log_level=0")
        err = r.stderr.splitlines()
        failed = [e for e in err if re.match(r"line \d+: not delivered", e)]
        stop = [int(m.group(1)) for e in err
                for m in [re.match(rf"{name}: stopped at line (\d+): the rest", e)] if m]
        ok = (r.returncode == 4 and err[-1:] == [f"{name}: 0 sent, 0 invalid, {len(failed)} failed"]
              and any(e.startswith(f"{name}: the producer failed: ") and
                      "Cluster authorization failed" in e for e in err)
              and (not stop or stop == [len(failed)]))
        expect(ok, f"{name}: a fatal producer error: exit 4, its reason, every queued line "
               "reported" + ("" if ok else f" (got {r.returncode}, {err[-3:]})"))


def test_keys(b):
    """A key field with U+0000 would be cut short (two orders, one key)."""
    lines = [order("{p}-n\0ul"), order("{p}-bell\a"), order(""), order("{p}-k-4")]
    check(b, "NUL, control characters and empty keys", lines, 3, [
        "line 1: order_id: key must not contain control characters (found U+0000)",
        "line 2: order_id: key must not contain control characters (found U+0007)",
        "line 3: order_id: key must not be empty",
        "{p}: 1 sent, 3 invalid"])
    keys = keys_on(b)
    expect(all(keys[f"{name}-k-4"] == 1 and keys[f"{name}-n"] == 0 for name in PROGRAMS)
           and keys[""] == 0, "only the valid line was sent, no truncated or empty key")


def test_duplicate_keys(b):
    """Rejected by both, in jansson's words, whichever field is repeated."""
    lines = ['{"order_id":"a","order_id":"b","customer_id":"c","items":[],"created_at":1}',
             '{"customer_id":"c","customer_id":"d","items":[],"created_at":1}']
    check(b, "duplicate keys", lines, 3, [
        "line 1, column 26: duplicate object key near '\"order_id\"'",
        "line 2, column 32: duplicate object key near '\"customer_id\"'",
        "{p}: 0 sent, 2 invalid"])


def test_nul_bytes(b):
    """A line of NUL bytes is not blank: it is invalid, like any NUL byte."""
    lines = ["\0\0\0", order("{p}-after-nul"), '{"order_id":\0}']
    check(b, "NUL bytes", lines, 3, ["line 1, column 1: NUL byte, not JSON text",
                                     "line 3, column 13: NUL byte, not JSON text",
                                     "{p}: 1 sent, 2 invalid"])
    expect(all(keys_on(b)[f"{name}-after-nul"] == 1 for name in PROGRAMS),
           "the line after the NUL bytes was sent")


def test_order_rules(b):
    """OrderPlaced's rules beyond its schema hold for both programs (and for
    evk-order place and generate: tests/integration/test_evk_order_cli.py)."""
    lines = [order("{p}-r-1", customer=""), order("{p}-r-2", customer="c\x01"),
             order("{p}-r-3", sku="SKU\0"), order("{p}-r-4", sku=""),
             order("{p}-r-5", currency="euro"), order("{p}-r-6", currency="eur"),
             order("{p}-r-7", currency="USD")]
    iso = "must be an ISO 4217 code: three upper-case letters, e.g. EUR"
    check(b, "order rules", lines, 3, [
        "line 1: customer_id: must not be empty",
        "line 2: customer_id: must not contain control characters (found U+0001)",
        "line 3: items[0].sku: must not contain control characters (found U+0000)",
        "line 4: items[0].sku: must not be empty",
        f"line 5: currency: {iso}",
        f"line 6: currency: {iso}",
        "{p}: 1 sent, 6 invalid"])
    keys = keys_on(b)
    expect(all([keys[f"{name}-r-{i}"] for i in range(1, 8)] == [0] * 6 + [1]
               for name in PROGRAMS), "only the valid order was sent")


def test_strict_summary(b):
    lines = [order("{p}-s-1"), '{"order_id":"{p}-s-2"}']
    check(b, "--strict sends nothing", lines, 3, [
        "line 2: customer_id: missing required field",
        "{p}: 0 sent, 1 invalid (--strict: nothing sent)"], "--strict")


def main():
    return run_with_broker("producers-cli", [test_undeliverable_line,
                                             test_failed_deliveries_name_their_lines,
                                             test_no_broker, test_fatal_producer_error,
                                             test_keys, test_duplicate_keys, test_nul_bytes,
                                             test_order_rules, test_strict_summary])


if __name__ == "__main__":
    sys.exit(main())
