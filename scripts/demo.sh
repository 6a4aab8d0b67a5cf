#!/usr/bin/env bash
# demo.sh — ftpsgate on its embedded default configuration, in front of a real plaintext
# vsftpd on 127.0.0.1:21, driven by curl: explicit FTPS upload, implicit FTPS download,
# sha256 check, a refused clear-text login, and the Prometheus metrics.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work=${DEMO_DIR:-/tmp/ftpsgate-demo}
user=ftpsgate-demo pass=demo-pass-1
bash "$root/scripts/install-deps.sh"
bash "$root/scripts/build.sh" "$root/build" >/dev/null

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
wait_port() { for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.1; done; echo "nothing listens on $1" >&2; return 1; }
if (exec 3<>/dev/tcp/127.0.0.1/21) 2>/dev/null; then
  echo "port 127.0.0.1:21 is busy; the embedded default expects the backend FTP server there" >&2; exit 1
fi

rm -rf "$work" && mkdir -p "$work/home" /var/run/vsftpd/empty
id "$user" >/dev/null 2>&1 || useradd -M -d "$work/home" -s /bin/bash "$user"
usermod -d "$work/home" "$user" && echo "$user:$pass" | chpasswd -c SHA512 -s 1000 && chown "$user" "$work/home"
cat > "$work/vsftpd.conf" <<CONF
listen=YES
listen_address=127.0.0.1
listen_port=21
background=NO
anonymous_enable=NO
local_enable=YES
write_enable=YES
pasv_enable=YES
pasv_address=127.0.0.1
pasv_min_port=40000
pasv_max_port=40099
seccomp_sandbox=NO
pam_service_name=vsftpd
CONF
vsftpd "$work/vsftpd.conf" > "$work/vsftpd.out" 2>&1 & pids+=($!)
wait_port 21
echo "== backend: plaintext vsftpd on 127.0.0.1:21"

"$root/build/ftpsgate" 2> "$work/ftpsgate.log" & pids+=($!)
wait_port 2121 && wait_port 2990
echo "== ftpsgate (embedded default): explicit 127.0.0.1:2121, implicit 127.0.0.1:2990"

head -c $((16 * 1024 * 1024)) /dev/urandom > "$work/file.bin"
curl -sS --ssl-reqd -k -u "$user:$pass" -T "$work/file.bin" ftp://127.0.0.1:2121/file.bin
echo "== uploaded 16 MiB over explicit FTPS (AUTH TLS, PROT P)"
curl -sS -k -u "$user:$pass" ftps://127.0.0.1:2990/file.bin -o "$work/back.bin"
echo "== downloaded it again over implicit FTPS"
sha256sum "$work/file.bin" "$work/home/file.bin" "$work/back.bin"
[ "$(sha256sum < "$work/file.bin")" = "$(sha256sum < "$work/back.bin")" ] || { echo "checksum mismatch" >&2; exit 1; }
echo "== listing:"; curl -sS --ssl-reqd -k -u "$user:$pass" ftp://127.0.0.1:2121/
echo "== a login in clear text is refused by tls_required: on:"
curl -sS -u "$user:$pass" ftp://127.0.0.1:2121/ 2>&1 | sed 's/^/   /' || true
echo "== metrics (127.0.0.1:9121/metrics):"
curl -sS http://127.0.0.1:9121/metrics | grep -E '^ftpsgate_(sessions_total|tls_handshakes_total|policy_denials_total|transfer_bytes_total)' | sed 's/^/   /'
echo "== gateway log: $work/ftpsgate.log"
echo "demo OK"
