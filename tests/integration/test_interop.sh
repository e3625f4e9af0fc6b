#!/usr/bin/env bash
# evk-produce and evk-tail against independent Kafka clients, over an
# evk-dev-broker process:
#   (a) evk-produce -> kcat -C -J (frame, headers) and confluent-kafka + avro (body)
#   (b) python3-avro frame -> kcat -P -> evk-tail decodes it; a bad frame is reported
#   (c) invalid input lines: exact stderr, valid lines still sent, --strict sends nothing
#   (d) no bootstrap servers / unreachable cluster / unknown type: exit codes
# Usage: test_interop.sh EVK_DEV_BROKER EVK_PRODUCE EVK_TAIL
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../support/lib.sh
. "$(dirname "$0")/../support/lib.sh"

DEV_BROKER=$1 PRODUCE=$2 TAIL=$3
PY=/usr/bin/python3
HELPER=$(dirname "$0")/../support/interop.py
: "${EVK_SCHEMAS_DIR:?}"
# The programs must see only what this test gives them.
unset EVK_CONFIG EVK_BOOTSTRAP_SERVERS

work=$(mktemp -d)
broker_pid=
cleanup() {
    if [ -n "$broker_pid" ]; then kill "$broker_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

expect_file() {
    diff -u "$1" "$2" >&2 || fail "$3"
}

# kcat reads a topic from the beginning to its end, as JSON lines.
kcat_json() {
    kcat -C -b "$BS" -t "$1" -o beginning -e -J -q
}

# Messages on topic $1 whose key starts with $2.
count_keys() {
    kcat -C -b "$BS" -t "$1" -o beginning -e -q -f '%k\n' | grep -c "^$2" || true
}

order() {
    printf '{"order_id":"%s","customer_id":"c-%s","items":[{"sku":"sku-1","quantity":%s,"unit_price_cents":1250}],"created_at":1700000000000}\n' \
        "$1" "$1" "$2"
}

start_broker() {
    "$DEV_BROKER" --brokers 3 --bootstrap-file "$work/bootstrap" --topic orders:3 >"$work/broker.out" &
    broker_pid=$!
    wait_for 10 test -s "$work/bootstrap" || fail "evk-dev-broker did not write its bootstrap file"
    BS=$(cat "$work/bootstrap")
    [ "$(cat "$work/broker.out")" = "$BS" ] || fail "stdout and bootstrap file differ"
}

case_a_produce_to_independent_readers() {
    for i in 1 2 3 4 5; do order "a-$i" "$i"; done >"$work/a.jsonl"
    "$PRODUCE" -b "$BS" -t OrderPlaced "$work/a.jsonl" 2>"$work/a.err" || fail "(a) evk-produce failed: $(cat "$work/a.err")"
    echo "evk-produce: 5 sent, 0 invalid" >"$work/a.want"
    expect_file "$work/a.want" "$work/a.err" "(a) evk-produce summary"
    kcat_json orders >"$work/a.kcat"
    "$PY" "$HELPER" kcat-frames "$work/a.kcat" "$work/a.jsonl" order_id 1 \
        shop.orders.OrderPlaced evk-produce
    "$PY" "$HELPER" confluent-decode "$BS" orders "$work/a.jsonl" "$EVK_SCHEMAS_DIR/OrderPlaced.avsc"
}

case_b_tail_decodes_foreign_frames() {
    local rec='{"order_id":"b-1","customer_id":"c-b","items":[{"sku":"sku-9","quantity":3,"unit_price_cents":700}],"currency":"USD","created_at":1700000000123}'
    "$PY" "$HELPER" encode "$EVK_SCHEMAS_DIR/OrderPlaced.avsc" 1 "$rec" "$work/b.frame"
    kcat -P -b "$BS" -t foreign -p 0 -k b-1 -H ce_type=shop.orders.OrderPlaced -H ce_id=id-b1 "$work/b.frame"
    printf '{"not":"avro"}' >"$work/b.bad"
    kcat -P -b "$BS" -t foreign -p 0 -k b-2 "$work/b.bad"
    expect_rc 3 "$TAIL" -b "$BS" -e foreign >"$work/b.out" 2>"$work/b.err"
    [ "$(wc -l <"$work/b.out")" -eq 2 ] || fail "(b) expected 2 lines: $(cat "$work/b.out")"
    "$PY" "$HELPER" tail-line "$work/b.out" 0 "{\"topic\":\"foreign\",\"partition\":0,\"offset\":0,
        \"key\":\"b-1\",\"headers\":{\"ce_type\":\"shop.orders.OrderPlaced\",\"ce_id\":\"id-b1\"},
        \"type\":\"shop.orders.OrderPlaced\",\"schema_id\":1,\"value\":$rec}"
    "$PY" "$HELPER" tail-line "$work/b.out" 1 '{"offset":1,"key":"b-2","headers":{},
        "error":"magic byte is 0x7b, expected 0x00"}'
    echo "evk-tail: 1 message(s) could not be decoded" >"$work/b.want"
    expect_file "$work/b.want" "$work/b.err" "(b) evk-tail stderr"
    expect_rc 0 "$TAIL" -b "$BS" -c 1 foreign >"$work/b.one"
    "$PY" "$HELPER" tail-line "$work/b.one" 0 '{"offset":0,"key":"b-1"}'
}

