#!/usr/bin/env bash
# Installs the Debian packages needed to build ftpsgate and run its demo and tests.
set -euo pipefail
packages=(
  build-essential cmake ninja-build pkg-config libcrypt-dev libldap-dev
  libssl-dev libevent-dev libyaml-cpp-dev nlohmann-json3-dev prometheus-cpp-dev doctest-dev
  openssl vsftpd curl lftp gnutls-bin python3 python3-pytest python3-yaml passwd iproute2 procps nftables
  haproxy prometheus nodejs python3-pyftpdlib apache2-utils slapd ldap-utils
  clang libclang-rt-14-dev llvm testssl.sh
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# Debian's nodejs has no npm inside (NodeSource's does); the deploy tests need npm.
if ! command -v npm >/dev/null; then
  apt-get install -y -qq npm >/dev/null
fi
echo "dependencies installed"
