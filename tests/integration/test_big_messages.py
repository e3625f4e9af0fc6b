#!/usr/bin/python3
"""Messages too large to be dead-lettered as they are: a 1 MB and a 10 MB
message that are not Avro, written to `orders` by a confluent_kafka producer
(message.max.bytes raised; the dev broker takes both). Every service reading
`orders` (inventory-, order-, notification-service) must dead-letter each
and keep going, rather than exit 4 on a dead letter over librdkafka's
message.max.bytes (as they did, again after every restart):

  - orders.dlq holds each message once per service, with its key, its
    headers and the evk_dlq_* headers, the value cut to a prefix that fits
    under 1,000,000 bytes and evk_dlq_truncated = the original size;
  - each service logged the dead letter at warn, saying it was cut;
  - an order placed afterwards goes through; every service exits 0 on SIGTERM.

Environment (set by ctest): EVK_BIN_DIR (build dir), EVK_SOURCE_DIR.
"""
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from procs import (BIN, FLOW_TOPICS, Service, check, read_raw, run_main, start_broker,
                   wait_until, write_config)  # noqa: E402

READERS = ["inventory-service", "order-service", "notification-service"]
# The dev broker keeps ~5 MB per partition: the six dead letters (~1 MB
# each) must not share one. Their partition follows the key (murmur2, over
# orders.dlq's 2 partitions): these two keys hash apart.
SIZES = {"huge-1mb": 1_000_000, "huge-10mb": 10_000_000}
PARTITION = {"huge-1mb": 1, "huge-10mb": 0}
LIMIT = 1_000_000  # the services' message.max.bytes (librdkafka's default)


def produce(brokers, key, value, partition):
    """Write one message; (partition, offset)."""
    from confluent_kafka import Producer
    p = Producer({"bootstrap.servers": brokers, "message.max.bytes": 20_000_000,
                  "enable.idempotence": True})
    done = []
    p.produce("orders", key=key, value=value, headers=[("x-test", key.encode())],
              partition=partition, on_delivery=lambda err, msg: done.append((err, msg)))
    check(p.flush(60) == 0 and done and not done[0][0], f"{key} not delivered: {done}")
    return done[0][1].partition(), done[0][1].offset()


def produce_big(brokers):
    """Write the big messages; (key -> (value, partition, offset))."""
    out = {}
    for key, size in SIZES.items():
        value = b"\x01" + os.urandom(size - 1)  # magic byte 1: not a Confluent frame
        out[key] = (value, *produce(brokers, key, value, PARTITION[key]))
    return out


def check_dead_letter(key, value, h, originals):
    original, partition, offset = originals[key]
    size = len(key) + len(value) + sum(len(k) + len(v or b"") for k, v in h.items())
    check(size < LIMIT, f"{key}: dead letter of {size} bytes")
    check(h.get("x-test") == key.encode(), f"{key}: the input's header is gone")
    want = {"evk_dlq_error": "EVK_ERR_BAD_MAGIC", "evk_dlq_topic": "orders",
            "evk_dlq_partition": str(partition), "evk_dlq_offset": str(offset),
            "evk_dlq_truncated": str(len(original))}
    for name, v in want.items():
        check(h.get(name, b"").decode() == v, f"{key}: {name} {h.get(name)}, expected {v}")
    check(h.get("evk_dlq_reason"), f"{key}: no evk_dlq_reason")
    check(LIMIT - 2000 < len(value) < len(original) and original.startswith(value),
          f"{key}: value of {len(value)} bytes is not the fitting prefix of the original")


def run(work):
    broker, brokers = start_broker(work, FLOW_TOPICS)
    cfg = write_config(work)
    svcs = [Service(work, name, cfg, brokers) for name in READERS]
    try:
        for svc in svcs:
            svc.wait_log("msg=ready")
        originals = produce_big(brokers)

        def all_dead_lettered():
            for svc in svcs:
                check(svc.proc.poll() is None, f"{svc.name} exited {svc.proc.returncode}: "
                                               f"{svc.log()[-1500:]}")
            return len(read_raw(brokers, "orders.dlq")) >= len(SIZES) * len(READERS)
        wait_until(all_dead_lettered, 60, "not every big message was dead-lettered")
        dlq = read_raw(brokers, "orders.dlq")
        seen = sorted((k.decode(), h["evk_dlq_service"].decode()) for k, _, h in dlq)
        check(seen == sorted((k, s) for k in SIZES for s in READERS),
              f"orders.dlq: {seen}, expected each message once per service")
        for key, value, h in dlq:
            check_dead_letter(key.decode(), value, h, originals)
        for svc in svcs:
            check("outcome=dead_letter" in svc.log() and "(dead letter cut to " in svc.log(),
                  f"{svc.name} did not log the cut dead letter")

        # The dev broker drops a message over 5 MB from its window when the
        # next one arrives in its partition, and loses that next one with
        # it (librdkafka 2.0's mock cluster): a spacer takes that place.
        produce(brokers, "spacer", b"lost by the dev broker", PARTITION["huge-10mb"])
        r = subprocess.run([os.path.join(BIN, "producers/evk-order"), "-F", cfg, "-b", brokers,
                            "place", "--customer", "c-1", "--item", "SKU-1:1:100"],
                           capture_output=True, text=True, timeout=30)
        check(r.returncode == 0, f"evk-order place: {r.stderr}")
        order = r.stdout.strip()
        wait_until(lambda: order in svcs[0].log() and any(
            order.encode() == k for k, _, _ in read_raw(brokers, "orders.status")), 60,
            "the order placed after the big messages did not go through")
    finally:
        codes = {svc.name: svc.stop(30)[0] for svc in svcs}
        broker.terminate()
        broker.wait(10)
    check(all(c == 0 for c in codes.values()), f"exit codes on SIGTERM: {codes}")


if __name__ == "__main__":
    sys.exit(run_main("test_big_messages", run,
                      f"2 big messages dead-lettered (cut to fit) by {len(READERS)} services, "
                      "which kept going"))
