#!/usr/bin/env bash
# tsan.sh [pytest args...] — ThreadSanitizer build (build-tsan) running the tests where
# threads meet: workers, the shared passive port, reloads. Not part of scripts/test.sh
# (TSan and ASan cannot share a build, and the run is slow); run it after touching
# anything shared between threads.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bash "$root/scripts/build.sh" "$root/build-tsan" -DFTPSGATE_TSAN=ON -DCMAKE_BUILD_TYPE=Debug
export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 suppressions=$root/tests/tsan.supp"
"$root/build-tsan/ftpsgate_io_unit_tests"
cd "$root"
tests=("$@")
if [ ${#tests[@]} -eq 0 ]; then
  tests=(tests/integration/test_workers.py tests/integration/test_shared_port.py
         tests/integration/test_shared_port_ops.py tests/integration/test_reload.py
         tests/integration/test_reload_load.py tests/integration/test_auth_file.py
         tests/integration/test_auth_ldap.py tests/integration/test_bandwidth.py
         tests/integration/test_audit_records.py tests/integration/test_inspection.py)
fi
FTPSGATE_BIN="$root/build-tsan/ftpsgate" FTPSGATE_SOURCE_DIR="$root" \
  /usr/bin/python3 -m pytest -q -x "${tests[@]}"
