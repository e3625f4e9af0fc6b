#!/usr/bin/env bash
# lib/src's layers (CONTRIBUTING.md) are its folders, lowest first: base,
# schema, kafka, service. Each file uses only its own layer and those below
# it, checked two ways:
# - includes: a file of lib/src/<layer>/ (or a public header) that includes
#   a header of a higher layer fails; every public header has a layer in
#   the table below, so that a new one is placed;
# - symbols, read from the objects themselves (nm): a function or table a
#   file uses that a file of a higher layer defines fails.
# Usage: layers_test.sh LIB_DIR OBJECT...   (lib/, the evkit_objects objects)
set -euo pipefail

order=(base schema kafka service)
declare -A rank
for i in "${!order[@]}"; do rank[${order[$i]}]=$i; done

declare -A public=(
  [export.h]=base [error.h]=base [config.h]=base [log.h]=base [version.h]=base
  [schema.h]=schema [event.h]=schema [registry.h]=schema
  [producer.h]=kafka [devbroker.h]=kafka [cli.h]=kafka
  [service.h]=service
)

lib=$1
shift
bad=0
fail() {
  echo "layers_test: $*" >&2
  bad=1
}

# The layer of a header named in an #include "...", or nothing for one
# outside the library.
declare -A private
for layer in "${order[@]}"; do
  for h in "$lib/src/$layer"/*.h; do
    [ -e "$h" ] && private[${h##*/}]=$layer
  done
done
header_layer() {
  local name=$1
  case $name in
    evkit/evkit.h) echo umbrella ;;
    evkit/*) echo "${public[${name#evkit/}]:-none}" ;;
    *) echo "${private[$name]:-}" ;;
  esac
}

check_includes() { # file layer
  local file=$1 own=$2 name target
  while read -r name; do
    target=$(header_layer "$name")
    case $target in
      "") ;;
      none) fail "$file includes $name, which has no layer (add it to layers_test.sh)" ;;
      umbrella) fail "$file includes evkit/evkit.h: include the headers it needs" ;;
      *) if [ "${rank[$target]}" -gt "${rank[$own]}" ]; then
           fail "$file ($own) includes $name ($target)"
         fi ;;
    esac
  done < <(sed -n 's/^#include "\([^"]*\)".*/\1/p' "$file")
}

for layer in "${order[@]}"; do
  for f in "$lib/src/$layer"/*.[ch]; do check_includes "$f" "$layer"; done
done
for h in "$lib"/include/evkit/*.h "$lib"/include/evkit/*.h.in; do
  base=${h##*/}
  base=${base%.in}
  [ "$base" = evkit.h ] && continue
  own=${public[$base]:-}
  if [ -z "$own" ]; then
    fail "lib/include/evkit/$base has no layer (add it to layers_test.sh)"
    continue
  fi
  while read -r name; do
    name=${name#evkit/}
    target=${public[$name]:-none}
    if [ "$target" = none ]; then
      fail "$base includes $name, which has no layer"
    elif [ "${rank[$target]}" -gt "${rank[$own]}" ]; then
      fail "$base ($own) includes $name ($target)"
    fi
  done < <(sed -n 's/^#include "\([^"]*\)".*/\1/p' "$h")
done

# An object's layer is its source's folder: .../src/<layer>/<file>.c.o
declare -A owner layer_of
for o in "$@"; do
  f=${o##*/}
  f=${f%%.*}
  d=${o%/*}
  d=${d##*/}
  [ -n "${rank[$d]:-}" ] || { fail "$o is not in a layer's folder"; continue; }
  layer_of[$o]=$d
  while read -r sym; do owner[$sym]="$d/$f"; done \
    < <(nm --defined-only "$o" | awk '$2 ~ /[TDRB]/ {print $3}')
done
for o in "$@"; do
  d=${layer_of[$o]:-}
  [ -n "$d" ] || continue
  f=${o##*/}
  f=${f%%.*}
  while read -r sym; do
    g=${owner[$sym]:-}
    [ -n "$g" ] || continue
    if [ "${rank[${g%%/*}]}" -gt "${rank[$d]}" ]; then
      fail "$d/$f.c uses $sym of $g.c"
    fi
  done < <(nm -u "$o" | awk '{print $2}')
done

[ $bad = 0 ] && echo "layers_test: $# objects and their includes, none uses a layer above its own"
exit $bad
