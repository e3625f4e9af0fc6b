#!/usr/bin/env bash
# libevkit.so exports exactly the functions the public headers declare, each
# marked EVK_EXPORT: hidden visibility keeps the evk__ and svc_ internals in.
# Usage: exports_test.sh LIBEVKIT_SO HEADER...
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../support/lib.sh
. "$(dirname "$0")/../support/lib.sh"
lib=$1
shift
# Names the linker adds (_end, __bss_start) and sanitizer bookkeeping start
# with "_"; evkit's own never do.
exported=$(nm -D --defined-only "$lib" | awk '$2 ~ /^[TDRB]$/ && $3 !~ /^_/ {print $3}' |
  sort -u)
# Every top-level declaration of a function (a line at column 0 naming
# evk_...( that is not a typedef), and those among them marked EVK_EXPORT.
declared=$(grep -hE '^[A-Za-z].*\bevk_[a-z0-9_]+\(' "$@" | grep -v '^typedef' |
  grep -oE '\bevk_[a-z0-9_]+\(' | tr -d '(' | sort -u)
marked=$(grep -hE '^EVK_EXPORT .*\bevk_[a-z0-9_]+\(' "$@" | grep -oE '\bevk_[a-z0-9_]+\(' |
  tr -d '(' | sort -u)

unmarked=$(comm -23 <(echo "$declared") <(echo "$marked"))
[ -z "$unmarked" ] || fail "declared without EVK_EXPORT: $unmarked"
leaked=$(comm -23 <(echo "$exported") <(echo "$declared"))
[ -z "$leaked" ] || fail "exported but not declared in a public header: ${leaked//$'\n'/ }"
missing=$(comm -13 <(echo "$exported") <(echo "$declared"))
[ -z "$missing" ] || fail "declared but not exported: ${missing//$'\n'/ }"
echo "exports_test: $(echo "$exported" | wc -l) functions exported, all declared and marked"
