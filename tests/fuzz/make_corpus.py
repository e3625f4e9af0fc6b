#!/usr/bin/python3
"""Write the fuzzers' seed corpora (tests/fuzz/corpus/{decode,json}) from the
valid frames in tests/data/codec (encoded by python-avro, an independent
peer) plus a record of tests/fuzz/schemas/Rich.avsc. Rerun after a schema
change; the seeds are checked in so the fuzzers need no Python.

    tests/fuzz/make_corpus.py
"""
import hashlib
import io
import json
import os
import re
import struct

import avro.io
import avro.schema

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(os.path.dirname(HERE))


def catalog(path):
    """[(type short name, id)] in catalog order, as evk_catalog_at() sees it."""
    text = open(path).read()
    return [(t.rsplit(".", 1)[-1], int(i))
            for t, i in re.findall(r'type = "([^"]+)";.*?id = (\d+);', text)]


def put(kind, data):
    d = os.path.join(HERE, "corpus", kind)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, hashlib.sha1(data).hexdigest()[:16]), "wb") as f:
        f.write(data)


def field(b):
    return bytes([len(b)]) + b


def decode_seed(catalog_bit, frame, key=b"o-1"):
    """fuzz_decode.c's layout: flags, headers, key, value."""
    headers = [(b"ce_specversion", b"1.0"), (b"ce_id", b"e-1"), (b"ce_source", b"fuzz"),
               (b"ce_time", b"2026-01-01T00:00:00.000Z"), (b"correlation_id", b"o-1")]
    out = bytes([catalog_bit | len(headers) << 1])
    for name, value in headers:
        out += field(name) + field(value)
    return out + field(key) + frame


def main():
    flow = catalog(os.path.join(SRC, "schemas", "catalog.cfg"))
    index = {name: i for i, (name, _) in enumerate(flow)}
    with open(os.path.join(SRC, "tests", "data", "codec", "python_frames.jsonl")) as f:
        for line in f:
            rec = json.loads(line)
            frame = bytes.fromhex(rec["frame"])
            put("decode", decode_seed(0, frame))
            put("decode", bytes([0]) + field(b"") + frame)  # no headers, empty key
            put("json", bytes([index[rec["type"]]]) + json.dumps(rec["value"]).encode())

    rich = avro.schema.parse(open(os.path.join(HERE, "schemas", "Rich.avsc")).read())
    value = {"id": "r-1", "flag": True, "i": -7, "l": 1 << 40, "f": 1.5, "d": -2.25,
             "raw": b"\x00\xff", "fx": b"wxyz", "color": "BLUE", "tags": {"a": "b"},
             "nums": [1, -1], "note": "n\u20ac", "choice": 3.5,
             "child": {"id": "r-2", "flag": False, "i": 0, "l": 0, "f": 0.0, "d": 0.0,
                       "raw": b"", "fx": b"abcd", "color": "RED", "tags": {}, "nums": [],
                       "note": None, "choice": "s", "child": None}}
    buf = io.BytesIO()
    avro.io.DatumWriter(rich).write(value, avro.io.BinaryEncoder(buf))
    put("decode", decode_seed(1, b"\0" + struct.pack(">i", 100) + buf.getvalue(), b"r-1"))
    rich_index = len(flow)
    put("json", bytes([rich_index]) + json.dumps(
        {**value, "raw": "\u0000\u00ff", "fx": "wxyz", "choice": {"double": 3.5},
         "child": {**value["child"], "raw": "", "fx": "abcd"}}).encode())
    put("json", bytes([rich_index]) + b'{"id": "r-3", "choice": 1, "note": "x"}')
    put("json", bytes([index["OrderPlaced"]]) + b'{"order_id": "o-1", "coupon": 1}')


if __name__ == "__main__":
    main()
