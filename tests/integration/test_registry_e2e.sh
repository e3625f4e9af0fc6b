#!/usr/bin/env bash
# evk-produce and evk-tail with a Schema Registry (tests/support/registry_server.py)
# over an evk-dev-broker process:
#   (a) evk-produce registers OrderPlaced under orders-value and writes frames
#       carrying the registry's id (checked with kcat, byte by byte);
#   (b) evk-tail with the registry decodes them; without it, the id is unknown;
#   (c) a registry that is down or refuses the credentials fails at start
#       (exit 2), naming the registry and never the password;
#   (d) so does a registry that gives every schema the same id.
# Usage: test_registry_e2e.sh EVK_DEV_BROKER EVK_PRODUCE EVK_TAIL
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../support/lib.sh
. "$(dirname "$0")/../support/lib.sh"

DEV_BROKER=$1 PRODUCE=$2 TAIL=$3
PY=/usr/bin/python3
SERVER=$(dirname "$0")/../support/registry_server.py
: "${EVK_SCHEMAS_DIR:?}"
unset EVK_CONFIG EVK_BOOTSTRAP_SERVERS EVK_SCHEMA_REGISTRY_URL

work=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

"$DEV_BROKER" --brokers 1 --bootstrap-file "$work/bootstrap" --topic orders:2 >/dev/null &
pids+=($!)
"$PY" "$SERVER" --first-id 4242 --auth "evkit:t0psecret" --port-file "$work/port" >/dev/null &
pids+=($!)
"$PY" "$SERVER" --same-id --port-file "$work/same-id-port" >/dev/null &
pids+=($!)
wait_for 10 test -s "$work/bootstrap" || fail "evk-dev-broker did not start"
wait_for 10 test -s "$work/port" || fail "registry_server.py did not start"
wait_for 10 test -s "$work/same-id-port" || fail "registry_server.py --same-id did not start"
BS=$(cat "$work/bootstrap")
URL="http://127.0.0.1:$(cat "$work/port")"

# The file spells the registry's dotted settings with '_', as libconfig needs.
cat >"$work/evkit.cfg" <<EOF
schema_registry = {
  url = "$URL";
  basic_auth_user_info = "evkit:t0psecret";
};
EOF

for i in 1 2 3; do
    printf '{"order_id":"r-%s","customer_id":"c-%s","items":[{"sku":"S","quantity":%s,"unit_price_cents":100}],"created_at":1700000000000}\n' "$i" "$i" "$i"
done >"$work/orders.jsonl"

# (a) frames carry the registry's id for orders-value.
"$PRODUCE" -F "$work/evkit.cfg" -b "$BS" -t OrderPlaced "$work/orders.jsonl" 2>"$work/a.err" ||
    fail "(a) evk-produce failed: $(cat "$work/a.err")"
id=$(curl -sf "$URL/__requests" | "$PY" -c '
import json, sys
print(next(r["id"] for r in json.load(sys.stdin)["registered"]
           if r["subject"] == "orders-value" and r["name"] == "shop.orders.OrderPlaced"))
') || fail "(a) OrderPlaced is not registered under orders-value"
[ "$id" -ge 4242 ] || fail "(a) unexpected registry id $id"
kcat -C -b "$BS" -t orders -o beginning -e -q -f '%s' -c 3 | od -An -tx1 -v >"$work/a.hex"
"$PY" - "$work/a.hex" "$id" <<'EOF' || fail "(a) frames do not carry registry id $id"
import sys
data = bytes(int(b, 16) for b in open(sys.argv[1]).read().split())
want = b"\x00" + int(sys.argv[2]).to_bytes(4, "big")
assert data.count(want) == 3, data[:16].hex()
EOF

# (b) evk-tail with the registry decodes them; without it the id is unknown.
"$TAIL" -F "$work/evkit.cfg" -b "$BS" -e orders >"$work/b.out" 2>"$work/b.err" ||
    fail "(b) evk-tail failed: $(cat "$work/b.err")"
[ "$(grep -c '"order_id":"r-' "$work/b.out")" -eq 3 ] || fail "(b) evk-tail printed: $(cat "$work/b.out")"
expect_rc 3 "$TAIL" -b "$BS" -e orders >"$work/b2.out" 2>/dev/null
[ "$(grep -c "\"error\":\"schema id $id is not in the catalog\"" "$work/b2.out")" -eq 3 ] ||
    fail "(b) without a registry: $(cat "$work/b2.out")"

# (c) failures at start: exit 2, a clear reason, no secret.
sed 's/t0psecret/wrong-pass/' "$work/evkit.cfg" >"$work/bad.cfg"
expect_rc 2 "$PRODUCE" -F "$work/bad.cfg" -b "$BS" -t OrderPlaced </dev/null 2>"$work/c.err"
grep -q "HTTP 401" "$work/c.err" || fail "(c) 401: $(cat "$work/c.err")"
! grep -q "wrong-pass" "$work/c.err" || fail "(c) the password was printed"
EVK_SCHEMA_REGISTRY_URL="http://127.0.0.1:1" expect_rc 2 "$TAIL" -b "$BS" -e orders 2>"$work/c2.err"
grep -q "schema registry http://127.0.0.1:1: " "$work/c2.err" || fail "(c) down: $(cat "$work/c2.err")"

# (d) ids that are not unique per schema.
EVK_SCHEMA_REGISTRY_URL="http://127.0.0.1:$(cat "$work/same-id-port")" \
    expect_rc 2 "$PRODUCE" -b "$BS" -t OrderPlaced </dev/null 2>"$work/d.err"
grep -q "the same id 1000: ids must be unique per schema" "$work/d.err" ||
    fail "(d) same id: $(cat "$work/d.err")"
echo "ok"
