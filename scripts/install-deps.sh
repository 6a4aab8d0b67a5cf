#!/usr/bin/env bash
# Installs the Debian packages needed to build ftpsgate and run its demo and tests.
set -euo pipefail
packages=(
  build-essential cmake ninja-build pkg-config libcrypt-dev libldap-dev
  libssl-dev libevent-dev libyaml-cpp-dev nlohmann-json3-dev prometheus-cpp-dev doctest-dev
  openssl vsftpd curl lftp gnutls-bin python3 python3-pytest python3-yaml passwd iproute2 procps nftables
  haproxy prometheus nodejs python3-pyftpdlib apache2-utils slapd ldap-utils
  clang libclang-rt-14-dev llvm testssl.sh
  clamav-daemon clamav c-icap libc-icap-mod-virus-scan
)
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
missing=()
for p in "${packages[@]}"; do
  installed "$p" || missing+=("$p")
done
# The scanner tests run their own clamd and c-icap (tests/integration/scanner_servers.py)
# with their own signatures; the system services are never used. Their units, when this
# run installs them, are stopped and disabled below: freshclam would download the ClamAV
# database (hundreds of MB) and c-icap would hold port 1344.
new_units=()
installed clamav-freshclam || new_units+=(clamav-freshclam.service)
installed clamav-daemon || new_units+=(clamav-daemon.socket clamav-daemon.service)
installed c-icap || new_units+=(c-icap.service)
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# Only systemd starts them on install; in a container invoke-rc.d does not (no runlevel,
# or a policy-rc.d that denies it).
if [ ${#new_units[@]} -gt 0 ] && [ -d /run/systemd/system ]; then
  systemctl disable --now "${new_units[@]}" >/dev/null 2>&1 || true
fi
# Debian's nodejs has no npm inside (NodeSource's does); the deploy tests need npm.
if ! command -v npm >/dev/null; then
  apt-get install -y -qq npm >/dev/null
fi
echo "dependencies installed"
