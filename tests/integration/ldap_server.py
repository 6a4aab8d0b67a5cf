"""A real OpenLDAP slapd on loopback for the `ldap` provider's tests (issue 14).

Debian's slapd runs in the foreground (`-d`, so the Popen pid is slapd itself) from a
slapd.conf-style file in a directory the test owns: its own mdb database, a test CA and
a server certificate for 127.0.0.1 and localhost, plain LDAP (with StartTLS) and LDAPS
listeners on ports from harness.PORTS. Nothing of the system slapd (/etc/ldap/slapd.d,
/var/lib/ldap, its init script) is read or touched.

    server = LdapServer(tmp_path / "ldap")
    server.start()
    ... server.url_ldap, server.url_ldaps, server.ca_file, server.users["alice"] ...
    server.stop()

Directory (suffix dc=example,dc=org):
    ou=people   inetOrgPerson + posixAccount: alice, bob, carol, dave, "o'neil,x";
                "twin" twice (uid=twin and uid=twin,ou=contractors) for the ambiguous case
    ou=groups   groupOfNames finance (alice), ops (bob, carol);
                posixGroup staff (memberUid dave)
    cn=ftpsgate the service account: reads people and groups, never passwords
ACLs: anyone may bind (auth) against userPassword; the service account reads people and
groups; bound users read groups and their own entry; anonymous users can search nothing.
"""
from __future__ import annotations

import base64
import hashlib
import os
import shutil
import signal
import socket
import subprocess
from pathlib import Path

from harness import Daemon, HarnessError, PORTS, run, tail_file, wait_until

SLAPD = "/usr/sbin/slapd"
SLAPADD = "/usr/sbin/slapadd"
SCHEMA_DIR = Path("/etc/ldap/schema")
MODULE_DIR = Path("/usr/lib/ldap")

BASE = "dc=example,dc=org"
PEOPLE = f"ou=people,{BASE}"
GROUPS = f"ou=groups,{BASE}"
ROOT_DN = f"cn=admin,{BASE}"
SERVICE_DN = f"cn=ftpsgate,{BASE}"

# uid -> password. Passwords differ from each other and from the names.
USERS = {
    "alice": "alice-Pw-7731",
    "bob": "bob-Pw-5521",
    "carol": "carol-Pw-9012",
    "dave": "dave-Pw-3307",
    "o'neil,x": "oneil-Pw-4410",
}
# Two entries share this uid: a search for it is ambiguous.
TWIN_USER, TWIN_PASSWORD = "twin", "twin-Pw-6060"


def user_dn(uid: str) -> str:
    """The DN of a user in ou=people (RFC 4514 escaping of the few characters the test
    names use)."""
    escaped = "".join("\\" + c if c in ',+"\\<>;=' else c for c in uid)
    return f"uid={escaped},{PEOPLE}"


def ssha(password: str) -> str:
    """{SSHA} as slappasswd writes it: base64(sha1(password + salt) + salt)."""
    salt = os.urandom(8)
    digest = hashlib.sha1(password.encode() + salt).digest()
    return "{SSHA}" + base64.b64encode(digest + salt).decode()


def _ldif_value(value: str) -> str:
    """An LDIF attribute value: base64 (`attr:: ...`) unless it is plain ASCII safe."""
    safe = value and value.isascii() and value.isprintable() and value[0] not in " :<" \
        and not value.endswith(" ")
    return f" {value}" if safe else f": {base64.b64encode(value.encode()).decode()}"


def _entry(dn: str, attributes: list[tuple[str, str]]) -> str:
    lines = [f"dn:{_ldif_value(dn)}"]
    lines += [f"{name}:{_ldif_value(value)}" for name, value in attributes]
    return "\n".join(lines) + "\n"


def _person(dn: str, uid: str, password: str, number: int) -> str:
    return _entry(dn, [
        ("objectClass", "inetOrgPerson"), ("objectClass", "posixAccount"),
        ("uid", uid), ("cn", uid), ("sn", uid), ("mail", f"user{number}@example.org"),
        ("uidNumber", str(10000 + number)), ("gidNumber", "10000"),
        ("homeDirectory", f"/home/user{number}"), ("userPassword", ssha(password)),
    ])


