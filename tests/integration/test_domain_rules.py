#!/usr/bin/python3
"""The order rules hold in inventory-service, not only in evk-order: orders
written by a foreign producer (confluent_kafka and python3-avro, Confluent
frames without any CloudEvents header) that break them are business
rejections, StockRejected with the reason, and reserve nothing:

  - a line of -1 beside a line of +2 of the same SKU (merging would ship 1);
  - a negative unit price (an order totalling -1500.00);
  - a quantity of 0, an empty customer, a currency that is not ISO 4217,
    a total that does not fit in 64 bits;
while a valid order from the same producer is reserved, so the rejections
are the rules', not the producer's.

Environment (set by ctest): EVK_BIN_DIR (build dir), EVK_SOURCE_DIR.
"""
import io
import json
import os
import struct
import sys

import avro.io
import avro.schema

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from procs import (FLOW_TOPICS, SRC, Service, check, run_main, start_broker, tail, wait_until,
                   write_config)  # noqa: E402

BAD = {  # order id -> (items, customer, currency, the reason StockRejected must give)
    "o-merge": ([("SKU-1", 2, 100), ("SKU-1", -1, 100)], "c-1", "EUR",
                "items[1].quantity: must be at least 1, got -1"),
    "o-negative": ([("SKU-1", 1, -150000)], "c-1", "EUR",
                   "items[0].unit_price_cents: must not be negative, got -150000"),
    "o-zero": ([("SKU-1", 0, 100)], "c-1", "EUR", "items[0].quantity: must be at least 1, got 0"),
    "o-nocustomer": ([("SKU-1", 1, 100)], "", "EUR", "customer_id: must not be empty"),
    "o-euro": ([("SKU-1", 1, 100)], "c-1", "euro",
               "currency: must be an ISO 4217 code: three upper-case letters, e.g. EUR"),
    "o-overflow": ([("SKU-1", 2, 2**62)], "c-1", "EUR", "items[0]: order total out of range"),
}
GOOD = {"o-good": ([("SKU-1", 2, 100)], "c-1", "EUR", None)}


def order_frame(order_id, items, customer, currency):
    with open(os.path.join(SRC, "schemas", "OrderPlaced.avsc")) as f:
        doc = json.load(f)
    for field in doc["fields"]:  # the wire form without logical types
        if isinstance(field["type"], dict):
            field["type"].pop("logicalType", None)
    schema = avro.schema.parse(json.dumps(doc))
    value = {"order_id": order_id, "customer_id": customer, "currency": currency,
             "items": [{"sku": s, "quantity": q, "unit_price_cents": p} for s, q, p in items],
             "created_at": 1795615385123}
    out = io.BytesIO()
    out.write(struct.pack(">bI", 0, 1))  # magic byte, OrderPlaced's schema id
    avro.io.DatumWriter(schema).write(value, avro.io.BinaryEncoder(out))
    return out.getvalue()


def produce_orders(brokers, orders):
    from confluent_kafka import Producer
    p = Producer({"bootstrap.servers": brokers, "enable.idempotence": True,
                  "partitioner": "murmur2_random"})
    for oid, (items, customer, currency, _) in orders.items():
        p.produce("orders", key=oid, value=order_frame(oid, items, customer, currency))
    check(p.flush(30) == 0, "orders not delivered")


def decisions(cfg, brokers):
    """order id -> (type, value) of its stock decision so far."""
    return {m["value"]["order_id"]: (m["type"].rsplit(".", 1)[-1], m["value"])
            for m in tail(cfg, brokers, "inventory")}


def run(work):
    broker, brokers = start_broker(work, FLOW_TOPICS)
    cfg = write_config(work)
    svc = Service(work, "inventory-service", cfg, brokers)
    try:
        svc.wait_log("msg=ready")
        produce_orders(brokers, {**BAD, **GOOD})
        wait_until(lambda: len(decisions(cfg, brokers)) == len(BAD) + len(GOOD), 60,
                   "not every order got a stock decision")
        got = decisions(cfg, brokers)
        for oid, (_, _, _, reason) in BAD.items():
            kind, value = got[oid]
            check(kind == "StockRejected" and value["reason"] == reason,
                  f"{oid}: {kind} {value}, expected StockRejected: {reason}")
        kind, value = got["o-good"]
        check(kind == "StockReserved" and value["total_cents"] == 200,
              f"o-good: {kind} {value}, expected StockReserved of 200")
    finally:
        code, _ = svc.stop(30)
        broker.terminate()
        broker.wait(10)
    check(code == 0, f"inventory-service exited {code} on SIGTERM")


if __name__ == "__main__":
    sys.exit(run_main("test_domain_rules", run,
                      f"{len(BAD)} foreign orders breaking the rules rejected with their "
                      "reasons, a valid one reserved"))
