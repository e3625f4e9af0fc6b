#!/usr/bin/env bash
# Build a program outside the source tree against the installed evkit, as a
# user does: cmake --install, then cc with pkg-config's flags, then run it.
set -euo pipefail
src=${EVK_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
build=${EVK_BIN_DIR:-$src/build}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

fail() {
  echo "pkgconfig_test: $*" >&2
  exit 1
}

# A staged install, as a package build makes: the paths written into evkit.pc
# and the library name the final location, and pkg-config is told the staging
# root as its sysroot.
stage=$tmp/stage
DESTDIR=$stage cmake --install "$build" >"$tmp/install.log" 2>&1 ||
  fail "cmake --install failed: $(cat "$tmp/install.log")"
pc=$(find "$stage" -path '*/pkgconfig/evkit.pc')
[ -n "$pc" ] || fail "no evkit.pc installed"
export PKG_CONFIG_PATH=${pc%/*} PKG_CONFIG_SYSROOT_DIR=$stage
# pkgconf puts the sysroot in front of variables, pkg-config does not.
datadir=$(pkg-config --variable=datadir evkit)
datadir=${datadir#"$stage"}
libdir=$(pkg-config --variable=libdir evkit)
libdir=$stage${libdir#"$stage"}

# A sanitized libevkit only loads into a program built with the same runtime.
flags=(-std=c11 -Wall -Wextra -Werror)
if ldd "$libdir/libevkit.so" | grep -q libasan; then
  flags+=("-fsanitize=address,undefined")
fi

# Away from the source tree, so that only the installed headers can be found.
mkdir "$tmp/outside"
cp "$src/tests/data/outside/main.c" "$tmp/outside/"
cd "$tmp/outside"
# shellcheck disable=SC2046 # pkg-config prints a list of flags
cc "${flags[@]}" main.c -o outside $(pkg-config --cflags --libs evkit) ||
  fail "cannot build against the installed evkit"
export LD_LIBRARY_PATH=$libdir
ldd ./outside | grep -q "=> $libdir/libevkit.so" || fail "not linked with the installed libevkit"

./outside "$stage$datadir/schemas" >out.txt || fail "outside failed"
diff -u - out.txt <<EOF || fail "unexpected output"
default schemas dir: $datadir/schemas
shop.orders.OrderPlaced, schema id 1: round trip ok
EOF
echo "pkgconfig_test: ok"
