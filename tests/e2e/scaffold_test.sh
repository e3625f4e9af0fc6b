#!/usr/bin/env bash
# scripts/new-consumer end to end, in a copy of the repository: refusals
# change nothing; fraud-check --on OrderPlaced --emit FraudScored --store
# OrderTally builds, turns an OrderPlaced into a FraudScored on the dev broker,
# and its scaffolded test (which also checks the store's changelog) passes.
# Then the same service as a project of its own (--dir), built with
# pkg-config against evkit installed under a prefix, passes its own test.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../support/lib.sh
. "$(dirname "$0")/../support/lib.sh"
src=${EVK_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
tmp=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait; rm -rf "$tmp"' EXIT

# The working tree as git sees it: tracked and new files, no build output.
repo=$tmp/repo
mkdir "$repo"
(cd "$src" && git ls-files -z -co --exclude-standard) |
  while IFS= read -r -d '' f; do [ -e "$src/$f" ] && printf '%s\0' "$f"; done |
  tar -C "$src" --null -T - -cf - | tar -C "$repo" -xf -
cd "$repo"

tree_sum() { find . -type f -print0 | sort -z | xargs -0 sha1sum; }
tree_sum >"$tmp/before"

# refuse "what" ARGS...: exit code 1, a message, and the tree as it was.
refuse() {
  local what=$1 rc=0
  shift
  scripts/new-consumer "$@" >/dev/null 2>"$tmp/err" || rc=$?
  [ "$rc" -eq 1 ] || fail "new-consumer $*: exit code $rc, expected 1"
  grep -q "$what" "$tmp/err" || fail "new-consumer $*: no \"$what\" in: $(cat "$tmp/err")"
  tree_sum | cmp -s - "$tmp/before" || fail "new-consumer $* changed the tree"
}
refuse "not a valid name" Fraud_Check --on OrderPlaced
refuse "not a valid name" 9lives --on OrderPlaced
refuse "payment-service exists" payment-service --on OrderPlaced
refuse "evk-tail exists" evk-tail --on OrderPlaced
refuse "not in schemas/catalog.cfg" fraud-check --on OrderPlacd --emit FraudScored
refuse "not a valid type name" fraud-check --on OrderPlaced --emit fraud-scored
refuse "a loop" fraud-check --on OrderPlaced --emit OrderPlaced
refuse "required" fraud-check
refuse "is reserved" metrics --on OrderPlaced
refuse "exists; a store keeps records of a new type" fraud-check --on OrderPlaced --store OrderPlaced
refuse "needs the same string key field" fraud-check --on OrderPlaced --on StockLevel --store Tally
mkdir "$tmp/full" && touch "$tmp/full/x"
refuse "exists and is not an empty directory" fraud-check --on OrderPlaced --dir "$tmp/full"
refuse "one typo away from evkit's config section schema_registry" schema-registry --on OrderPlaced

scripts/new-consumer fraud-check --on OrderPlaced --emit FraudScored --store OrderTally >/dev/null
for f in consumers/fraud-check.c tests/integration/fraud-check_test.sh schemas/FraudScored.avsc \
  schemas/OrderTally.avsc; do
  [ -f "$f" ] || fail "$f was not written"
done
grep -q 'FraudScored.*id = 19;' schemas/catalog.cfg || fail "no catalog entry with id 19 (the next free one)"
grep -q 'OrderTally"; topic = "fraud-check.order_tally";.*id = 20; key = "order_id"; changelog = true;' \
  schemas/catalog.cfg || fail "no changelog entry for the store: $(tail -3 schemas/catalog.cfg)"
grep -q '^evk_binary(fraud-check fraud-check.c)$' consumers/CMakeLists.txt ||
  fail "fraud-check is not in consumers/CMakeLists.txt"
grep -q '^fraud-check = {' config/evkit.cfg || fail "no fraud-check section in config/evkit.cfg"
if command -v clang-format >/dev/null; then
  clang-format --dry-run -Werror consumers/fraud-check.c || fail "fraud-check.c is not formatted"
fi
# The templates are checked here, as what they become (scripts/check-style).
if command -v shellcheck >/dev/null; then
  shellcheck tests/integration/fraud-check_test.sh || fail "the scaffolded test fails shellcheck"
fi
tree_sum >"$tmp/before"
refuse "fraud-check exists" fraud-check --on OrderPlaced --emit FraudScored

# Built as the calling build is, so that the sanitizer run checks the scaffold too.
sanitize=OFF
grep -qx 'EVK_SANITIZE:BOOL=ON' "${EVK_BIN_DIR:-/nonexistent}/CMakeCache.txt" 2>/dev/null &&
  sanitize=ON
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DEVK_SANITIZE=$sanitize >"$tmp/build.log" ||
  fail "cmake: $(cat "$tmp/build.log")"
cmake --build build -j"$(nproc)" --target fraud-check evk-dev-broker evk-produce evk-tail \
  >>"$tmp/build.log" 2>&1 || fail "build: $(tail -40 "$tmp/build.log")"

# The template's programs answer --help and --version like evkit's own.
build/consumers/fraud-check --help | grep -q '^Usage: fraud-check' || fail "fraud-check --help"
build/consumers/fraud-check --version | grep -q '^fraud-check evkit ' || fail "fraud-check --version"

build/lib/evk-dev-broker --bootstrap-file "$tmp/bootstrap" >/dev/null &
pids+=($!)
wait_for 30 test -s "$tmp/bootstrap" || fail "the dev broker did not start"
EVK_BOOTSTRAP_SERVERS=$(<"$tmp/bootstrap")
export EVK_BOOTSTRAP_SERVERS EVK_SCHEMAS_DIR=$repo/schemas EVK_LOG_FORMAT=logfmt

build/consumers/fraud-check -F config/evkit.cfg 2>"$tmp/service.log" &
svc=$!
pids+=("$svc")
ready() {
  grep -q 'msg=ready' "$tmp/service.log" && return
  kill -0 "$svc" 2>/dev/null || fail "fraud-check exited: $(cat "$tmp/service.log")"
  return 1
}
wait_for 60 ready || fail "fraud-check did not get ready: $(cat "$tmp/service.log")"

id=o-scaffold-$$
lines='[{"sku":"sku-1","quantity":1,"unit_price_cents":500}]'
printf '{"order_id":"%s","customer_id":"c-1","items":%s,"currency":"EUR","created_at":%s}\n' \
  "$id" "$lines" 1700000000000 |
  build/producers/evk-produce -t OrderPlaced 2>"$tmp/produce.log" ||
  fail "cannot produce the OrderPlaced: $(cat "$tmp/produce.log")"

# tail_has TOPIC TYPE FILE: TOPIC holds an event of TYPE keyed by the order id.
tail_has() {
  build/consumers/evk-tail -e "$1" >"$3" 2>/dev/null &&
    grep -q "\"key\":\"$id\".*\"ce_type\":\"$2\"" "$3"
}
wait_for 30 tail_has fraud-check shop.fraud_check.FraudScored "$tmp/scored.jsonl" ||
  fail "no FraudScored for $id: $(cat "$tmp/service.log")"
wait_for 30 tail_has orders shop.orders.OrderPlaced "$tmp/orders.jsonl" ||
  fail "the OrderPlaced is not on orders"
python3 - "$id" "$tmp/orders.jsonl" "$tmp/scored.jsonl" <<'PY' || fail "wrong FraudScored"
import json, sys

def one(path, ce_type):
    found = [m for m in map(json.loads, open(path))
             if m["key"] == sys.argv[1] and m["headers"]["ce_type"] == ce_type]
    assert len(found) == 1, (ce_type, found)
    return found[0]

placed = one(sys.argv[2], "shop.orders.OrderPlaced")
scored = one(sys.argv[3], "shop.fraud_check.FraudScored")
h = scored["headers"]
assert scored["value"] == {"order_id": sys.argv[1]}, scored["value"]
assert h["ce_source"] == "fraud-check", h
assert h["causation_id"] == placed["headers"]["ce_id"], h
# evk-produce sets no correlation id, so the OrderPlaced's id starts the chain.
assert h["correlation_id"] == placed["headers"].get("correlation_id", placed["headers"]["ce_id"]), h
PY

kill -TERM "$svc"
wait "$svc" || fail "fraud-check exited with $? after SIGTERM, expected 0"

# The scaffolded test is registered with ctest and passes.
ctest --test-dir build -R '^fraud-check_test$' --no-tests=error --output-on-failure \
  >"$tmp/ctest.log" || fail "fraud-check_test: $(cat "$tmp/ctest.log")"
echo "scaffold_test: in evkit's tree: ok"

# Out of the tree: evkit installed under a prefix of the user's own, the
# project elsewhere, found with pkg-config; nothing in evkit's tree changes.
prefix=$tmp/prefix proj=$tmp/project
cmake --install "${EVK_BIN_DIR:-$src/build}" --prefix "$prefix" >"$tmp/install.log" 2>&1 ||
  fail "cmake --install: $(cat "$tmp/install.log")"
tree_sum >"$tmp/before"
# (New type names: the copy's catalog holds FraudScored and OrderTally now.)
scripts/new-consumer risk-check --on OrderPlaced --emit RiskScored --store RiskTally \
  --dir "$proj" >/dev/null || fail "new-consumer --dir failed"
tree_sum | cmp -s - "$tmp/before" || fail "new-consumer --dir changed evkit's tree"
for f in CMakeLists.txt risk-check.c risk-check.cfg test/risk-check_test.sh \
  schemas/catalog.cfg schemas/OrderPlaced.avsc schemas/RiskScored.avsc schemas/RiskTally.avsc; do
  [ -f "$proj/$f" ] || fail "--dir: $f was not written"
done
if command -v shellcheck >/dev/null; then
  shellcheck "$proj/test/risk-check_test.sh" || fail "the project's test fails shellcheck"
fi
# The project's catalog plans its topics, the store's changelog compacted.
EVK_SCHEMAS_DIR=$proj/schemas "$prefix/bin/evk-admin" topics plan >"$tmp/plan" ||
  fail "evk-admin topics plan of the project's catalog failed"
grep -qx 'risk-check.risk_tally partitions=4 replication=default cleanup.policy=compact' \
  "$tmp/plan" || fail "the project's plan lacks the compacted changelog: $(cat "$tmp/plan")"
cflags=
[ "$sanitize" = OFF ] || cflags=-fsanitize=address,undefined
(
  cd "$proj"
  export PKG_CONFIG_PATH=$prefix/lib/pkgconfig
  cmake -S . -B build -DCMAKE_C_FLAGS="$cflags" && cmake --build build &&
    ctest --test-dir build --no-tests=error --output-on-failure
) >"$tmp/project.log" 2>&1 || fail "the project of its own: $(tail -40 "$tmp/project.log")"
echo "scaffold_test: a project of its own: ok"
