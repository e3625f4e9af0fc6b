#!/usr/bin/env bash
# lib/src's layers (CONTRIBUTING.md): each file uses only its own layer and
# those below it. Read from the objects themselves (nm): a function or table
# a file uses that another file of a higher layer defines is a violation. A
# file without a layer fails too, so that a new one is placed.
# Usage: layers_test.sh OBJECT...   (the evkit_objects target's objects)
set -euo pipefail

declare -A layer=(
  [error]=1 [util]=1 [log]=1 [config]=1
  [catalog]=2 [evolve]=2 [event]=2 [json]=2 [json_stream]=2 [frame]=2 [registry]=2
  [producer]=3 [devbroker]=3 [cli]=3
  [service]=4 [service_txn]=4 [service_settings]=4 [store]=4 [store_disk]=4 [instance]=4
  [metrics]=4 [metrics_http]=4
)
names=([1]=base [2]=schema [3]=kafka [4]=service)

file_of() { # an object's source file name, without .c.o
  local b=${1##*/}
  echo "${b%%.*}"
}

declare -A owner
for o in "$@"; do
  f=$(file_of "$o")
  [ -n "${layer[$f]:-}" ] || { echo "layers_test: lib/src/$f.c has no layer" >&2; exit 1; }
  while read -r sym; do owner[$sym]=$f; done < <(nm --defined-only "$o" | awk '$2 ~ /[TDRB]/ {print $3}')
done

bad=0
for o in "$@"; do
  f=$(file_of "$o")
  while read -r sym; do
    g=${owner[$sym]:-}
    if [ -z "$g" ] || [ "$g" = "$f" ]; then continue; fi
    if [ "${layer[$g]}" -gt "${layer[$f]}" ]; then
      echo "layers_test: $f.c (${names[${layer[$f]}]}) uses $sym of $g.c (${names[${layer[$g]}]})" >&2
      bad=1
    fi
  done < <(nm -u "$o" | awk '{print $2}')
done
[ $bad = 0 ] && echo "layers_test: $# files, none uses a layer above its own"
exit $bad
