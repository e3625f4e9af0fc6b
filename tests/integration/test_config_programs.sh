#!/usr/bin/env bash
# The programs refuse a config they would otherwise misread, at start and
# before they connect anywhere (exit 2, naming the file and line), and never
# echo what may be a secret:
#   (a) a typo of one of evkit's groups (schema_regsitry) fails evk-produce,
#       where it used to mean "no registry";
#   (b) payment-service.blocked_customers = "c-1" (a string, not a list) and
#       an unknown key in order-service's group fail those services, which
#       used to start, blocking nobody and ignoring the key;
#   (c) -X with a value but no '=' is refused without showing the value.
# Nothing listens on the bootstrap address: a program that got past its
# checks would wait for a broker, and is stopped after 10 s.
# Usage: test_config_programs.sh EVK_PRODUCE PAYMENT_SERVICE ORDER_SERVICE
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../support/lib.sh
. "$(dirname "$0")/../support/lib.sh"

PRODUCE=$1 PAYMENT=$2 ORDER=$3
BS=127.0.0.1:1
: "${EVK_SCHEMAS_DIR:?}"
unset EVK_CONFIG EVK_BOOTSTRAP_SERVERS EVK_SCHEMA_REGISTRY_URL
export EVK_LOG_FORMAT=logfmt

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# expect_refused TEXT CMD...: CMD exits 2 with TEXT in its stderr.
expect_refused() {
    local want=$1 rc=0
    shift
    timeout 10 "$@" </dev/null 2>"$work/err" || rc=$?
    [ "$rc" -eq 2 ] || fail "exit $rc, expected 2: $*: $(cat "$work/err")"
    grep -qF -- "$want" "$work/err" || fail "\"$want\" not in: $(cat "$work/err")"
}

# (a)
cat >"$work/typo.cfg" <<CFG
schemas = { dir = "$EVK_SCHEMAS_DIR"; };
schema_regsitry = {
  url = "http://127.0.0.1:1";
};
CFG
expect_refused "$work/typo.cfg:2: schema_regsitry: unknown group; did you mean" \
    "$PRODUCE" -F "$work/typo.cfg" -b $BS -t OrderPlaced

# (b)
cat >"$work/list.cfg" <<CFG
schemas = { dir = "$EVK_SCHEMAS_DIR"; };
payment-service = {
  credit_limit_cents = 100000;
  blocked_customers = "c-1";
};
CFG
expect_refused "$work/list.cfg:4: payment-service.blocked_customers: expected list of strings" \
    "$PAYMENT" -F "$work/list.cfg" -b $BS
cat >"$work/key.cfg" <<CFG
schemas = { dir = "$EVK_SCHEMAS_DIR"; };
order-service = {
  retry_maxx = 3;
};
CFG
expect_refused "$work/key.cfg:3: order-service.retry_maxx: unknown setting; did you mean" \
    "$ORDER" -F "$work/key.cfg" -b $BS

# (c)
expect_refused "expected name=value" "$PRODUCE" -b $BS -X 'hun/ter@2' -t OrderPlaced
! grep -q "hun/ter@2" "$work/err" || fail "(c) the value was printed: $(cat "$work/err")"
echo "ok"
