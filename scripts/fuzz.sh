#!/usr/bin/env bash
# fuzz.sh [SECONDS] — build the libFuzzer targets (fuzz/*_fuzzer.cpp) with clang in
# build-fuzz/ and run each for SECONDS (default 60) from a copy of its seed corpus
# (fuzz/corpus/<name>/), FUZZ_JOBS (default: number of cores) at a time. Reproducers kept
# in fuzz/crashes/<name>/ are replayed first. Exits non-zero if any target crashed, leaked,
# timed out, ran out of memory or still fails on a kept reproducer; prints one summary line
# per target. See fuzz/README.md for long runs.
#
# Environment: FUZZ_JOBS, FUZZ_TARGETS ("reply proxy_header"), FUZZ_BUILD_DIR.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
seconds=${1:-60}
[[ $seconds =~ ^[1-9][0-9]*$ ]] || { echo "usage: $0 [SECONDS]" >&2; exit 2; }
build=${FUZZ_BUILD_DIR:-$root/build-fuzz}
jobs=${FUZZ_JOBS:-$(nproc)}
read -r -a targets <<<"${FUZZ_TARGETS:-command line_reader reply address_codec feat proxy_header config config_values identity rules inspection agent_protocol}"

for tool in clang clang++; do
  command -v "$tool" >/dev/null || { echo "fuzz.sh: $tool not found (apt-get install clang libclang-rt-14-dev)" >&2; exit 2; }
done

start=$(date +%s)
mkdir -p "$build"
if ! { CC=clang CXX=clang++ cmake -S "$root" -B "$build" -G Ninja -DFTPSGATE_FUZZ=ON \
         -DCMAKE_BUILD_TYPE=RelWithDebInfo &&
       cmake --build "$build" -j "$(nproc)" --target "${targets[@]/%/_fuzzer}"; } >"$build/fuzz-build.log" 2>&1; then
  tail -n 60 "$build/fuzz-build.log"
  echo "fuzz.sh: build failed (full log: $build/fuzz-build.log)" >&2
  exit 1
fi
echo "fuzz.sh: built ${#targets[@]} targets in $(($(date +%s) - start))s; running each for ${seconds}s, $jobs at a time"

run=$build/fuzz-run
rm -rf "$run"
mkdir -p "$run"
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1:symbolize=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

# One target: replay kept reproducers, then fuzz. Writes $run/<name>.status and .log.
fuzz_one() {
  local name=$1 binary=$build/${1}_fuzzer
  local corpus=$run/corpus/$name artifacts=$run/artifacts/$name log=$run/$name.log
  mkdir -p "$corpus" "$artifacts"
  cp -r "$root/fuzz/corpus/$name/." "$corpus/" 2>/dev/null || true
  local reproducer replay_failed=0
  for reproducer in "$root/fuzz/crashes/$name"/*; do
    [[ -f $reproducer ]] || continue
    if ! timeout 60 "$binary" -timeout=10 -rss_limit_mb=2048 "$reproducer" >"$run/$name.replay.log" 2>&1; then
      echo "$reproducer" >>"$run/$name.replay"
      grep -E 'invariant|ERROR|threw|SUMMARY' "$run/$name.replay.log" | head -n 3 | sed 's/^/    /' >>"$run/$name.replay"
      replay_failed=1
    fi
  done
  if ((replay_failed)); then
    echo "replay" >"$run/$name.status"
    return
  fi
  local dict=()
  [[ -f $root/fuzz/$name.dict ]] && dict=(-dict="$root/fuzz/$name.dict")
  local rc=0
  # libFuzzer stops itself at max_total_time; the outer timeout only guards against a hang.
  timeout $((seconds + 120)) "$binary" "${dict[@]}" -max_total_time="$seconds" -timeout=10 \
    -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$artifacts/" "$corpus" >"$log" 2>&1 || rc=$?
  echo "$rc" >"$run/$name.status"
}

running=0
for name in "${targets[@]}"; do
  [[ -x $build/${name}_fuzzer ]] || { echo "fuzz.sh: no target $name" >&2; exit 2; }
  fuzz_one "$name" &
  running=$((running + 1))
  if ((running >= jobs)); then
    wait -n || true
    running=$((running - 1))
  fi
done
wait

failed=0
for name in "${targets[@]}"; do
  status=$(cat "$run/$name.status" 2>/dev/null || echo missing)
  log=$run/$name.log
  if [[ $status == replay ]]; then
    printf '%-14s FAIL  kept reproducers still fail (not fuzzed until they pass):\n' "$name"
    sed "s|^$root/|  |" "$run/$name.replay"
    failed=1
    continue
  fi
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  # The last status line: "#N  DONE  cov: C ft: F corp: K/Sb ...".
  last=$(grep -E '^#[0-9]+' "$log" | tail -n 1 || true)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
  corp=$(sed -n 's/.* corp: \([0-9]*\)\/.*/\1/p' <<<"$last")
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
  if [[ $status == 0 ]]; then
    printf '%-14s ok    execs %-10s exec/s %-7s cov %-5s ft %-6s corpus %s\n' \
      "$name" "${execs:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}"
  else
    artifact=$(ls -t "$run/artifacts/$name" 2>/dev/null | head -n 1)
    printf '%-14s FAIL  exit %s after %s execs; reproducer: %s\n' "$name" "$status" "${execs:-?}" \
      "${artifact:+$run/artifacts/$name/$artifact}"
    # The sanitizer or invariant report, without libFuzzer's progress lines.
    grep -vE '^#[0-9]+|^INFO:|^MS:|^Base64:|^stat::|NEW_FUNC|^Dictionary:|^Loaded|^\s*$' "$log" | head -n 40
    failed=1
  fi
done
echo "fuzz.sh: ${#targets[@]} targets, $(($(date +%s) - start))s in total; logs and corpora in $run"
if ((failed)); then
  echo "fuzz.sh: FAILED — reproduce with: $build/<name>_fuzzer <reproducer>; keep it in fuzz/crashes/<name>/" >&2
  exit 1
fi