case_c_invalid_lines() {
    {
        order c-1 1
        order c-2 '"two"'
        echo
        echo '{"order_id":"c-4","items":[],"created_at":1}'
        echo '{"order_id":"c-5",'
        order c-6 6
    } >"$work/c.jsonl"
    cat >"$work/c.want" <<'EOF'
line 2: items[0].quantity: expected int, got string
line 4: customer_id: missing required field
line 5, column 18: string or '}' expected near end of file
EOF
    cp "$work/c.want" "$work/c-strict.want"
    echo "evk-produce: 2 sent, 3 invalid" >>"$work/c.want"
    echo "evk-produce: 0 sent, 3 invalid (--strict: nothing sent)" >>"$work/c-strict.want"

    expect_rc 3 "$PRODUCE" -b "$BS" -t OrderPlaced "$work/c.jsonl" 2>"$work/c.err"
    expect_file "$work/c.want" "$work/c.err" "(c) evk-produce stderr"
    [ "$(count_keys orders c-)" -eq 2 ] || fail "(c) valid lines were not sent"

    sed 's/"c-/"s-/' "$work/c.jsonl" >"$work/s.jsonl"
    expect_rc 3 "$PRODUCE" -b "$BS" -t OrderPlaced --strict <"$work/s.jsonl" 2>"$work/s.err"
    expect_file "$work/c-strict.want" "$work/s.err" "(c) evk-produce --strict stderr"
    [ "$(count_keys orders s-)" -eq 0 ] || fail "(c) --strict sent part of an invalid input"

    grep -v '"s-[245]"\|^$' "$work/s.jsonl" | expect_rc 0 "$PRODUCE" -b "$BS" -t OrderPlaced --strict - 2>/dev/null
    [ "$(count_keys orders s-)" -eq 2 ] || fail "(c) --strict did not send a valid input"
}

case_d_setup_errors() {
    local want="no bootstrap servers: use -b, EVK_BOOTSTRAP_SERVERS or kafka.bootstrap_servers in the config file (evk-dev-broker starts a local one)"
    expect_rc 2 "$PRODUCE" -t OrderPlaced </dev/null 2>"$work/d.err"
    echo "evk-produce: $want" >"$work/d.want"
    expect_file "$work/d.want" "$work/d.err" "(d) evk-produce without brokers"
    expect_rc 2 "$TAIL" orders 2>"$work/d.err"
    echo "evk-tail: $want" >"$work/d.want"
    expect_file "$work/d.want" "$work/d.err" "(d) evk-tail without brokers"

    expect_rc 1 "$PRODUCE" -b "$BS" -t NoSuchType </dev/null 2>/dev/null
    expect_rc 1 "$TAIL" -b "$BS" -o sideways orders 2>/dev/null

    # Nothing listens on port 1: no broker answers within 10 s, exit 4.
    order d-1 1 | expect_rc 4 "$PRODUCE" -b 127.0.0.1:1 -X log_level=0 -t OrderPlaced \
        2>"$work/d.err"
    grep -q '^evk-produce: no broker reachable at 127.0.0.1:1 after 10 s: ' "$work/d.err" ||
        fail "(d) unreachable cluster: $(cat "$work/d.err")"
}

stop_broker() {
    kill -TERM "$broker_pid"
    local rc=0
    wait "$broker_pid" || rc=$?
    broker_pid=
    [ "$rc" -eq 0 ] || fail "evk-dev-broker exited $rc on SIGTERM"
}

start_broker
case_a_produce_to_independent_readers
case_b_tail_decodes_foreign_frames
case_c_invalid_lines
case_d_setup_errors
stop_broker
echo "test_interop: all cases passed"
