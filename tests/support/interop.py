"""Independent-peer checks for tests/integration/test_interop.sh.

Everything here uses clients that share no code with evkit: kcat's JSON
output, python3-confluent-kafka and python3-avro.

  interop.py kcat-frames KCAT_JSONL INPUT_JSONL KEY_FIELD SCHEMA_ID CE_TYPE CE_SOURCE
  interop.py confluent-decode BOOTSTRAP TOPIC INPUT_JSONL AVSC
  interop.py encode AVSC SCHEMA_ID RECORD_JSON OUT_FILE
  interop.py tail-line EVK_TAIL_JSONL INDEX EXPECTED_JSON
"""
import io
import json
import re
import struct
import sys
import time

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")


def fail(msg):
    sys.exit("interop.py: " + msg)


def expect(cond, msg):
    if not cond:
        fail(msg)


def read_jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def kcat_messages(path):
    """kcat -J writes payload bytes >= 0x80 raw and escapes control bytes;
    surrogateescape gives back the exact bytes."""
    with open(path, "rb") as f:
        raw = f.read().decode("utf-8", "surrogateescape")
    msgs = [json.loads(line) for line in raw.splitlines() if line.strip()]
    for m in msgs:
        m["payload"] = m["payload"].encode("utf-8", "surrogateescape")
        h = m.get("headers") or []
        m["headers"] = dict(zip(h[0::2], h[1::2]))
    return msgs


def kcat_frames(kcat_out, input_jsonl, key_field, schema_id, ce_type, ce_source):
    records = read_jsonl(input_jsonl)
    msgs = kcat_messages(kcat_out)
    expect(len(msgs) == len(records), "%d messages for %d input lines" % (len(msgs), len(records)))
    by_key = {m["key"]: m for m in msgs}
    for rec in records:
        m = by_key.get(rec[key_field])
        expect(m is not None, "no message keyed %r" % rec[key_field])
        p = m["payload"]
        expect(p[0] == 0, "magic byte %#x" % p[0])
        expect(struct.unpack(">i", p[1:5])[0] == int(schema_id), "schema id %r" % p[1:5])
        h = m["headers"]
        expect(h.get("ce_specversion") == "1.0", "ce_specversion %r" % h)
        expect(h.get("ce_type") == ce_type, "ce_type %r" % h.get("ce_type"))
        expect(h.get("ce_source") == ce_source, "ce_source %r" % h.get("ce_source"))
        expect(h.get("content-type") == "application/avro", "content-type %r" % h)
        expect(UUID.match(h.get("ce_id", "")), "ce_id %r" % h.get("ce_id"))
        expect(RFC3339.match(h.get("ce_time", "")), "ce_time %r" % h.get("ce_time"))
    expect(len({m["headers"]["ce_id"] for m in msgs}) == len(msgs), "ce_id not unique")


def strip_logical(node):
    """Logical types do not change the binary encoding; without them python3-avro
    reads and writes timestamp-millis as the plain long that JSON lines carry."""
    if isinstance(node, dict):
        return {k: strip_logical(v) for k, v in node.items() if k != "logicalType"}
    if isinstance(node, list):
        return [strip_logical(v) for v in node]
    return node


def load_schema(avsc):
    import avro.schema

    with open(avsc) as f:
        return avro.schema.parse(json.dumps(strip_logical(json.load(f))))


def with_defaults(schema, rec):
    """What the record reads as once the schema's defaults are filled in."""
    out = dict(rec)
    for field in schema.fields:
        if field.name not in out and field.has_default:
            out[field.name] = field.default
    return out


def confluent_decode(bootstrap, topic, input_jsonl, avsc):
    import avro.io
    from confluent_kafka import Consumer, TopicPartition

    schema = load_schema(avsc)
    want = {json.dumps(with_defaults(schema, r), sort_keys=True) for r in read_jsonl(input_jsonl)}
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "interop-py",
                  "enable.auto.commit": False, "isolation.level": "read_committed"})
    parts = c.list_topics(topic, timeout=10).topics[topic].partitions
    c.assign([TopicPartition(topic, p, 0) for p in parts])
    got = set()
    deadline = time.monotonic() + 20
    while len(got) < len(want) and time.monotonic() < deadline:
        m = c.poll(0.2)
        if m is None or m.error():
            continue
        v = m.value()
        expect(v[0] == 0 and struct.unpack(">i", v[1:5])[0] >= 0, "not a Confluent frame")
        rec = avro.io.DatumReader(schema).read(avro.io.BinaryDecoder(io.BytesIO(v[5:])))
        got.add(json.dumps(rec, sort_keys=True))
    c.close()
    expect(got == want, "decoded %s, expected %s" % (sorted(got), sorted(want)))


def encode(avsc, schema_id, record_json, out_file):
    import avro.io

    schema = load_schema(avsc)
    buf = io.BytesIO()
    buf.write(b"\0" + struct.pack(">i", int(schema_id)))
    record = with_defaults(schema, json.loads(record_json))
    avro.io.DatumWriter(schema).write(record, avro.io.BinaryEncoder(buf))
    with open(out_file, "wb") as f:
        f.write(buf.getvalue())


def tail_line(tail_out, index, expected_json):
    lines = read_jsonl(tail_out)
    got = lines[int(index)]
    want = json.loads(expected_json)
    for k, v in want.items():
        expect(got.get(k) == v, "%s: got %r, expected %r" % (k, got.get(k), v))


def main():
    cmds = {"kcat-frames": kcat_frames, "confluent-decode": confluent_decode,
            "encode": encode, "tail-line": tail_line}
    if len(sys.argv) < 2 or sys.argv[1] not in cmds:
        fail(__doc__)
    cmds[sys.argv[1]](*sys.argv[2:])


if __name__ == "__main__":
    main()