def directory_ldif(service_password: str) -> str:
    entries = [
        _entry(BASE, [("objectClass", "dcObject"), ("objectClass", "organization"),
                      ("dc", "example"), ("o", "Example")]),
        _entry(PEOPLE, [("objectClass", "organizationalUnit"), ("ou", "people")]),
        _entry(f"ou=contractors,{PEOPLE}", [("objectClass", "organizationalUnit"), ("ou", "contractors")]),
        _entry(GROUPS, [("objectClass", "organizationalUnit"), ("ou", "groups")]),
        _entry(SERVICE_DN, [("objectClass", "applicationProcess"), ("objectClass", "simpleSecurityObject"),
                            ("cn", "ftpsgate"), ("userPassword", ssha(service_password))]),
    ]
    for number, (uid, password) in enumerate(USERS.items(), start=1):
        entries.append(_person(user_dn(uid), uid, password, number))
    entries.append(_person(user_dn(TWIN_USER), TWIN_USER, TWIN_PASSWORD, 90))
    entries.append(_person(f"uid={TWIN_USER},ou=contractors,{PEOPLE}", TWIN_USER, TWIN_PASSWORD, 91))
    entries.append(_entry(f"cn=finance,{GROUPS}", [("objectClass", "groupOfNames"), ("cn", "finance"),
                                                  ("member", user_dn("alice"))]))
    entries.append(_entry(f"cn=ops,{GROUPS}", [("objectClass", "groupOfNames"), ("cn", "ops"),
                                              ("member", user_dn("bob")), ("member", user_dn("carol"))]))
    entries.append(_entry(f"cn=staff,{GROUPS}", [("objectClass", "posixGroup"), ("cn", "staff"),
                                                ("gidNumber", "10000"), ("memberUid", "dave")]))
    return "\n".join(entries)


def make_ca(directory: Path, name: str) -> tuple[Path, Path]:
    """A self-signed CA certificate and its key (P-256)."""
    cert, key = directory / f"{name}.pem", directory / f"{name}.key"
    run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-days", "30", "-subj", f"/CN=ftpsgate test {name}",
         "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign",
         "-keyout", str(key), "-out", str(cert)], timeout=30, check=True)
    key.chmod(0o600)
    return cert, key


def make_server_cert(directory: Path, ca_cert: Path, ca_key: Path) -> tuple[Path, Path]:
    """A server certificate for 127.0.0.1 (IP SAN) and localhost, signed by the CA.

    libldap checks ldap(s)://localhost against this machine's host name instead (it
    substitutes it for "localhost"), so that name is in the certificate too."""
    cert, key, csr = directory / "server.pem", directory / "server.key", directory / "server.csr"
    ext = directory / "server.ext"
    run(["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-subj", "/CN=localhost", "-keyout", str(key), "-out", str(csr)], timeout=30, check=True)
    ext.write_text("basicConstraints=critical,CA:FALSE\n"
                   "keyUsage=critical,digitalSignature\n"
                   "extendedKeyUsage=serverAuth\n"
                   f"subjectAltName=DNS:localhost,DNS:{socket.gethostname()},IP:127.0.0.1\n")
    run(["openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca_cert), "-CAkey", str(ca_key),
         "-CAcreateserial", "-days", "30", "-sha256", "-extfile", str(ext), "-out", str(cert)],
        timeout=30, check=True)
    key.chmod(0o600)
    return cert, key


