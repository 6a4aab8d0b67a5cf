#!/usr/bin/env bash
# The whole test suite: a release build and an ASan+UBSan build, each running the doctest
# unit tests and the integration tests (real vsftpd, real clients, loopback only), then a
# short libFuzzer run of every parser from the committed corpora (FUZZ_SECONDS each).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bash "$root/scripts/install-deps.sh"
bash "$root/scripts/build.sh" "$root/build"
bash "$root/scripts/build.sh" "$root/build-asan" -DFTPSGATE_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
status=0
echo "== release build =="
(cd "$root/build" && ctest --output-on-failure) || status=1
echo "== ASan+UBSan build =="
(cd "$root/build-asan" && ctest --output-on-failure) || status=1
echo "== fuzzing (${FUZZ_SECONDS:-60} s per target) =="
bash "$root/scripts/fuzz.sh" "${FUZZ_SECONDS:-60}" || status=1
exit $status
