#!/usr/bin/env bash
# Install evkit under a prefix of the user's own, as a user without root
# does (cmake --install --prefix), then:
#   - build a program outside the source tree with pkg-config's flags and run
#     it: it finds the installed headers, library and schemas; and the same
#     program with CMake's find_package(evkit);
#   - run an installed program with no LD_LIBRARY_PATH: its RPATH finds
#     libevkit, and it finds the schemas of its own prefix;
#   - move the whole prefix and do both again: nothing names the old place.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../support/lib.sh
. "$(dirname "$0")/../support/lib.sh"
src=${EVK_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
build=${EVK_BIN_DIR:-$src/build}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
unset EVK_SCHEMAS_DIR EVK_CONFIG LD_LIBRARY_PATH PKG_CONFIG_SYSROOT_DIR

cmake --install "$build" --prefix "$tmp/prefix" >"$tmp/install.log" 2>&1 ||
    fail "cmake --install failed: $(cat "$tmp/install.log")"
mkdir "$tmp/outside" "$tmp/outside-cmake"
cp "$src/tests/data/outside/main.c" "$tmp/outside/"
cp "$src/tests/data/outside/main.c" "$src/tests/data/outside/CMakeLists.txt" "$tmp/outside-cmake/"

# libevkit_of BIN: the libevkit.so.0 that BIN loads, as a real path.
libevkit_of() {
    realpath "$(ldd "$1" | sed -n 's/^\s*libevkit\.so\.0 => \(\S*\).*/\1/p')"
}

# check PREFIX: everything above, for an install that now lives at PREFIX.
check() {
    local prefix=$1 pc libdir flags out sanitize=
    pc=$(find "$prefix" -path '*/pkgconfig/evkit.pc')
    [ -n "$pc" ] || fail "no evkit.pc under $prefix"
    libdir=$(PKG_CONFIG_PATH=${pc%/*} pkg-config --variable=libdir evkit)
    [ "$(realpath "$libdir")" = "$(realpath "$(dirname "${pc%/*}")")" ] ||
        fail "evkit.pc's libdir $libdir is not where it was installed"

    # A sanitized libevkit only loads into a program built with the same runtime.
    flags=(-std=c11 -Wall -Wextra -Werror)
    if ldd "$libdir/libevkit.so" | grep -q libasan; then
        sanitize=-fsanitize=address,undefined
        flags+=("$sanitize")
    fi
    # Away from the source tree, so that only the installed headers can be found.
    (
        cd "$tmp/outside"
        # shellcheck disable=SC2046 # pkg-config prints a list of flags
        cc "${flags[@]}" main.c -o outside $(PKG_CONFIG_PATH=${pc%/*} pkg-config --cflags --libs evkit)
    ) || fail "cannot build against the evkit installed at $prefix"
    libdir=$(realpath "$libdir")
    [ "$(LD_LIBRARY_PATH=$libdir libevkit_of "$tmp/outside/outside")" = "$(realpath "$libdir/libevkit.so.0")" ] ||
        fail "not linked with the libevkit at $libdir"
    # The library's default schemas are those of the prefix it was loaded from.
    out=$(LD_LIBRARY_PATH=$libdir "$tmp/outside/outside" "$prefix/share/evkit/schemas") ||
        fail "outside failed: $out"
    diff -u - <(echo "$out") <<EOF || fail "unexpected output"
default schemas dir: $(realpath "$prefix/share/evkit/schemas")
shop.orders.OrderPlaced, schema id 1: round trip ok
EOF

    # The same program from CMake's package: evkit::evkit, run where the
    # build's RPATH finds the library.
    rm -rf "$tmp/outside-cmake/build"
    if ! cmake -S "$tmp/outside-cmake" -B "$tmp/outside-cmake/build" -DCMAKE_PREFIX_PATH="$prefix" \
        -DCMAKE_C_FLAGS="$sanitize" >"$tmp/cmake.log" 2>&1 ||
        ! cmake --build "$tmp/outside-cmake/build" >>"$tmp/cmake.log" 2>&1; then
        fail "find_package(evkit) under $prefix: $(tail -20 "$tmp/cmake.log")"
    fi
    [ "$(libevkit_of "$tmp/outside-cmake/build/outside")" = "$(realpath "$libdir/libevkit.so.0")" ] ||
        fail "the CMake-built program does not load the libevkit at $libdir"
    out=$("$tmp/outside-cmake/build/outside" "$prefix/share/evkit/schemas") ||
        fail "the CMake-built program failed: $out"
    grep -q "round trip ok" <<<"$out" || fail "the CMake-built program: $out"

    # An installed program: RPATH, then its own prefix's catalog (an unknown
    # type is only known to be unknown once the catalog has loaded).
    [ "$(libevkit_of "$prefix/bin/evk-produce")" = "$(realpath "$libdir/libevkit.so.0")" ] ||
        fail "installed evk-produce does not find $libdir/libevkit.so: $(ldd "$prefix/bin/evk-produce")"
    "$prefix/bin/evk-produce" --version >/dev/null || fail "installed evk-produce --version failed"
    out=$("$prefix/bin/evk-produce" -b 127.0.0.1:1 -t NoSuchType </dev/null 2>&1) && fail "NoSuchType accepted"
    grep -q 'unknown event type "NoSuchType"' <<<"$out" ||
        fail "installed evk-produce did not load its prefix's catalog: $out"
}

check "$tmp/prefix"
mv "$tmp/prefix" "$tmp/moved"
check "$tmp/moved"
echo "pkgconfig_test: ok"
