"""Every tls_required value x (plain login, AUTH then login, PROT C, PROT P, CCC) with a
raw control socket (ProFTPD mod_tls TLSRequired semantics, SPEC §2/§3).

One gateway per tls_required value; each test collects the whole row and compares it
with the expected row, so a failure shows every cell that differs.
"""
from __future__ import annotations

import ssl

import pytest

import harness
from harness import TEST_PASS, TEST_USER, Ctrl, klass

pytestmark = pytest.mark.control

COLUMNS = (
    "plain_login",          # USER/PASS without AUTH: 550 refused, or 230
    "ccc_in_clear",         # CCC on a fresh clear control connection
    "ccc_after_plain_login",  # CCC after a clear login (None: the clear login is refused)
    "ccc_before_login",     # AUTH TLS, then CCC before USER
    "tls_login",            # AUTH TLS, USER/PASS
    "prot_c",               # PBSZ 0; PROT C after the TLS login
    "prot_p",               # PROT P after the TLS login
    "ccc",                  # CCC after the TLS login
)

# The expected table, written out (not computed).
EXPECTED = {
    #              plain  ccc_clr ccc_plain ccc_pre tls   PROT C PROT P CCC
    "on":         (550,   533,    None,     534,    230,  534,   200,   534),
    "off":        (230,   533,    533,      534,    230,  200,   200,   534),
    "ctrl":       (550,   533,    None,     534,    230,  200,   200,   534),
    "data":       (230,   533,    533,      534,    230,  534,   200,   534),
    "!data":      (230,   533,    533,      534,    230,  200,   534,   534),
    "ctrl+!data": (550,   533,    None,     534,    230,  200,   534,   534),
    "auth":       (550,   533,    None,     534,    230,  200,   200,   200),
    "auth+data":  (550,   533,    None,     534,    230,  534,   200,   200),
    "auth+!data": (550,   533,    None,     534,    230,  200,   534,   200),
}

EXACT_TEXT = {
    ("plain_login", 550): "550 SSL/TLS required on the control channel",
    ("prot_c", 534): "534 PROT C refused by policy",
    ("prot_p", 534): "534 PROT P refused by policy",
    ("ccc", 200): "200 CCC command successful; control channel continues in clear",
}

# The gateway handles these itself; the backend must never see them.
GATEWAY_ONLY = ("AUTH", "PBSZ", "PROT", "CCC")


def backend_users(backend, mark: int) -> list[str]:
    return [x for x in backend.commands_since(mark) if x.upper().startswith(("USER", "PASS"))]


@pytest.mark.parametrize("tls_required", list(EXPECTED))
def test_tls_required_table(gateway_factory, backend, backend_log, tls_required):
    gw = gateway_factory({"classes": [klass("default", tls_required)]})
    row: dict[str, int | None] = {}
    texts: dict[str, str] = {}
    problems: list[str] = []

    # -- plain login (no AUTH), then CCC on that clear channel
    mark = backend.log_mark()
    with Ctrl(gw.explicit_port) as c:
        assert c.greeting().code == 220
        r = c.cmd(f"USER {TEST_USER}")
        if r.code == 331:
            r = c.cmd(f"PASS {TEST_PASS}")
        row["plain_login"], texts["plain_login"] = r.code, r.last
        if r.code == 230:
            r = c.cmd("CCC")
            row["ccc_after_plain_login"], texts["ccc_after_plain_login"] = r.code, r.last
            if c.cmd("PWD").code != 257:
                problems.append("PWD after the clear login failed")
        else:
            row["ccc_after_plain_login"] = None
            # The refusal is final for this attempt: PASS must not log in either.
            p = c.cmd(f"PASS {TEST_PASS}")
            if p.code == 230:
                problems.append(f"PASS after a refused USER logged in: {p.last!r}")
        assert c.cmd("QUIT").code == 221
    seen = backend_users(backend, mark)
    if row["plain_login"] == 230:
        if not harness.wait_until(lambda: backend_users(backend, mark), 5, "backend USER"):
            problems.append("allowed clear login never reached the backend")
    elif seen:
        problems.append(f"refused clear login reached the backend: {seen}")

    # -- CCC on a fresh clear control channel
    with Ctrl(gw.explicit_port) as c:
        c.greeting()
        r = c.cmd("CCC")
        row["ccc_in_clear"], texts["ccc_in_clear"] = r.code, r.last
        if c.cmd("FEAT").code != 211:  # the session goes on (gateway-handled before login)
            problems.append("FEAT after CCC in clear failed")

    # -- AUTH TLS, CCC before login, login, PBSZ, PROT C, PROT P, CCC.
    # TLS 1.2 so that the unwrap after an allowed CCC is not hit by the separate TLS 1.3
    # close_notify bug covered by test_ccc.py.
    ctx = harness.client_tls_context(max_version=ssl.TLSVersion.TLSv1_2)
    with Ctrl(gw.explicit_port, ctx=ctx) as c:
        c.greeting()
        c.auth_tls()
        r = c.cmd("CCC")
        row["ccc_before_login"], texts["ccc_before_login"] = r.code, r.last
        r = c.cmd(f"USER {TEST_USER}")
        if r.code == 331:
            r = c.cmd(f"PASS {TEST_PASS}")
        row["tls_login"], texts["tls_login"] = r.code, r.last
        assert c.cmd("PBSZ 0").last == "200 PBSZ=0"
        for col, level in (("prot_c", "C"), ("prot_p", "P")):
            r = c.cmd(f"PROT {level}")
            row[col], texts[col] = r.code, r.last
        r = c.cmd("CCC")
        row["ccc"], texts["ccc"] = r.code, r.last
        if r.code == 200:
            c.sock.settimeout(10)
            c.sock = c.sock.unwrap()  # the gateway's close_notify must come
            c.tls = False
        r = c.cmd("PWD")
        if r.code != 257:
            problems.append(f"PWD after CCC ({row['ccc']}) failed: {r.last!r}")
        assert c.cmd("QUIT").code == 221

    actual = tuple(row[col] for col in COLUMNS)
    expected = EXPECTED[tls_required]
    diff = [f"{col}: expected {e}, got {a} ({texts.get(col)!r})"
            for col, e, a in zip(COLUMNS, expected, actual) if e != a]
    assert not diff, f"tls_required={tls_required!r}:\n" + "\n".join(diff)
    for (col, code), text in EXACT_TEXT.items():
        if row.get(col) == code:
            assert texts[col] == text, (col, texts[col])
    assert not problems, problems

    seen = backend.commands_since(backend_log)
    leaked = [x for x in seen if x.split()[0].upper() in GATEWAY_ONLY]
    assert not leaked, f"the backend saw commands the gateway handles: {leaked}"
    assert seen.count(f"USER {TEST_USER}") == 1 + (row["plain_login"] == 230), seen

    # Logs: every refused CCC (534) is a policy_denial with reason ccc_not_allowed.
    n534 = sum(1 for col in ("ccc_before_login", "ccc") if row[col] == 534)
    gw.wait_log(lambda: len([r for r in gw.events("policy_denial")
                             if r.get("reason") == "ccc_not_allowed"]) >= n534,
                f"{n534} ccc_not_allowed denials")
    denied = [r for r in gw.events("policy_denial") if r.get("reason") == "ccc_not_allowed"]
    assert len(denied) == n534, denied
    if row["plain_login"] == 550:
        assert [r for r in gw.events("policy_denial") if "USER" in str(r.get("command", ""))], \
            gw.events("policy_denial")
