#!/usr/bin/env bash
# Every program takes -h/--help (usage on stdout, exit 0) and -V/--version
# ("<program> evkit <CMake's project version> (librdkafka ...)", exit 0), and
# evk-order and evk-admin take both after a command too. Programs find the schemas.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../support/lib.sh
. "$(dirname "$0")/../support/lib.sh"
bin=${EVK_BIN_DIR:?}
version=${EVK_VERSION:?}
check() { # check NAME PATH [ARGS...]: the options after ARGS
  local name=$1 path=$2 out rc
  shift 2
  for opt in -h --help; do
    rc=0
    out=$("$path" "$@" "$opt" 2>/dev/null) || rc=$?
    [ "$rc" -eq 0 ] || fail "$name $* $opt: exit $rc"
    grep -q "^Usage: $name" <<<"$out" || fail "$name $* $opt: no usage on stdout: $out"
  done
  for opt in -V --version; do
    rc=0
    out=$("$path" "$@" "$opt" 2>/dev/null) || rc=$?
    [ "$rc" -eq 0 ] || fail "$name $* $opt: exit $rc"
    [[ $out == "$name evkit $version (librdkafka "*")" ]] || fail "$name $* $opt: printed: $out"
  done
}

for s in inventory-service payment-service shipping-service order-service \
         notification-service evk-tail; do
  check "$s" "$bin/consumers/$s"
done
check evk-produce "$bin/producers/evk-produce"
check evk-dev-broker "$bin/lib/evk-dev-broker"
check evk-order "$bin/producers/evk-order"
for cmd in place publish generate status; do
  check evk-order "$bin/producers/evk-order" "$cmd"
done
check evk-admin "$bin/lib/evk-admin"
for cmd in "topics plan" "topics check" "topics create" metadata lag "dlq replay"; do
  # shellcheck disable=SC2086 # the command is two words
  check evk-admin "$bin/lib/evk-admin" $cmd
done
echo "test_cli_common: every program answers -h, --help, -V and --version"

# A program run from the build tree finds the schemas without being told
# (the source tree's); a wrong directory is named with the way to fix it.
rc=0
err=$(env -u EVK_SCHEMAS_DIR "$bin/producers/evk-produce" -b 127.0.0.1:1 -t NoSuchType \
  /dev/null 2>&1) || rc=$?
if [ "$rc" -ne 1 ] || ! grep -q 'unknown event type "NoSuchType"' <<<"$err"; then
  fail "evk-produce from the build tree, no EVK_SCHEMAS_DIR: the catalog did not load: $err"
fi
rc=0
err=$(EVK_SCHEMAS_DIR=/nonexistent "$bin/producers/evk-produce" -b 127.0.0.1:1 -t NoSuchType \
  /dev/null 2>&1) || rc=$?
[ "$rc" -eq 2 ] || fail "a missing schemas directory: exit $rc, expected 2"
grep -q "/nonexistent.*EVK_SCHEMAS_DIR or schemas.dir" <<<"$err" ||
  fail "a missing schemas directory: no hint in: $err"
echo "test_cli_common: schemas found from the build tree; a wrong directory says how to fix it"
