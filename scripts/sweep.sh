#!/usr/bin/env bash
# Sweep a grid of config values: one `metarl train` run per point, under one sweep directory.
#
#   scripts/sweep.sh ALGO ENV KEY=V1,V2,... [KEY=V1,V2,...] [-- EXTRA METARL TRAIN ARGS]
#   scripts/sweep.sh maml cartpole-family inner_lr=0.05,0.1,0.2 meta_batch=10,20
#
# Points are the Cartesian product of the lists; point "inner_lr=0.05,meta_batch=10" runs in
# SWEEP_DIR/inner_lr=0.05,meta_batch=10 (SWEEP_DIR defaults to runs/sweep-ALGO-ENV). A point whose run
# finished is skipped; one that was interrupted is resumed from its latest checkpoint; up to JOBS
# points (default 2) run at once. Arguments after `--` go to every run (e.g. --seeds 4), the same each time.
# Each run's output goes to SWEEP_DIR/POINT.log. Then: metarl report SWEEP_DIR; metarl plot SWEEP_DIR -o sweep.png
# Every value is checked (metarl train --dry-run, one check per value of the longest axis) before any point runs.
# Values are split on the commas outside brackets and braces: 'hidden=[32,32],[64,64]' sweeps two widths;
# spaces around a key or a value are dropped.
# Ctrl-C stops the sweep once its running points have saved their latest checkpoint (exit status 130).
set -euo pipefail
if [ $# -lt 3 ]; then
  sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
fi

trimmed() {  # $1 without the spaces and tabs at its ends: 'lr=0.1, 0.2' gives the points lr=0.1 and lr=0.2
  local text=$1
  text=${text#"${text%%[![:space:]]*}"}
  printf '%s' "${text%"${text##*[![:space:]]}"}"
}

algo=$1 env=$2
shift 2
axes=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do
  case "$1" in
    *=*) axes+=("$(trimmed "${1%%=*}")=${1#*=}") ;;  # 'inner_lr =0.1' sweeps inner_lr
    *) echo "error: expected KEY=V1,V2,... but got '$1'" >&2; exit 2 ;;
  esac
  shift
done
[ "${1:-}" = "--" ] && shift
extra=("$@")
[ ${#axes[@]} -gt 0 ] || { echo "error: give at least one KEY=V1,V2,... to sweep" >&2; exit 2; }
sweep_dir=${SWEEP_DIR:-runs/sweep-$algo-$env}
jobs=${JOBS:-2}
metarl=${METARL:-metarl}
case "$jobs" in
  '' | *[!0-9]* | 0) echo "error: JOBS must be a whole number of parallel points, at least 1, got '$jobs'" >&2; exit 2 ;;
esac

run_holding() {  # $1: a path; prints the metarl run that it is or lies inside (nothing where none)
  local dir
  dir=$(realpath -m -- "$1")
  while :; do
    if grep -qs '"tool": "metarl"' "$dir/manifest.json"; then printf '%s' "$dir"; return; fi
    [ "$dir" != / ] || return 0
    dir=$(dirname -- "$dir")
  done
}

[ ! -e "$sweep_dir" ] || [ -d "$sweep_dir" ] || { echo "error: SWEEP_DIR $sweep_dir is a file, not a directory; set SWEEP_DIR to another" >&2; exit 2; }
run=$(run_holding "$sweep_dir")
[ -z "$run" ] || { echo "error: SWEEP_DIR $sweep_dir is or lies inside the run in $run; set SWEEP_DIR to another directory" >&2; exit 2; }

split_items() {  # $1: text; fills `items` with its comma-separated items, commas inside [...] and {...} kept, spaces around each dropped
  local text=$1 item="" depth=0 c i
  items=() balanced=1
  for ((i = 0; i < ${#text}; i++)); do
    c=${text:i:1}
    case "$c" in
      '[' | '{') depth=$((depth + 1)) ;;
      ']' | '}') depth=$((depth - 1)); [ "$depth" -ge 0 ] || balanced=0 ;;
      ,) if [ "$depth" = 0 ]; then items+=("$(trimmed "$item")") item=""; continue; fi ;;
    esac
    item+=$c
  done
  items+=("$(trimmed "$item")")
  [ "$depth" = 0 ] || balanced=0
}

spelled() {  # $1: a value as `metarl train --set` reads it; prints what two spellings of one value share
  local v=$1 x
  case "$v" in
    \[*) case "$v" in *\"* | *\'*) printf 'l:%s' "$v" ;; *) printf 'l:%s' "${v// /}" ;; esac ;;  # spaces inside a quoted string matter
    \"*\" | \'*\') printf 's:%s' "${v:1:${#v}-2}" ;;  # "lvc" is the bare word lvc
    true | false | inf | +inf | -inf | nan | +nan | -nan) printf 'k:%s' "$v" ;;  # TOML's, not strings
    *) if [[ $v =~ ^[+-]?([0-9][0-9_]*\.?[0-9_]*|\.[0-9][0-9_]*)([eE][+-]?[0-9][0-9_]*)?$ ]] \
         && x=$(LC_ALL=C printf '%.17g' "${v//_/}" 2>/dev/null); then
         printf 'n:%s' "$x"  # 0.1 and 0.10, 1e-3 and 0.001, 1_000 and 1000
       else
         printf 's:%s' "$v"
       fi ;;
  esac
}

same_value() {  # $1, $2: two spellings of one value (see `spelled`)
  [ "$(spelled "$1")" = "$(spelled "$2")" ]
}

holds() {  # $1, $2: config keys; whether $1 is $2 or a table holding it (ranges.train holds ranges.train.force_mag)
  [ "$1" = "$2" ] || [ "${2#"$1".}" != "$2" ]
}

swept_beside() {  # $1: a config key; prints the swept key that it is, holds or is held by (nothing where none)
  local swept
  for swept in "${swept_keys[@]}"; do
    if holds "$1" "$swept" || holds "$swept" "$1"; then printf '%s' "$swept"; return; fi
  done
}

# The grid: start from one empty point, multiply by each axis in turn.
points=("")
swept_keys=()
for axis in "${axes[@]}"; do
  key=${axis%%=*} values=${axis#*=}
  [ -n "$key" ] && [ -n "$values" ] || { echo "error: empty key or values in '$axis'" >&2; exit 2; }
  swept=$(swept_beside "$key")
  [ "$swept" != "$key" ] || { echo "error: '$key' is swept twice; give all its values in one $key=V1,V2,..." >&2; exit 2; }
  [ -z "$swept" ] || { echo "error: '$swept' and '$key' are both swept, and one holds the other; sweep one of them" >&2; exit 2; }
  swept_keys+=("$key")
  split_items "$values"
  [ "$balanced" = 1 ] || { echo "error: unbalanced brackets in '$axis'" >&2; exit 2; }
  vals=("${items[@]}")
  for ((i = 0; i < ${#vals[@]}; i++)); do
    [ -n "${vals[i]}" ] || { echo "error: an empty value in '$axis'" >&2; exit 2; }
    for ((j = 0; j < i; j++)); do
      [ "${vals[i]}" != "${vals[j]}" ] || { echo "error: '$key' lists the value '${vals[i]}' twice" >&2; exit 2; }
      ! same_value "${vals[i]}" "${vals[j]}" || { echo "error: '$key' lists one value twice, as '${vals[j]}' and '${vals[i]}'" >&2; exit 2; }
    done
  done
  next=()
  for point in "${points[@]}"; do
    for v in "${vals[@]}"; do next+=("${point:+$point,}$key=$v"); done
  done
  points=("${next[@]}")
done

# The arguments after -- may not set what the sweep sets: each point's family, run directory and mode,
# and the swept keys (a --set of one would override the sweep's value in every point).
# Short options may carry their value (-epoint-nav, -sKEY=V) and follow -q in one word (-qe).
previous=""
for arg in "${extra[@]}"; do
  case "$previous" in -s | --set) arg="--set=$arg" ;; esac
  while case "$arg" in -q?*) true ;; *) false ;; esac; do arg=-${arg#-q}; done
  case "$arg" in
    -e* | --env | --env=* | -o* | --run-dir | --run-dir=* | --resume | --overwrite | --dry-run)
      echo "error: '$arg' after -- is the sweep's own to set (each point's family, run directory and mode); drop it" >&2
      exit 2 ;;
    --set=*=* | -s?*=*)
      key=${arg#--set=} key=${key#-s} key=${key#=} key=$(trimmed "${key%%=*}")  # metarl drops the spaces too
      swept=$(swept_beside "$key")
      [ "$swept" != "$key" ] || { echo "error: '$key' is swept; drop its --set after --" >&2; exit 2; }
      [ -z "$swept" ] || { echo "error: '$key' after -- would set the swept '$swept' (one holds the other) in every point; drop its --set" >&2; exit 2; } ;;
  esac
  previous=$arg
done

# Before any point runs, configs that hold every value of every axis are checked (the algorithm, the
# family, the keys, the values, the arguments after --): the i-th takes each axis's value i (modulo
# its length), so as many checks as the longest axis has values cover them all, and a misspelling or
# a bad value stops the sweep here rather than failing its points.
set_args() {  # $1: a point; fills `sets` with its --set KEY=V arguments
  local pair items
  split_items "$1"
  sets=()
  for pair in "${items[@]}"; do sets+=(--set "$pair"); done
}

longest=0
for axis in "${axes[@]}"; do
  split_items "${axis#*=}"
  [ "${#items[@]}" -gt "$longest" ] && longest=${#items[@]}
done
for ((i = 0; i < longest; i++)); do
  check=""
  for axis in "${axes[@]}"; do
    split_items "${axis#*=}"
    check+="${check:+,}${axis%%=*}=${items[i % ${#items[@]}]}"
  done
  set_args "$check"
  if ! refusal=$("$metarl" train "$algo" --env "$env" "${sets[@]}" "${extra[@]}" --dry-run -q 2>&1 >/dev/null); then
    echo "$refusal" >&2
    echo "error: the sweep's check \`metarl train $(printf '%q ' "$algo" --env "$env" "${sets[@]}" "${extra[@]}")--dry-run\`" \
      "(its ALGO, ENV, point $check and arguments after --) is refused (above); no point was run" >&2
    exit 2
  fi
done

mkdir -p "$sweep_dir"
holds_runs() {  # whether a point of the sweep directory holds a run (its name read as it is, not as a pattern)
  local manifest
  for manifest in "$sweep_dir"/*/manifest.json; do
    [ ! -e "$manifest" ] || return 0
  done
  return 1
}
# A sweep directory holds one algorithm on one family: its points would otherwise be skipped as
# finished. One whose points all failed before making a run (a bad value in every point) may be reused.
swept=$(cat "$sweep_dir/sweep-of" 2>/dev/null || true)
if [ -n "$swept" ] && [ "$swept" != "$algo $env" ] && holds_runs; then
  echo "error: $sweep_dir holds a sweep of $swept, not $algo $env; set SWEEP_DIR to another directory" >&2
  exit 2
fi
echo "$algo $env" >"$sweep_dir/sweep-of"
# Its points share the arguments after --: a finished point would be skipped under others, unchanged.
given=""
for arg in "${extra[@]}"; do given+="${given:+ }$(printf '%q' "$arg")"; done
if [ -f "$sweep_dir/sweep-args" ] && holds_runs; then
  began=$(cat "$sweep_dir/sweep-args")
  if [ "$began" != "$given" ]; then
    echo "error: $sweep_dir's points were started with ${began:+-- }${began:-nothing} after their grid, not ${given:+-- }${given:-nothing};" \
      "give the same, or set SWEEP_DIR to another directory" >&2
    exit 2
  fi
fi
echo "$given" >"$sweep_dir/sweep-args"

point_not_done() {  # $1: the point, $2: its log, $3: metarl's exit status; the log's last line says why
  if [ "$3" = 130 ]; then  # interrupted (Ctrl-C) after saving its latest checkpoint
    echo "stopped $1: $(tail -n 1 "$2")"
  else
    echo "FAILED $1: $(tail -n 1 "$2") (see $2)"
  fi
}

finished() {  # $1: a point's run directory; whether its run finished under the sweep: its sweep-done file holds
  # the checksum of the manifest the run had then, which a run started there since (--overwrite) or resumed rewrites.
  # An empty one, as sweeps wrote before they kept the checksum, still counts.
  [ -f "$1/sweep-done" ] && [ -f "$1/manifest.json" ] || return 1
  [ ! -s "$1/sweep-done" ] || [ "$(cat "$1/sweep-done")" = "$(cksum <"$1/manifest.json")" ]
}

run_point() {  # $1: the point's name; its key=value pairs are comma-separated
  local point=$1 dir="$sweep_dir/$1" log="$sweep_dir/$1.log" sets
  trap : TERM  # a SIGTERM to the sweep's group: the point's metarl saves and stops, and this waits for it
  if finished "$dir"; then
    echo "skip   $point (finished)"
    return 0
  fi
  rm -f "$dir/sweep-done"  # another run's, or one left where the run's files were removed: metarl would not start beside it
  set_args "$point"
  if [ -f "$dir/manifest.json" ]; then
    echo "resume $point"
    "$metarl" train "$algo" --resume -o "$dir" -q >>"$log" 2>&1 || { point_not_done "$point" "$log" "$?"; return 1; }
  else
    echo "start  $point"
    "$metarl" train "$algo" --env "$env" "${sets[@]}" "${extra[@]}" -o "$dir" -q >"$log" 2>&1 \
      || { point_not_done "$point" "$log" "$?"; return 1; }
  fi
  cksum <"$dir/manifest.json" >"$dir/sweep-done"
  echo "done   $point"
}

interrupted=0
# Ctrl-C reaches the running points as well: each saves its latest checkpoint and stops; the sweep
# starts no further point, waits for them, and says how to go on. SIGTERM to the sweep's process
# group does the same for a sweep in the background (where bash makes it ignore Ctrl-C's SIGINT).
# Up to JOBS points run at once, counted as the jobs still running; a point's outcome is read from
# its sweep-done file at the end, not from the statuses `wait -n` returns.
trap 'interrupted=1' INT TERM
for point in "${points[@]}"; do
  while [ "$(jobs -rp | wc -l)" -ge "$jobs" ] && [ "$interrupted" = 0 ]; do
    wait -n || true
  done
  [ "$interrupted" = 1 ] && break
  run_point "$point" &
done
while [ -n "$(jobs -rp)" ] && [ "$interrupted" = 0 ]; do
  wait -n || true
done
if [ "$interrupted" = 1 ]; then
  until wait; do :; done  # a further Ctrl-C interrupts only this wait, not the points' saving
  echo "sweep interrupted: the same command again skips the finished points and resumes the others"
  exit 130
fi
failed=0
for point in "${points[@]}"; do
  finished "$sweep_dir/$point" || failed=$((failed + 1))
done
count="${#points[@]} point"
[ "${#points[@]}" = 1 ] || count+=s
if [ "$failed" -gt 0 ]; then
  echo "sweep of $count in $sweep_dir: $failed failed (above); the same command again retries them"
  exit 1
fi
echo "sweep of $count in $sweep_dir"
