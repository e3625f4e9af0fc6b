#!/usr/bin/python3
"""Interop peer for evkit's codec tests, using the reference Python Avro library.

  interop.py generate    rewrite python_frames.jsonl beside this script: one
                         Confluent frame per line, written by python3-avro,
                         with the value it holds (run once; the output is
                         committed so that the tests do not need Python)
  interop.py decode      read one hex-encoded Confluent frame per stdin line,
                         print the value it holds as one compact JSON line
"""
import io
import json
import os
import re
import struct
import sys

import avro.io
import avro.schema

HERE = os.path.dirname(os.path.abspath(__file__))
SCHEMAS = os.path.join(HERE, "..", "..", "..", "schemas")

# Values chosen to cover unions (both branches), enums, arrays, nested
# records, longs beyond 2^53, negative numbers and non-ASCII text.
SAMPLES = [
    ("OrderPlaced", {"order_id": "o-py-1", "customer_id": "c-7",
                     "items": [{"sku": "sku-1", "quantity": 3, "unit_price_cents": 1999},
                               {"sku": "sku-2", "quantity": 1, "unit_price_cents": 9007199254740993}],
                     "currency": "EUR", "created_at": 1795615385123}),
    ("OrderStatus", {"order_id": "o-py-2", "customer_id": "c-8", "status": "CANCELLED",
                     "total_cents": -42, "reason": "payment declined: Zahlung abgelehnt \u20ac",
                     "history": [{"type": "shop.orders.OrderPlaced", "source": "evk-order",
                                  "time": "2026-11-24T14:03:05.123Z", "event_id": "e-1"}]}),
    ("OrderStatus", {"order_id": "o-py-3", "customer_id": "c-9", "status": "PLACED",
                     "total_cents": 0, "reason": None, "history": []}),
    ("StockRejected", {"order_id": "o-py-4", "customer_id": "c-1", "reason": "out of stock",
                       "sku": "sku-\U0001F600"}),
    ("StockLevel", {"sku": "sku-1", "available": -9223372036854775808}),
]


def plain(node):
    """The schema without logicalType annotations: the wire form is the same,
    and the values stay plain JSON numbers instead of datetime objects."""
    if isinstance(node, dict):
        return {k: plain(v) for k, v in node.items() if k != "logicalType"}
    if isinstance(node, list):
        return [plain(v) for v in node]
    return node


def catalog():
    """Short type name -> (schema id, parsed schema), from catalog.cfg."""
    text = open(os.path.join(SCHEMAS, "catalog.cfg")).read()
    out = {}
    for m in re.finditer(r'schema\s*=\s*"([^"]+)\.avsc";\s*id\s*=\s*(\d+)', text):
        name, sid = m.group(1), int(m.group(2))
        with open(os.path.join(SCHEMAS, name + ".avsc")) as f:
            out[name] = (sid, avro.schema.parse(json.dumps(plain(json.load(f)))))
    return out


def encode(sid, schema, value):
    buf = io.BytesIO()
    buf.write(struct.pack(">bI", 0, sid))
    avro.io.DatumWriter(schema).write(value, avro.io.BinaryEncoder(buf))
    return buf.getvalue()


def decode(cat, frame):
    magic, sid = struct.unpack(">bI", frame[:5])
    if magic != 0:
        raise ValueError("bad magic byte")
    schema = next(s for i, s in cat.values() if i == sid)
    return avro.io.DatumReader(schema).read(avro.io.BinaryDecoder(io.BytesIO(frame[5:])))


def main():
    cat = catalog()
    if sys.argv[1:] == ["generate"]:
        with open(os.path.join(HERE, "python_frames.jsonl"), "w") as out:
            for name, value in SAMPLES:
                sid, schema = cat[name]
                frame = encode(sid, schema, value)
                out.write(json.dumps({"type": name, "frame": frame.hex(), "value": value},
                                     ensure_ascii=False, separators=(",", ":")) + "\n")
    elif sys.argv[1:] == ["decode"]:
        for line in sys.stdin:
            value = decode(cat, bytes.fromhex(line.strip()))
            print(json.dumps(value, ensure_ascii=False, separators=(",", ":")))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
