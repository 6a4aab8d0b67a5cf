"""Helpers for the gateway-side authentication tests (issue 14): crypt(3) hashes made with
the system's libxcrypt, users files, password files."""
from __future__ import annotations

import ctypes
import ctypes.util
from pathlib import Path

_libcrypt = ctypes.CDLL(ctypes.util.find_library("crypt") or "libcrypt.so.1")
_libcrypt.crypt_gensalt_rn.restype = ctypes.c_char_p
_libcrypt.crypt_gensalt_rn.argtypes = [ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p, ctypes.c_int,
                                       ctypes.c_char_p, ctypes.c_int]
_libcrypt.crypt.restype = ctypes.c_char_p
_libcrypt.crypt.argtypes = [ctypes.c_char_p, ctypes.c_char_p]


def crypt_hash(password: str, prefix: str = "$y$", cost: int = 0) -> str:
    """A fresh hash: prefix $y$ (yescrypt), $2b$ (bcrypt), $6$ (sha512crypt)."""
    salt = ctypes.create_string_buffer(256)
    if _libcrypt.crypt_gensalt_rn(prefix.encode(), cost, None, 0, salt, len(salt)) is None:
        raise RuntimeError(f"crypt_gensalt_rn failed for {prefix}")
    out = _libcrypt.crypt(password.encode(), salt.value)
    if out is None or out.startswith(b"*"):
        raise RuntimeError(f"crypt failed for {prefix}")
    return out.decode()


def write_secret(path: Path, value: str) -> Path:
    path.write_text(value + "\n")
    path.chmod(0o600)
    return path


def auth_overrides(users_file: Path, **auth) -> dict:
    """Config overrides: a `local` file provider on both listeners."""
    cfg = {"auth": {"providers": [{"name": "local", "type": "file", "path": str(users_file)}], **auth}}
    return cfg


def use_chain(config: dict, chain: list[str]) -> None:
    for listener in config["listeners"]:
        listener["auth"] = chain
