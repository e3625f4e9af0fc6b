#!/usr/bin/python3
"""inventory-service's SKU side restores a command it had only partly
written (a crash in its batch, on a broker that shows what an unfinished
transaction wrote, as the dev broker does) and runs the command again on
the state it first ran on (consumers/inventory-service.c, "the SKU side"):

  1. inventory.levels holds the HELD entry of order o-1's RESERVE
     (inventory.lines offset 0) but not the SKU's record that follows it:
     the RESERVE, redelivered, takes the units once, and the SKU's record
     says so (available = seed - 3, held 3; the order is reserved and, with
     no payment-service running, its hold stays). Before, the restored
     entry read as a grant already made: the units were never taken off,
     and the CONFIRM that sold them later took the held units below zero.
  2. Then a CONFIRM (offset 1) whose GONE entry is there but not the SKU's
     record: the CONFIRM, redelivered, sells the hold (held 0), once.

The partial writes are made here with a plain producer, as a killed batch
leaves them. One partition per topic, so that offsets are known.
Environment (set by ctest): EVK_BIN_DIR (build dir), EVK_SOURCE_DIR.
"""
import io
import json
import os
import struct
import subprocess
import sys

import avro.io
import avro.schema

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from procs import (BIN, FLOW_TOPICS, SRC, Service, check, run_main, start_broker, tail,
                   wait_until, write_config)  # noqa: E402

SEED = 1000000  # write_config()'s SKU-1
SKU_HOLD_ID = 18  # schemas/catalog.cfg
KEY = "SKU-1\x1fo-1"


def hold_frame(**fields):
    with open(os.path.join(SRC, "schemas", "SkuHold.avsc")) as f:
        schema = avro.schema.parse(f.read())
    value = {"sku": "SKU-1", "order_id": "o-1", "quantity": 3, "command_id": "", "seq": -1,
             "before_state": "", "before_order_id": "", "before_quantity": 0,
             "before_command_id": "", "before_seq": -1, **fields}
    out = io.BytesIO()
    out.write(struct.pack(">bI", 0, SKU_HOLD_ID))
    avro.io.DatumWriter(schema).write(value, avro.io.BinaryEncoder(out))
    return out.getvalue()


def write_entry(brokers, frame):
    """What a batch killed after its entry and before the SKU's record left."""
    from confluent_kafka import Producer
    p = Producer({"bootstrap.servers": brokers, "enable.idempotence": True})
    p.produce("inventory.levels", key=KEY.encode(), value=frame)
    check(p.flush(30) == 0, "entry not delivered")


def place_order(cfg, brokers):
    line = json.dumps({"order_id": "o-1", "customer_id": "c-1", "currency": "EUR",
                       "items": [{"sku": "SKU-1", "quantity": 3, "unit_price_cents": 100}]})
    r = subprocess.run([os.path.join(BIN, "producers/evk-order"), "-F", cfg, "-b", brokers,
                        "publish", "-"], input=line, capture_output=True, text=True, timeout=30)
    check(r.returncode == 0, f"evk-order publish: {r.stderr}")


def command(cfg, brokers, action):
    line = json.dumps({"order_id": "o-1", "sku": "SKU-1", "quantity": 3, "action": action})
    r = subprocess.run([os.path.join(BIN, "producers/evk-produce"), "-F", cfg, "-b", brokers,
                        "-t", "StockLineCommand"], input=line, capture_output=True, text=True,
                       timeout=30)
    check(r.returncode == 0, f"evk-produce {action}: {r.stderr}")


def last_stock(cfg, brokers):
    """SKU-1's last SkuStock record in inventory.levels, or None."""
    last = None
    for m in tail(cfg, brokers, "inventory.levels"):
        if (m.get("type") or "").endswith(".SkuStock") and m["value"]["sku"] == "SKU-1":
            last = m["value"]
    return last


def applied(cfg, brokers, offset):
    rec = last_stock(cfg, brokers)
    return rec is not None and rec["applied_offset"] >= offset


def run_once(work, cfg, brokers, offset, want, before=None):
    svc = Service(work, "inventory-service", cfg, brokers)
    try:
        if before:
            svc.wait_log("msg=ready")
            before()
        wait_until(lambda: applied(cfg, brokers, offset) or svc.proc.poll() is not None, 60,
                   f"inventory-service did not apply the command at offset {offset}")
        rec = last_stock(cfg, brokers)
        got = (rec["available"], rec["held_units"])
        check(got == want, f"after offset {offset}: (available, held) {got}, expected {want}: "
                           f"{svc.log()[-1500:]}")
    finally:
        code, _ = svc.stop(30)
    check(code == 0, f"inventory-service exited {code} on SIGTERM")


def run(work):
    broker, brokers = start_broker(work, FLOW_TOPICS, partitions=1)
    cfg = write_config(work)
    try:
        write_entry(brokers, hold_frame(state="HELD", at=0))
        run_once(work, cfg, brokers, 0, (SEED - 3, 3), lambda: place_order(cfg, brokers))
        write_entry(brokers, hold_frame(state="GONE", quantity=0, at=1, before_state="HELD",
                                        before_order_id="o-1", before_quantity=3))
        command(cfg, brokers, "CONFIRM")
        run_once(work, cfg, brokers, 1, (SEED - 3, 0))
        answers = tail(cfg, brokers, "inventory.line-results")
        check([a["value"]["reserved"] for a in answers] == [True],
              f"one answer, a grant: {answers}")
    finally:
        broker.terminate()
        broker.wait(10)


if __name__ == "__main__":
    sys.exit(run_main("test_sku_restore", run,
                      "a RESERVE and a CONFIRM written only in part are redone once each"))