class LdapServer(Daemon):
    """One slapd owned by the test: start(), stop(), kill(), restart() (same ports, same data)."""

    host = "127.0.0.1"
    start_timeout = 15.0
    stop_timeout = 10.0

    def __init__(self, workdir: Path, debug_level: str = "stats"):
        """debug_level goes to `slapd -d` (it also keeps slapd in the foreground); "stats"
        logs one line per connection and operation to slapd.log."""
        for tool in (SLAPD, SLAPADD):
            if not Path(tool).exists():
                raise HarnessError(f"{tool} missing: install the Debian slapd package")
        if not shutil.which("ldapwhoami"):
            raise HarnessError("ldapwhoami missing: install the Debian ldap-utils package")
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.debug_level = debug_level
        self.port = PORTS.port()
        self.tls_port = PORTS.port()
        self.url_ldap = f"ldap://{self.host}:{self.port}"
        self.url_ldaps = f"ldaps://{self.host}:{self.tls_port}"
        self.base = BASE
        self.people = PEOPLE
        self.groups = GROUPS
        self.root_dn = ROOT_DN
        self.root_password = "root-Pw-" + os.urandom(6).hex()
        self.service_dn = SERVICE_DN
        self.service_password = "svc-Pw-" + os.urandom(6).hex()
        self.users = dict(USERS)
        self.twin_user, self.twin_password = TWIN_USER, TWIN_PASSWORD
        self.conf = workdir / "slapd.conf"
        self.db = workdir / "db"
        self.log = workdir / "slapd.log"
        self.ca_file: Path | None = None        # the CA that signed the server certificate
        self.other_ca_file: Path | None = None  # an unrelated CA (verification must fail)
        self.proc: subprocess.Popen | None = None
        self._prepared = False

    # -- lifecycle
    def start(self) -> "LdapServer":
        if self.proc is not None and self.proc.poll() is None:
            raise HarnessError("slapd is already running")
        if not self._prepared:
            self._prepare()
        log = open(self.log, "ab")
        try:
            self.proc = subprocess.Popen(
                [SLAPD, "-f", str(self.conf), "-h", f"{self.url_ldap}/ {self.url_ldaps}/",
                 "-d", self.debug_level],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        finally:
            log.close()
        wait_until(self._ready, self.start_timeout, f"slapd on {self.url_ldap} and {self.url_ldaps}",
                   interval=0.1, context=lambda: tail_file(self.log))
        return self

    # -- helpers for tests
    def user_dn(self, uid: str) -> str:
        return user_dn(uid)

    def tls_env(self, ca_file: Path | None = None) -> dict:
        """Environment for ldap-utils verifying the server against `ca_file` (default: ours)."""
        env = dict(os.environ)
        env["LDAPTLS_CACERT"] = str(ca_file or self.ca_file)
        env["LDAPTLS_REQCERT"] = "demand"
        return env

    def whoami(self, url: str, dn: str, password: str, start_tls: bool = False,
               ca_file: Path | None = None, timeout: float = 10.0) -> subprocess.CompletedProcess:
        cmd = ["ldapwhoami", "-x", "-H", url, "-D", dn, "-w", password, "-o", "nettimeout=5"]
        if start_tls:
            cmd.append("-ZZ")
        return run(cmd, timeout=timeout, env=self.tls_env(ca_file))

    def search(self, base: str, filter: str, *attributes: str, dn: str | None = None,
               password: str | None = None, url: str | None = None) -> subprocess.CompletedProcess:
        """ldapsearch as `dn` (default: the service account; dn="" searches anonymously)."""
        dn = self.service_dn if dn is None else dn
        cmd = ["ldapsearch", "-x", "-LLL", "-H", url or self.url_ldap, "-b", base, "-o", "nettimeout=5"]
        if dn:
            cmd += ["-D", dn, "-w", self.service_password if password is None else password]
        return run([*cmd, filter, *attributes], timeout=15, env=self.tls_env())

    # -- setup
    def _prepare(self) -> None:
        ca_cert, ca_key = make_ca(self.workdir, "ca")
        other_ca, _ = make_ca(self.workdir, "other-ca")
        server_cert, server_key = make_server_cert(self.workdir, ca_cert, ca_key)
        self.ca_file, self.other_ca_file = ca_cert, other_ca
        self.db.mkdir(exist_ok=True)
        self.conf.write_text(self._config(server_cert, server_key))
        ldif = self.workdir / "directory.ldif"
        ldif.write_text(directory_ldif(self.service_password))
        # Offline load (slapd not running yet): no ldapadd round trips, no ACL in the way.
        run([SLAPADD, "-f", str(self.conf), "-l", str(ldif)], timeout=60, check=True)
        self._prepared = True

    def _config(self, server_cert: Path, server_key: Path) -> str:
        schemas = "\n".join(f"include {SCHEMA_DIR / name}.schema"
                            for name in ("core", "cosine", "inetorgperson", "nis"))
        service = f'dn.exact="{SERVICE_DN}"'
        return f"""\
{schemas}
modulepath {MODULE_DIR}
moduleload back_mdb
pidfile {self.workdir / 'slapd.pid'}
argsfile {self.workdir / 'slapd.args'}
TLSCACertificateFile {self.ca_file}
TLSCertificateFile {server_cert}
TLSCertificateKeyFile {server_key}
# A test must see the same answer every time; no limit gets in the way of 256+ groups.
sizelimit unlimited

database mdb
maxsize 67108864
suffix "{BASE}"
rootdn "{ROOT_DN}"
rootpw {ssha(self.root_password)}
directory {self.db}

# Passwords: compared at bind (auth), changed by their owner, read by nobody.
access to attrs=userPassword
  by anonymous auth
  by self =wx
  by * none
access to dn.subtree="{PEOPLE}"
  by {service} read
  by self read
  by * none
access to dn.subtree="{GROUPS}"
  by {service} read
  by users read
  by * none
access to *
  by {service} read
  by * none
"""

    def _ready(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise HarnessError(f"slapd exited with {self.proc.returncode}: {tail_file(self.log)}")
        for url in (self.url_ldap, self.url_ldaps):
            if self.whoami(url, self.service_dn, self.service_password).returncode != 0:
                return False
        return True

