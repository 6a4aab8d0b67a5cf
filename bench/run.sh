#!/usr/bin/env bash
# bench/run.sh [--quick] — side-by-side benchmarks of ftpsgate against the reference peers
# (vsftpd plain, vsftpd TLS, ProFTPD mod_proxy), all on loopback. Run as root.
#
#   bash bench/run.sh            full run (1 GiB transfers, 15 s session rate, 10,000 idle sessions)
#   bash bench/run.sh --quick    smoke run (64 MiB, 5 s, 1,000 idle sessions)
#
# Environment:
#   FTPSGATE_BIN   gateway binary to measure (default: build this checkout in Release
#                  into $BENCH_BUILD, default /tmp/ftpsgate-bench-build)
#   BENCH_ROOT     work directory for configs, logs, pid files (default /tmp/ftpsgate-bench)
#   PEERS_ROOT     where the peers live; the FTP home is inside, so keep it on tmpfs
#                  (default /dev/shm/ftpsgate-bench-peers)
#   BENCH_ARGS     extra arguments for bench.py (see `python3 bench/bench.py --help`)
# Writes bench/results/<timestamp>[-quick].md (+ .json) and updates bench/RESULTS.md.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
peers=${PEERS_DIR:-$(cd "$root/.." && pwd)/shared/peers}
[ -d "$peers" ] || peers=/work/shared/peers
export BENCH_ROOT=${BENCH_ROOT:-/tmp/ftpsgate-bench}
export PEERS_ROOT=${PEERS_ROOT:-/dev/shm/ftpsgate-bench-peers}
# A user of our own: common.sh moves the peer user's home to $PEERS_ROOT/home, which
# must not disturb tests that use the default "ftpuser" at the same time.
export PEER_USER=${PEER_USER:-ftpbench} PEER_PASS=${PEER_PASS:-ftpbench}
mkdir -p "$BENCH_ROOT" "$PEERS_ROOT"

[ "$(id -u)" = 0 ] || { echo "run as root (installs packages, creates the FTP account $PEER_USER)" >&2; exit 1; }

# ---- packages --------------------------------------------------------------------------
# vsftpd and proftpd-core conflict (both provide ftp-server): neither is installed here by
# package. vsftpd is taken from PATH or unpacked by the peers' common.sh; ProFTPD is
# taken from PATH or unpacked below; only their (non-conflicting) libraries are installed.
packages=(curl openssl python3 procps iproute2 passwd g++ libevent-dev libssl-dev
  libwrap0 libpam-modules
  libhiredis0.14 libmemcached11 libmemcachedutil2 libpcre2-posix3 libsodium23 libsqlite3-0)
[ -n "${FTPSGATE_BIN:-}" ] || packages+=(build-essential cmake ninja-build pkg-config git
  libssl-dev libevent-dev libyaml-cpp-dev nlohmann-json3-dev prometheus-cpp-dev doctest-dev)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  timeout 600 apt-get update -qq
  timeout 1200 apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# perf (for the handshake share of CPU) is optional
if ! perf --version >/dev/null 2>&1; then
  DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -qq linux-perf >/dev/null 2>&1 \
    || echo "perf not available: the handshake share will be estimated from openssl speed" >&2
fi

# ProFTPD + mod_tls + mod_proxy without installing proftpd-core (it would remove vsftpd).
if ! command -v proftpd >/dev/null 2>&1; then
  x="$BENCH_ROOT/proftpd-debx"
  if [ ! -x "$x/usr/sbin/proftpd" ] || [ ! -f "$x/usr/lib/proftpd/mod_proxy.so" ]; then
    mkdir -p "$x/dl"
    (cd "$x/dl" && timeout 600 apt-get download proftpd-core proftpd-mod-crypto proftpd-mod-proxy >/dev/null 2>&1) \
      || { echo "cannot download the proftpd packages" >&2; exit 1; }
    for deb in "$x"/dl/*.deb; do dpkg-deb -x "$deb" "$x"; done
  fi
  mkdir -p "$BENCH_ROOT/bin"
  # start-proftpd-proxy.sh runs `proftpd -n -c CONF`; the unpacked modules are not in the
  # compiled-in module directory, so this wrapper puts a ModulePath line first.
  cat > "$BENCH_ROOT/bin/proftpd" <<EOF
#!/bin/bash
args=(); conf=
while [ \$# -gt 0 ]; do case \$1 in -c) conf=\$2; shift 2;; *) args+=("\$1"); shift;; esac; done
[ -n "\$conf" ] || exec "$x/usr/sbin/proftpd" "\${args[@]}"
{ echo "ModulePath $x/usr/lib/proftpd"; cat "\$conf"; } > "\$conf.mp"
exec "$x/usr/sbin/proftpd" "\${args[@]}" -c "\$conf.mp"
EOF
  chmod +x "$BENCH_ROOT/bin/proftpd"
  export PATH="$BENCH_ROOT/bin:$PATH"
fi

# ---- the gateway -----------------------------------------------------------------------
if [ -z "${FTPSGATE_BIN:-}" ]; then
  build=${BENCH_BUILD:-/tmp/ftpsgate-bench-build}
  echo "building ftpsgate (Release) in $build"
  timeout 1800 cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
  timeout 1800 cmake --build "$build" -j "$(nproc)" --target ftpsgate >/dev/null
  FTPSGATE_BIN=$build/ftpsgate
  export FTPSGATE_COMMIT; FTPSGATE_COMMIT=$(git -C "$root" describe --always --dirty 2>/dev/null || echo unknown)
fi
export FTPSGATE_BIN

# ---- the load driver (C++; bench.py falls back to bench/loadgen.py without it) --------
if timeout 300 g++ -O2 -std=c++17 -o "$BENCH_ROOT/loadgen" "$here/loadgen.cpp" \
     -levent -levent_openssl -lssl -lcrypto; then
  export LOADGEN_BIN="$BENCH_ROOT/loadgen"
else
  echo "bench/loadgen.cpp did not build: using the Python driver bench/loadgen.py" >&2
fi

# ---- run -------------------------------------------------------------------------------
# 10,000 idle sessions need ~20,000 descriptors in the gateway (client + backend side).
# Where the hard limit is lower and cannot be raised (no CAP_SYS_RESOURCE, e.g. in a
# sandbox), take the hard limit; bench.py then holds as many sessions as it allows and says so.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
echo "open files limit: $(ulimit -n)"
cleanup() {
  bash "$peers/stop-all.sh" >/dev/null 2>&1 || true
  for f in "$BENCH_ROOT"/*.pid; do
    [ -f "$f" ] || continue
    kill "$(cat "$f")" 2>/dev/null || true; rm -f "$f"
  done
}
trap cleanup EXIT
# shellcheck disable=SC2086
timeout --kill-after=30 5400 python3 "$here/bench.py" --peers "$peers" --out "$here" ${BENCH_ARGS:-} "$@"
