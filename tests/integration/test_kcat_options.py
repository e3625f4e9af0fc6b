#!/usr/bin/python3
"""kcat's habits on evk-produce and evk-tail, against evk-dev-broker
(docs/CLI.md): evk-produce -k/-p/-H, evk-tail -p/-k/-t/--raw/-o s@; -q and
progress on a terminal for evk-produce and evk-order publish/generate.
What evk-produce sent is read back with python3-confluent-kafka, not only
with evk-tail, so that one program's filter does not hide the other's bug.

Environment (set by ctest): EVK_BIN_DIR (build dir), EVK_SOURCE_DIR.
"""
import base64
import json
import os
import pty
import subprocess
import sys
import time

from confluent_kafka import Consumer, TopicPartition

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from clitest import expect, run_with_broker  # noqa: E402

PRODUCE, TAIL = "producers/evk-produce", "consumers/evk-tail"


def record(order_id=None, **extra):
    r = {"customer_id": "c-1", "items": [{"sku": "SKU-1", "quantity": 1,
                                          "unit_price_cents": 100}], "created_at": 1}
    if order_id is not None:
        r["order_id"] = order_id
    r.update(extra)
    return json.dumps(r)


def read_all(b, topic):
    """Every message of @topic's 4 partitions, as confluent-kafka sees them."""
    c = Consumer({"bootstrap.servers": b.brokers, "group.id": "kcat-options",
                  "enable.auto.commit": False, "enable.partition.eof": True})
    c.assign([TopicPartition(topic, p, 0) for p in range(4)])
    msgs, eof, deadline = [], set(), time.monotonic() + 30
    while len(eof) < 4 and time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is None:
            continue
        if m.error():
            eof.add(m.partition())
            continue
        msgs.append(m)
    c.close()
    return msgs


def tail(b, *args):
    r = b.run(TAIL, "-e", *args, "orders")
    return r, [json.loads(line) for line in r.stdout.splitlines()]


def test_produce_key_partition_headers(b):
    """-k fills the key field a line leaves out and refuses another; -p
    sends to that partition; -H adds a header, or replaces evkit's."""
    text = "\n".join([record(), record("k-other"), record("k-1")]) + "\n"
    r = b.run(PRODUCE, "-t", "OrderPlaced", "-k", "k-1", "-p", "3", "-H", "correlation_id=cor-9",
              "-H", "x-trace=abc", "-", stdin=text)
    expect(r.returncode == 3 and r.stderr.splitlines() == [
        'line 2: order_id: "k-other" is not the key given with -k ("k-1")',
        "evk-produce: 2 sent, 1 invalid"], f"-k: a line with another key is invalid: {r.stderr}")
    sent = [m for m in read_all(b, "orders") if m.key() in (b"k-1", b"k-other")]
    headers = [dict(m.headers()) for m in sent]
    expect(len(sent) == 2 and {m.partition() for m in sent} == {3},
           f"-p 3: both lines on partition 3 ({[m.partition() for m in sent]})")
    expect(all(h.get("correlation_id") == b"cor-9" and h.get("x-trace") == b"abc" and
               h.get("ce_type") == b"shop.orders.OrderPlaced" for h in headers),
           f"-H: the headers added beside evkit's ({headers})")
    _, lines = tail(b, "-k", "k-1")
    expect([line["value"]["order_id"] for line in lines] == ["k-1", "k-1"],
           "-k: the line without order_id got the key")

    r = b.run(PRODUCE, "-t", "OrderPlaced", "-H", "correlation_id=one", "-H",
              "correlation_id=two", "-", stdin=record("k-2") + "\n")
    got = [dict(m.headers()) for m in read_all(b, "orders") if m.key() == b"k-2"]
    expect(r.returncode == 0 and len(got) == 1 and got[0]["correlation_id"] == b"two",
           "-H of a name given twice: the last one wins, once")


