"""The keys and token pools of `make bench`: one RSA-2048, one P-256 and one P-384 key, a JWKS of the
three, a JWKS of that RSA key and decoy RSA keys (for tokens without kid), and files of tokens, one a
line, that bench/tokens.lua sends (valid ones minted in parallel, forged ones with in-range
signatures). Signing is the IdP stand-in's (tests/standins/idp.py)."""

from __future__ import annotations

import json
import os
import secrets
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from settings import AUDIENCE, COLD_TOKENS, ISSUER, KID, NOKID_RSA_KEYS, TOKEN_LIFETIME_S, USERS
from standins.idp import b64url, sign

P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
P384_ORDER = int("FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFC7634D81F4372DDF581A0DB248B0A77AECEC196ACCC52973", 16)

_SIGNER: dict[str, Any] = {}


def b64u_uint(n: int, size: int) -> str:
    return b64url(n.to_bytes(size, "big"))


def _init_signer(rsa_pem: bytes, ec_pem: bytes, ec384_pem: bytes) -> None:
    from cryptography.hazmat.primitives.serialization import load_pem_private_key
    _SIGNER["RS256"] = load_pem_private_key(rsa_pem, None)
    _SIGNER["ES256"] = load_pem_private_key(ec_pem, None)
    _SIGNER["ES384"] = load_pem_private_key(ec384_pem, None)


def _claims(prefix: str, i: int, now: int) -> dict[str, Any]:
    """Claims like an ID token's: a user id, e-mail, name and groups (so the filter sets all its
    identity headers), a distinct jti."""
    return {"iss": ISSUER, "aud": AUDIENCE, "sub": f"{prefix}-{i:06d}",
            "email": f"{prefix}-{i:06d}@bench.example", "name": f"Bench User {prefix} {i}",
            "groups": ["eng", "ml-platform"], "iat": now - 60, "nbf": now - 60,
            "exp": now + TOKEN_LIFETIME_S, "jti": secrets.token_hex(16)}


def _signing_input(alg: str, claims: dict[str, Any], kid: bool = True) -> str:
    header = {"alg": alg, "typ": "JWT", "kid": KID[alg]} if kid else {"alg": alg, "typ": "JWT"}
    return (b64url(json.dumps(header, separators=(",", ":")).encode()) + "." +
            b64url(json.dumps(claims, separators=(",", ":")).encode()))



def _mint_chunk(args: tuple[str, str, int, int, int, bool]) -> list[str]:
    alg, prefix, start, count, now, kid = args
    out = []
    for i in range(start, start + count):
        si = _signing_input(alg, _claims(prefix, i, now), kid)
        out.append(si + "." + b64url(sign(alg, _SIGNER[alg], si.encode())))
    return out


def forge(alg: str, prefix: str, start: int, count: int, now: int, modulus: int,
          kid: bool = True) -> list[str]:
    """Well-formed tokens with the real kid (or none), iss and aud and a signature that is not the
    key's but is in range (RSA: 1 < s < n; ECDSA: 0 < r, s < order), so a verifier has to do the
    whole computation before it can say no. Each token is different."""
    size = (modulus.bit_length() + 7) // 8   # RSA: 256 bytes; ECDSA: r and s 32 (P-256) or 48 (P-384)
    out = []
    for i in range(start, start + count):
        si = _signing_input(alg, _claims(prefix, i, now), kid)
        if alg == "RS256":
            sig = (2 + secrets.randbelow(modulus - 3)).to_bytes(size, "big")
        else:
            sig = b"".join((1 + secrets.randbelow(modulus - 1)).to_bytes(size, "big") for _ in range(2))
        out.append(si + "." + b64url(sig))
    return out


@dataclass
class Keys:
    jwks: str
    rsa_pem: bytes
    ec_pem: bytes
    rsa_n: int
    ec_order: int
    ec384_pem: bytes
    ec384_order: int
    jwks_nokid: str     # the real RSA key first, then NOKID_RSA_KEYS - 1 decoys


def _rsa_jwk(kid: str, key: Any) -> dict[str, Any]:
    n = key.public_key().public_numbers()
    return {"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
            "n": b64u_uint(n.n, 256), "e": b64u_uint(n.e, 3)}


