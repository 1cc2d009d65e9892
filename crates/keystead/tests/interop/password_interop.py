#!/usr/bin/env python3
"""Password hashes made and checked by other implementations: Python's `bcrypt` and `argon2-cffi`.

Driven by tests/password_interop.rs; JSON in on stdin, JSON out on stdout.

    password_interop.py versions          -> {"bcrypt": "...", "argon2-cffi": "..."}
    password_interop.py make   < [pw...]  -> [{"kind", "password", "hash", "needs_rehash"}...]
    password_interop.py verify < [{"password", "hash"}...]
                                          -> [{"valid": bool, "wrong_valid": bool, "params": {...}}...]

`make` hashes each password in every foreign form that keystead must accept, and says whether
keystead (configured with its defaults: argon2id, m=19456, t=2, p=1) should ask for a re-hash.
`verify` checks hashes made by keystead with argon2-cffi, with the right password and a wrong one,
and reports the parameters argon2-cffi reads from them.
"""

import json
import sys
from importlib.metadata import version

import argon2
import bcrypt
from argon2 import PasswordHasher, Type, extract_parameters
from argon2.exceptions import VerifyMismatchError
from argon2.low_level import hash_secret

# bcrypt reads 72 bytes; bcrypt >= 5 refuses longer input, older systems cut it silently.
BCRYPT_MAX = 72
BCRYPT_ROUNDS = 5  # the cost does not matter to the format; keep the tests quick


def bcrypt_hash(password: bytes, prefix: bytes) -> str:
    return bcrypt.hashpw(password[:BCRYPT_MAX], bcrypt.gensalt(BCRYPT_ROUNDS, prefix=prefix)).decode()


def make(passwords):
    out = []
    for pw in passwords:
        raw = pw.encode("utf-8")
        b2b = bcrypt_hash(raw, b"2b")
        hashes = [
            ("bcrypt_2b", b2b, True),
            ("bcrypt_2a", bcrypt_hash(raw, b"2a"), True),
            # PHP's spelling; bcrypt accepts it as the same algorithm, so a prefix rewrite makes one.
            ("bcrypt_2y", "$2y$" + b2b[4:], True),
            # argon2-cffi's defaults (RFC 9106 low-memory profile): m=65536, t=3, p=4.
            ("argon2id_cffi_default", PasswordHasher().hash(pw), True),
            # Exactly keystead's defaults: nothing to upgrade.
            (
                "argon2id_same_params",
                PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1).hash(pw),
                False,
            ),
            (
                "argon2i",
                PasswordHasher(time_cost=3, memory_cost=8192, parallelism=2, type=Type.I).hash(pw),
                True,
            ),
            (
                "argon2d",
                PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1, type=Type.D).hash(pw),
                True,
            ),
            (
                "argon2id_v16",
                hash_secret(raw, b"sixteen byte slt", 2, 19456, 1, 32, Type.ID, version=16).decode(),
                True,
            ),
        ]
        for kind, h, needs_rehash in hashes:
            # Each hash must verify where it was made, or the test would prove nothing.
            if kind.startswith("bcrypt"):
                assert bcrypt.checkpw(raw[:BCRYPT_MAX], h.encode()), kind
            else:
                assert argon2.PasswordHasher().verify(h, pw), kind
            out.append({"kind": kind, "password": pw, "hash": h, "needs_rehash": needs_rehash})
    return out


def verify(items):
    ph = PasswordHasher()
    out = []
    for item in items:
        h, pw = item["hash"], item["password"]
        try:
            valid = ph.verify(h, pw)
        except VerifyMismatchError:
            valid = False
        try:
            wrong_valid = ph.verify(h, "!" + pw)
        except VerifyMismatchError:
            wrong_valid = False
        p = extract_parameters(h)
        out.append(
            {
                "valid": valid,
                "wrong_valid": wrong_valid,
                "params": {
                    "type": p.type.name.lower(),
                    "version": p.version,
                    "memory_cost": p.memory_cost,
                    "time_cost": p.time_cost,
                    "parallelism": p.parallelism,
                    "salt_len": p.salt_len,
                    "hash_len": p.hash_len,
                },
            }
        )
    return out


def main():
    command = sys.argv[1] if len(sys.argv) > 1 else ""
    if command == "versions":
        result = {"bcrypt": version("bcrypt"), "argon2-cffi": version("argon2-cffi")}
    elif command == "make":
        result = make(json.load(sys.stdin))
    elif command == "verify":
        result = verify(json.load(sys.stdin))
    else:
        sys.exit(f"usage: {sys.argv[0]} versions|make|verify")
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