def test_produce_refused(b):
    for args, want in [
            (["-k", ""], "evk-produce: -k : must not be empty"),
            (["-k", "a\x01"], "evk-produce: -k a\x01: must not contain control characters"),
            (["-p", "-1"], "evk-produce: -p -1: not a partition number"),
            (["-p", "2x"], "evk-produce: -p 2x: not a partition number"),
            (["-H", "x"], "evk-produce: -H x: expected name=value"),
            (["-H", "=v"], "evk-produce: -H =v: expected name=value"),
            (["-H", "ce_type=Fake"], "evk-produce: -H ce_type=Fake: evkit sets this header"),
            (["-H", "ce_id=1"], "evk-produce: -H ce_id=1: evkit sets this header")]:
        r = b.run(PRODUCE, "-t", "OrderPlaced", *args, "-", stdin=record("never") + "\n")
        expect(r.returncode == 1 and r.stderr.startswith(want), f"{args}: exit 1, {want!r}")
    r = b.run(PRODUCE, "-t", "OrderPlaced", "-p", "9", "-", stdin=record("k-9") + "\n")
    expect(r.returncode == 4 and "line 1: not delivered: produce to orders: Local: Unknown "
           "partition" in r.stderr, f"-p 9 of 4 partitions: not delivered, exit 4: {r.stderr}")
    expect(not [m for m in read_all(b, "orders") if m.key() in (b"never", b"k-9")],
           "nothing refused was sent")


def test_tail_filters(b):
    """evk-tail -p, -k and -t print exactly the messages that match; -c
    counts what is printed."""
    text = record("t-1") + "\n" + record("t-2") + "\n"
    b.run(PRODUCE, "-t", "OrderPlaced", "-p", "1", "-", stdin=text)
    confirmed = json.dumps({"order_id": "t-1", "customer_id": "c-1", "total_cents": 100,
                            "currency": "EUR"})
    r = b.run(PRODUCE, "-t", "OrderConfirmed", "-p", "1", "-", stdin=confirmed + "\n")
    expect(r.returncode == 0, f"an OrderConfirmed sent to orders: {r.stderr}")
    everything = read_all(b, "orders")

    _, lines = tail(b, "-p", "1")
    want = sorted(m.offset() for m in everything if m.partition() == 1)
    expect(sorted(line["offset"] for line in lines) == want and
           {line["partition"] for line in lines} == {1}, "-p 1: every message of partition 1")
    _, lines = tail(b, "-k", "t-1")
    expect(sorted(line["type"] for line in lines) ==
           ["shop.orders.OrderConfirmed", "shop.orders.OrderPlaced"], "-k t-1: both of t-1's")
    _, lines = tail(b, "-t", "OrderConfirmed")
    want = sum(1 for m in everything if dict(m.headers() or [])["ce_type"].endswith(b"Confirmed"))
    expect(len(lines) == want >= 1 and {line["type"] for line in lines} ==
           {"shop.orders.OrderConfirmed"}, f"-t OrderConfirmed: only those ({len(lines)}/{want})")
    _, lines = tail(b, "-t", "shop.orders.OrderPlaced", "-k", "t-1", "-c", "1")
    expect(len(lines) == 1 and lines[0]["value"]["order_id"] == "t-1", "-t, -k and -c together")
    r, _ = tail(b, "-t", "Nope")
    expect(r.returncode == 1 and 'unknown event type "Nope"' in r.stderr, "-t Nope: exit 1")
    r, _ = tail(b, "-p", "7")
    expect(r.returncode == 5 and 'topic "orders" has no partition 7 (it has 4)' in r.stderr,
           "-p 7 of 4: exit 5")
    for args, want in [(["-G", "g", "-p", "1"], "-p: not with -G"),
                       (["--raw", "-t", "OrderPlaced"], "-t: not with --raw"),
                       (["-p", "x"], '-p: expected a partition number, got "x"'),
                       (["-o", "s@-5"], '-o: expected beginning, end, an offset or s@<ms>')]:
        r, _ = tail(b, *args)
        expect(r.returncode == 1 and want in r.stderr, f"{args}: exit 1, {want!r}")


def test_tail_raw(b):
    """--raw: the value's bytes exactly, base64; nothing decoded."""
    everything = {(m.partition(), m.offset()): m.value() for m in read_all(b, "orders")}
    r, lines = tail(b, "--raw")
    got = {(line["partition"], line["offset"]): base64.b64decode(line["value_base64"])
           for line in lines}
    expect(r.returncode == 0 and got == everything and all("type" not in line for line in lines),
           f"--raw: every value byte for byte ({len(got)} messages)")


