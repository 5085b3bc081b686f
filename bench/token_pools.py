"""The keys and token pools of `make bench`: one RSA-2048 and one P-256 key, a JWKS of both, and files
of tokens, one a line, that bench/tokens.lua sends (valid ones minted in parallel, forged ones with
in-range signatures). Signing is the IdP stand-in's (tests/standins/idp.py)."""

from __future__ import annotations

import json
import os
import secrets
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from settings import AUDIENCE, COLD_TOKENS, ISSUER, KID, TOKEN_LIFETIME_S, USERS
from standins.idp import b64url, sign

_SIGNER: dict[str, Any] = {}


def b64u_uint(n: int, size: int) -> str:
    return b64url(n.to_bytes(size, "big"))


def _init_signer(rsa_pem: bytes, ec_pem: bytes) -> None:
    from cryptography.hazmat.primitives.serialization import load_pem_private_key
    _SIGNER["RS256"] = load_pem_private_key(rsa_pem, None)
    _SIGNER["ES256"] = load_pem_private_key(ec_pem, None)


def _claims(prefix: str, i: int, now: int) -> dict[str, Any]:
    """Claims like an ID token's: a user id, e-mail, name and groups (so the filter sets all its
    identity headers), a distinct jti."""
    return {"iss": ISSUER, "aud": AUDIENCE, "sub": f"{prefix}-{i:06d}",
            "email": f"{prefix}-{i:06d}@bench.example", "name": f"Bench User {prefix} {i}",
            "groups": ["eng", "ml-platform"], "iat": now - 60, "nbf": now - 60,
            "exp": now + TOKEN_LIFETIME_S, "jti": secrets.token_hex(16)}


def _signing_input(alg: str, claims: dict[str, Any]) -> str:
    header = {"alg": alg, "typ": "JWT", "kid": KID[alg]}
    return (b64url(json.dumps(header, separators=(",", ":")).encode()) + "." +
            b64url(json.dumps(claims, separators=(",", ":")).encode()))



def _mint_chunk(args: tuple[str, str, int, int, int]) -> list[str]:
    alg, prefix, start, count, now = args
    out = []
    for i in range(start, start + count):
        si = _signing_input(alg, _claims(prefix, i, now))
        out.append(si + "." + b64url(sign(alg, _SIGNER[alg], si.encode())))
    return out


def forge(alg: str, prefix: str, start: int, count: int, now: int, modulus: int) -> list[str]:
    """Well-formed tokens with the real kid, iss and aud and a signature that is not the key's but
    is in range (RSA: 1 < s < n; ECDSA: 0 < r, s < order), so a verifier has to do the whole
    computation before it can say no. Each token is different."""
    out = []
    for i in range(start, start + count):
        si = _signing_input(alg, _claims(prefix, i, now))
        if alg == "RS256":
            sig = (2 + secrets.randbelow(modulus - 3)).to_bytes(256, "big")
        else:
            sig = b"".join((1 + secrets.randbelow(modulus - 1)).to_bytes(32, "big") for _ in range(2))
        out.append(si + "." + b64url(sig))
    return out


@dataclass
class Keys:
    jwks: str
    rsa_pem: bytes
    ec_pem: bytes
    rsa_n: int
    ec_order: int


def make_keys() -> Keys:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    rn = rsa_key.public_key().public_numbers()
    en = ec_key.public_key().public_numbers()
    jwks = {"keys": [
        {"kty": "RSA", "kid": KID["RS256"], "use": "sig", "alg": "RS256",
         "n": b64u_uint(rn.n, 256), "e": b64u_uint(rn.e, 3)},
        {"kty": "EC", "kid": KID["ES256"], "use": "sig", "alg": "ES256", "crv": "P-256",
         "x": b64u_uint(en.x, 32), "y": b64u_uint(en.y, 32)}]}
    pem = dict(encoding=serialization.Encoding.PEM, format=serialization.PrivateFormat.PKCS8,
               encryption_algorithm=serialization.NoEncryption())
    p256_order = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
    return Keys(json.dumps(jwks, separators=(",", ":")), rsa_key.private_bytes(**pem),
                ec_key.private_bytes(**pem), rn.n, p256_order)


def mint_pools(keys: Keys, workdir: Path) -> dict[str, Path]:
    """Token files, one token per line: cold-<alg> (COLD_TOKENS distinct users), warm-<alg> (USERS
    users, one token each), forged-<alg> (COLD_TOKENS forgeries), sanity-<alg> (one valid token used
    only by the sanity check) and sanity-forged-<alg>."""
    now = int(time.time())
    jobs: dict[str, list[tuple[str, str, int, int, int]]] = {}
    chunk = 2000
    for alg in ("RS256", "ES256"):
        a = alg.lower()
        jobs[f"cold-{a}"] = [(alg, "cold", s, min(chunk, COLD_TOKENS - s), now)
                             for s in range(0, COLD_TOKENS, chunk)]
        jobs[f"warm-{a}"] = [(alg, "user", 0, USERS, now)]
        jobs[f"sanity-{a}"] = [(alg, "sanity", 0, 1, now)]
    workers = max(1, min(len(os.sched_getaffinity(0)), 4))
    files: dict[str, Path] = {}
    with ProcessPoolExecutor(max_workers=workers, initializer=_init_signer,
                             initargs=(keys.rsa_pem, keys.ec_pem)) as pool:
        futures = {name: [pool.submit(_mint_chunk, j) for j in js] for name, js in jobs.items()}
        for name, futs in futures.items():
            tokens = [t for f in futs for t in f.result()]
            files[name] = workdir / f"tokens-{name}.txt"
            files[name].write_text("\n".join(tokens) + "\n")
    for alg, modulus in (("RS256", keys.rsa_n), ("ES256", keys.ec_order)):
        a = alg.lower()
        for name, prefix, count in ((f"forged-{a}", "forged", COLD_TOKENS),
                                    (f"sanity-forged-{a}", "sanity-forged", 1)):
            files[name] = workdir / f"tokens-{name}.txt"
            files[name].write_text("\n".join(forge(alg, prefix, 0, count, now, modulus)) + "\n")
    return files
