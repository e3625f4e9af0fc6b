#!/usr/bin/python3
"""evk-order's command line against evk-dev-broker (no services): what each
command sends, prints and exits with (docs/CLI.md, "evk-order").

Environment (set by ctest): EVK_BIN_DIR (build dir), EVK_SOURCE_DIR.
"""
import collections
import json
import os
import re
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from clitest import expect, run_with_broker  # noqa: E402

ORDER_ID = re.compile(r"^o-[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def test_place(b):
    r = b.run("producers/evk-order", "place", "--customer", "c-1", "--item", "SKU-1:2:1999",
              "--item", "ns:SKU:9:1:5", "--currency", "USD")
    expect(r.returncode == 0 and ORDER_ID.match(r.stdout.strip()), "place prints the new id")
    placed = [o for o in b.orders() if o["order_id"] == r.stdout.strip()]
    expect(len(placed) == 1 and placed[0]["currency"] == "USD" and placed[0]["items"] == [
        {"sku": "SKU-1", "quantity": 2, "unit_price_cents": 1999},
        {"sku": "ns:SKU:9", "quantity": 1, "unit_price_cents": 5}], "place sends the order")
    r = b.run("producers/evk-order", "place", "--customer", "c-1", "--item", "SKU-1:0:5")
    expect(r.returncode == 1 and "quantity" in r.stderr, "place: zero quantity is a usage error")
    r = b.run("producers/evk-order", "place", "--item", "SKU-1:1:5")
    expect(r.returncode == 1, "place: --customer is required")


def test_place_rules(b):
    """The order rules publish applies (tests/integration/test_producers_cli.py), as
    usage errors naming the option; nothing is sent."""
    before = len(b.orders())
    iso = "must be an ISO 4217 code: three upper-case letters, e.g. EUR"
    for args, message in [
            (["--customer", ""], "evk-order: --customer: must not be empty"),
            (["--customer", "c\x01"],
             "evk-order: --customer: must not contain control characters (found U+0001)"),
            (["--customer", "c-1", "--currency", "euro"], f"evk-order: --currency euro: {iso}"),
            (["--customer", "c-1", "--currency", "EU"], f"evk-order: --currency EU: {iso}"),
            (["--customer", "c-1", "--item", "SKU\x7f:1:5"],
             "evk-order: --item: the SKU must not contain control characters (found U+007F)")]:
        item = [] if "--item" in args else ["--item", "SKU-1:1:5"]
        usage_error(b.run("producers/evk-order", "place", *args, *item), message,
                    f"place {args}")
    usage_error(b.run("producers/evk-order", "generate", "--count", "1", "--skus",
                      "SKU-1,SKU\x01"),
                "evk-order: generate: --skus: SKU 2 must not contain control characters "
                "(found U+0001)", "generate: a bad SKU")
    expect(len(b.orders()) == before, "no order was sent")


def usage_error(r, message, what):
    ok = r.returncode == 1 and r.stderr.splitlines()[:1] == [message]
    expect(ok, f"{what}: exit 1, {message!r}"
           + ("" if ok else f" (got {r.returncode}, {r.stderr!r})"))


PUBLISH = """\
{"order_id":"o-given","customer_id":"c-1","items":[{"sku":"SKU-1","quantity":1,"unit_price_cents":100}],"currency":"EUR","created_at":1700000000000}
{"customer_id":"c-2","items":[{"sku":"SKU-2","quantity":2,"unit_price_cents":250}]}
{"customer_id":"c-3","items":[{"sku":"SKU-3","quantity":"two","unit_price_cents":250}]}

{"customer_id":"c-4","items":[
{"customer_id":"c-5","items":[],"coupon":"X"}
"""


def test_publish(b):
    before = b.orders()
    r = b.run("producers/evk-order", "publish", "-", stdin=PUBLISH)
    ids = r.stdout.split()
    expect(r.returncode == 3, f"publish: exit 3 when a line is invalid (got {r.returncode})")
    expect("line 3: items[0].quantity: expected int, got string" in r.stderr,
           "publish: names line and field path")
    expect(re.search(r"^line 5, column \d+: ", r.stderr, re.M) is not None,
           "publish: reports malformed JSON by line")
    expect("line 6: coupon: unknown field" in r.stderr, "publish: unknown field")
    expect("2 sent, 3 invalid" in r.stderr, "publish: summary")
    expect(len(ids) == 2 and "o-given" in ids and ORDER_ID.match(
        [i for i in ids if i != "o-given"][0]), "publish: prints ids, fills in a missing id")
    sent = b.new_orders(before)
    expect(len(sent) == 2 and all(o["created_at"] > 0 for o in sent),
           "publish: valid lines sent, created_at filled in")

    before = len(b.orders())
    r = b.run("producers/evk-order", "publish", "--strict", "-", stdin=PUBLISH)
    expect(r.returncode == 3 and not r.stdout and len(b.orders()) == before,
           "publish --strict: nothing sent when a line is invalid")
    r = b.run("producers/evk-order", "publish", "--strict", "-",
              stdin=PUBLISH.splitlines()[1] + "\n")
    expect(r.returncode == 0 and len(b.orders()) == before + 1,
           "publish --strict: all valid lines sent")


def contents(orders):
    return collections.Counter(
        (o["customer_id"], json.dumps(o["items"], sort_keys=True)) for o in orders)


def test_generate(b):
    runs = []
    for _ in range(2):
        before = b.orders()
        r = b.run("producers/evk-order", "generate", "--count", "50", "--seed", "7",
                  "--skus", "A,B", "--customers", "3")
        expect(r.returncode == 0 and not r.stdout and "generated 50 orders" in r.stderr,
               "generate: exit 0 and a summary line when stderr is not a tty")
        runs.append(b.new_orders(before))
    orders = runs[0]
    expect(len(orders) == 50, "generate: sends --count orders")
    expect(all(1 <= len(o["items"]) <= 3 and {i["sku"] for i in o["items"]} <= {"A", "B"}
               for o in orders) and {o["customer_id"] for o in orders} <= {"c-1", "c-2", "c-3"},
           "generate: orders use --skus and --customers")
    expect(contents(runs[0]) == contents(runs[1]), "generate: same --seed, same orders")
    t0 = time.monotonic()
    r = b.run("producers/evk-order", "generate", "--count", "10", "--rate", "20")
    expect(r.returncode == 0 and time.monotonic() - t0 >= 0.4, "generate: --rate paces")


def test_status_and_errors(b):
    r = b.run("producers/evk-order", "status", "o-unknown")
    expect(r.returncode == 5 and r.stderr == "evk-order: order o-unknown not found\n",
           "status: exit 5 when not found")
    # No order-service runs here: a placed order is never recorded.
    placed = b.run("producers/evk-order", "place", "--customer", "c-1", "--item", "SKU-1:1:5")
    order_id = placed.stdout.strip()
    r = b.run("producers/evk-order", "status", order_id)
    expect(placed.returncode == 0 and r.returncode == 6 and re.fullmatch(
        f"evk-order: order {order_id} was placed at 20[0-9-]+T[0-9:.]+Z but order-service has "
        "not recorded it yet\n", r.stderr) is not None and r.stdout == "",
        f"status of an order placed but not recorded: exit 6, says so ({r.returncode}, {r.stderr})")
    r = b.run("producers/evk-order", "frobnicate")
    expect(r.returncode == 1, "unknown command: exit 1")
    r = b.run("producers/evk-order", "status", "o-1", brokers=False)
    expect(r.returncode == 2 and "no bootstrap servers" in r.stderr, "no brokers: exit 2")


def main():
    return run_with_broker("order-cli", [test_place, test_place_rules, test_publish,
                                         test_generate, test_status_and_errors])


if __name__ == "__main__":
    sys.exit(main())