def test_tail_from_time(b):
    """-o s@<ms>: the dev broker answers every time lookup with "no such
    offset" (librdkafka 2.0.2's mock: "FIXME: by timestamp"), which a real
    cluster gives only when no message is that recent: evk-tail then starts
    at the end. What a real cluster finds cannot be shown here."""
    future = int(time.time() * 1000) + 3_600_000
    r, lines = tail(b, "-o", f"s@{future}")
    expect(r.returncode == 0 and lines == [], "-o s@<an hour from now>: nothing, exit 0")


def on_a_tty(b, args, stdin):
    """Run a program with stderr on a pseudo-terminal; (exit code, what it wrote there)."""
    master, slave = pty.openpty()
    p = subprocess.Popen([os.path.join(os.environ.get("EVK_BIN_DIR", "build"), args[0]), "-b",
                          b.brokers] + args[1:], env=b.env, stdin=subprocess.PIPE,
                         stdout=subprocess.DEVNULL, stderr=slave, text=True)
    os.close(slave)
    p.communicate(stdin, timeout=60)
    out = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the program has closed its side
            break
        if not chunk:
            break
        out += chunk
    os.close(master)
    return p.returncode, out.decode()


def test_quiet_and_progress(b):
    """-q leaves out the summary (the reports of bad lines stay); on a
    terminal a progress line is rewritten in place, unless -q."""
    r = b.run(PRODUCE, "-q", "-t", "OrderPlaced", "-", stdin=record("q-1") + "\n")
    expect(r.returncode == 0 and r.stderr == "", f"-q: nothing on stderr ({r.stderr!r})")
    r = b.run(PRODUCE, "-t", "OrderPlaced", "-q", "-", stdin=record("q-2") + "\n{}\n")
    expect(r.returncode == 3 and r.stderr == "line 2: order_id: missing required field\n",
           f"-q: the bad line is still reported ({r.stderr!r})")
    r = b.run("producers/evk-order", "publish", "-q", "-", stdin=record("q-3") + "\n")
    expect(r.returncode == 0 and r.stderr == "" and r.stdout == "q-3\n",
           f"evk-order publish -q: the id on stdout, nothing on stderr ({r.stderr!r})")
    r = b.run("producers/evk-order", "generate", "-q", "--count", "3")
    expect(r.returncode == 0 and r.stderr == "", f"evk-order generate -q: silent ({r.stderr!r})")

    lines = "".join(record(f"tty-{i}") + "\n" for i in range(2000))
    rc, out = on_a_tty(b, [PRODUCE, "-t", "OrderPlaced", "-"], lines)
    expect(rc == 0 and "\r2000 lines read, 2000 delivered, 0 invalid" in out and
           out.rstrip().endswith("evk-produce: 2000 sent, 0 invalid"),
           f"a terminal: progress, then the summary ({out[-200:]!r})")
    rc, out = on_a_tty(b, [PRODUCE, "-q", "-t", "OrderPlaced", "-"], lines)
    expect(rc == 0 and out == "", f"a terminal with -q: nothing ({out[-200:]!r})")
    r = b.run(PRODUCE, "-t", "OrderPlaced", "-", stdin=lines)
    expect("\r" not in r.stderr, "not a terminal: no progress line")


def test_tail_no_broker(b):
    """evk-tail -G does not wait for a group forever when no broker answers."""
    r = b.run(TAIL, "-b", "127.0.0.1:1", "-G", "g-nobroker", "orders", brokers=False)
    said = [line for line in r.stderr.split("\n") if line.startswith("evk-tail:")]
    expect(r.returncode == 4 and len(said) == 1 and said[0].startswith(
        "evk-tail: no broker reachable at 127.0.0.1:1 after 10 s"), f"evk-tail -G, no broker: "
        f"one line of its own, exit 4 ({r.returncode}, {said!r})")


def main():
    return run_with_broker("kcat-options", [test_produce_key_partition_headers,
                                            test_produce_refused, test_tail_filters,
                                            test_tail_raw, test_tail_from_time,
                                            test_quiet_and_progress, test_tail_no_broker])


if __name__ == "__main__":
    sys.exit(main())
