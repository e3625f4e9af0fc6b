# shellcheck shell=bash
# The shell tests' helpers. A test sources it first:
#   . "$(dirname "$0")/../support/lib.sh"

# Failures go to the test's own stderr even where a command's is redirected.
exec 3>&2

# fail MESSAGE...: report, naming the test, and stop it.
fail() {
  echo "${0##*/}: FAIL: $*" >&3
  exit 1
}

# wait_for SECONDS COMMAND...: poll until COMMAND succeeds; 1 if the
# deadline passes first.
wait_for() {
  local deadline=$((SECONDS + $1))
  shift
  until "$@"; do
    ((SECONDS < deadline)) || return 1
    sleep 0.05
  done
}

# expect_rc WANT COMMAND...: run COMMAND, which must exit with WANT.
expect_rc() {
  local want=$1 rc=0
  shift
  "$@" || rc=$?
  [ "$rc" -eq "$want" ] || fail "exit $rc, expected $want: $*"
}
