#!/usr/bin/env bash
# Interleaved A/B of `mlinv ingest` on one file: DuckDB's read_json, then each variant, N rounds.
# On a machine whose speed drifts by up to 2x within minutes, only such interleaved runs compare.
#
#   bench/ingest_ab.sh FILE ROUNDS LABEL=SPEC...
#
# SPEC is either a git commit (checked out in a temporary worktree and run from it) or
# `env:VAR=VALUE ...` (the working tree with those environment variables). Examples:
#
#   bench/ingest_ab.sh /tmp/m1.jsonl 3 before=fe9bff5 now=env:
#   bench/ingest_ab.sh /tmp/m1.jsonl 3 u256=env:MLINV_UNIT_BYTES=268435456 u512=env:
#
# Prints, per label, the wall and CPU (user) seconds of each round and the last peak RSS (KB).
set -euo pipefail
file=$1 rounds=$2
shift 2
here=$(cd "$(dirname "$0")/.." && pwd)
mlinv=$(python -c 'import shutil, sys; print(shutil.which("mlinv") or sys.exit("mlinv not installed"))')
work=$(mktemp -d)
trap 'for w in "$work"/wt-*; do [ -d "$w" ] && git -C "$here" worktree remove --force "$w"; done; rm -rf "$work"' EXIT

declare -A envs
for spec in "$@"; do
  label=${spec%%=*} value=${spec#*=}
  if [[ $value == env:* ]]; then
    envs[$label]=${value#env:}
  else
    git -C "$here" worktree add -q --detach "$work/wt-$label" "$value"
    envs[$label]="PYTHONPATH=$work/wt-$label"
  fi
done

for round in $(seq "$rounds"); do
  rm -f "$work"/db.duckdb*
  /usr/bin/time -f "duckdb %e %U %M" python "$here/bench/duckdb_read_json.py" "$file" \
    --db "$work/db.duckdb" > /dev/null
  for spec in "$@"; do
    label=${spec%%=*}
    rm -f "$work"/db.duckdb*
    # shellcheck disable=SC2086  # the variables are words on purpose
    /usr/bin/time -f "$label %e %U %M" env ${envs[$label]} "$mlinv" ingest "$file" \
      --db "$work/db.duckdb" --quiet
  done
done 2>&1 | awk '$2 ~ /^[0-9.]+$/ {w[$1] = w[$1] " " $2; u[$1] = u[$1] " " $3; m[$1] = $4}
  END {for (k in w) printf "%-10s wall:%s   user:%s   rss: %s KB\n", k, w[k], u[k], m[k]}'