def _ec_jwk(alg: str, key: Any, size: int) -> dict[str, Any]:
    n = key.public_key().public_numbers()
    return {"kty": "EC", "kid": KID[alg], "use": "sig", "alg": alg, "crv": f"P-{size * 8}",
            "x": b64u_uint(n.x, size), "y": b64u_uint(n.y, size)}


def make_keys() -> Keys:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    rsa_keys = [rsa.generate_private_key(public_exponent=65537, key_size=2048)
                for _ in range(NOKID_RSA_KEYS)]   # the real one, then the decoys
    rsa_key = rsa_keys[0]
    ec_key = ec.generate_private_key(ec.SECP256R1())
    ec384_key = ec.generate_private_key(ec.SECP384R1())
    jwks = {"keys": [_rsa_jwk(KID["RS256"], rsa_key), _ec_jwk("ES256", ec_key, 32),
                     _ec_jwk("ES384", ec384_key, 48)]}
    jwks_nokid = {"keys": [_rsa_jwk(KID["RS256"], rsa_key)] + [
        _rsa_jwk(f"bench-rs256-decoy-{i}", k) for i, k in enumerate(rsa_keys[1:])]}
    pem = dict(encoding=serialization.Encoding.PEM, format=serialization.PrivateFormat.PKCS8,
               encryption_algorithm=serialization.NoEncryption())
    return Keys(json.dumps(jwks, separators=(",", ":")), rsa_key.private_bytes(**pem),
                ec_key.private_bytes(**pem), rsa_key.public_key().public_numbers().n, P256_ORDER,
                ec384_key.private_bytes(**pem), P384_ORDER, json.dumps(jwks_nokid, separators=(",", ":")))


def mint_pools(keys: Keys, workdir: Path) -> dict[str, Path]:
    """Token files, one token per line: cold-<alg> (COLD_TOKENS distinct users), warm-<alg> (USERS
    users, one token each) for rs256 and es256; forged-<x> (COLD_TOKENS forgeries), sanity-<x> (one
    valid token used only by the sanity check) and sanity-forged-<x> for rs256, es256, es384 and
    rs256-nokid (RS256 without kid in the header)."""
    now = int(time.time())
    jobs: dict[str, list[tuple[str, str, int, int, int, bool]]] = {}
    chunk = 2000
    for alg in ("RS256", "ES256"):
        a = alg.lower()
        jobs[f"cold-{a}"] = [(alg, "cold", s, min(chunk, COLD_TOKENS - s), now, True)
                             for s in range(0, COLD_TOKENS, chunk)]
        jobs[f"warm-{a}"] = [(alg, "user", 0, USERS, now, True)]
    # (pool suffix, alg, kid in the header, the modulus a forged signature must stay below)
    forgeable = (("rs256", "RS256", True, keys.rsa_n), ("es256", "ES256", True, keys.ec_order),
                 ("es384", "ES384", True, keys.ec384_order), ("rs256-nokid", "RS256", False, keys.rsa_n))
    for a, alg, kid, _ in forgeable:
        jobs[f"sanity-{a}"] = [(alg, "sanity", 0, 1, now, kid)]
    workers = max(1, min(len(os.sched_getaffinity(0)), 4))
    files: dict[str, Path] = {}
    with ProcessPoolExecutor(max_workers=workers, initializer=_init_signer,
                             initargs=(keys.rsa_pem, keys.ec_pem, keys.ec384_pem)) as pool:
        futures = {name: [pool.submit(_mint_chunk, j) for j in js] for name, js in jobs.items()}
        for name, futs in futures.items():
            tokens = [t for f in futs for t in f.result()]
            files[name] = workdir / f"tokens-{name}.txt"
            files[name].write_text("\n".join(tokens) + "\n")
    for a, alg, kid, modulus in forgeable:
        for name, prefix, count in ((f"forged-{a}", "forged", COLD_TOKENS),
                                    (f"sanity-forged-{a}", "sanity-forged", 1)):
            files[name] = workdir / f"tokens-{name}.txt"
            files[name].write_text("\n".join(forge(alg, prefix, 0, count, now, modulus, kid)) + "\n")
    return files
