"""The load of `make loadtest`: the credential classes, the timeline of the rotation and the outage,
the credentials each class sends (pool files, minted before the load) and the plan file that
tests/load/load.lua follows."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec, rsa

from settings import (API_KEYS, OUTAGE_500_SECONDS, OUTAGE_DOWN_SECONDS, POOL_BAD, REFRESH_SECONDS, RPS, SKIP,
                      TOKEN_LIFETIME_S, USERS, LoadError)
from standins.idp import IdP


@dataclass
class Timeline:
    t0: int                 # Unix second of second 0
    duration: int
    rotate: int             # rsa-2 published at rotate - 0.5, valid_rs256 switches at rotate
    outage: int
    outage_500: int
    outage_end: int
    drop: int               # rsa-1 removed at drop - 0.5; forged RS256 switches to kid rsa-2 at drop
    retired: int

    @staticmethod
    def plan(t0: int, d: int) -> "Timeline":
        rotate = round(0.10 * d)
        outage = round(0.25 * d)
        outage_500 = outage + OUTAGE_DOWN_SECONDS
        outage_end = outage_500 + OUTAGE_500_SECONDS
        drop = max(outage_end + 8, round(0.5 * d))
        retired = drop + 3 * REFRESH_SECONDS
        if retired > d - 5:
            raise LoadError(f"LOAD_SECONDS={d} leaves no time for the retired-key phase")
        return Timeline(t0, d, rotate, outage, outage_500, outage_end, drop, retired)

    def at(self, rel: float) -> float:
        return self.t0 + rel


@dataclass
class Klass:
    name: str
    valid: bool
    weight: float
    expect: str             # valid: "2xx"; bad: the 401 message
    start: int = 0          # relative seconds
    stop: int = 0
    pools: list[tuple[int, Path, Path | None]] = field(default_factory=list)   # (relative from, file, flag)



def classes(tl: Timeline) -> list[Klass]:
    d = tl.duration
    out = [
        Klass("valid_rs256", True, 0.24, "2xx"),
        Klass("valid_es256", True, 0.24, "2xx"),
        Klass("valid_apikey", True, 0.08, "2xx"),
        Klass("expired", False, 0.07, "token expired"),
        Klass("forged", False, 0.07, "token signature invalid"),
        Klass("unknown_kid", False, 0.07, "token signing key not found"),
        Klass("missing", False, 0.07, "missing credential"),
        Klass("wrong_key", False, 0.07, "invalid API key"),
        Klass("retired", False, 0.09, "token signing key not found"),
    ]
    for k in out:
        k.start, k.stop = (tl.retired if k.name == "retired" else 0), d
    return [k for k in out if k.name not in SKIP]


# ---- credentials ----------------------------------------------------------------------------------------
def write_pool(path: Path, entries: list[tuple[str, str, str]]) -> Path:
    """One line per credential: expected user id, header name (or -), value (or -)."""
    for user, header, value in entries:
        assert "\t" not in user + header + value and "\n" not in user + header + value
    path.write_text("".join(f"{u}\t{h}\t{v}\n" for u, h, v in entries))
    return path


def user_claims(i: int, prefix: str = "user") -> dict[str, Any]:
    return {"sub": f"{prefix}-{i:04d}", "email": f"{prefix}-{i:04d}@load.example",
            "name": f"Load User {i}", "groups": ["eng", "load"], "jti": secrets.token_hex(8)}


@dataclass
class Credentials:
    pools: dict[str, Path]
    api_keys: list[tuple[str, str]]              # (name, key)
    sanity: dict[str, tuple[str, str, str]]     # class -> (user, header, value)


def make_credentials(idp: IdP, workdir: Path) -> Credentials:
    """Every token is minted before the load: the rsa-2 ones too (the IdP publishes rsa-2 only at the
    rotation)."""
    ghost_rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ghost_ec = ec.generate_private_key(ec.SECP256R1())
    now = int(time.time())
    life = TOKEN_LIFETIME_S
    bearer = "authorization"

    def tok(alg: str, kid: str, claims: dict[str, Any], key: Any = None, lifetime: int = life) -> str:
        return idp.mint(alg, kid=kid, claims=claims, key=key, lifetime=lifetime)

    def expired_claims(i: int) -> dict[str, Any]:
        return {**user_claims(i, "expired"), "iat": now - 7200, "nbf": now - 7200, "exp": now - 3600}

    pools: dict[str, Path] = {}
    w = workdir
    pools["rs256_old"] = write_pool(w / "rs256-rsa-1.txt", [
        (f"user-{i:04d}", bearer, "Bearer " + tok("RS256", "rsa-1", user_claims(i))) for i in range(USERS)])
    pools["rs256_new"] = write_pool(w / "rs256-rsa-2.txt", [
        (f"user-{i:04d}", bearer, "Bearer " + tok("RS256", "rsa-2", user_claims(i))) for i in range(USERS)])
    pools["es256"] = write_pool(w / "es256-ec-1.txt", [
        (f"user-{i:04d}", bearer, "Bearer " + tok("ES256", "ec-1", user_claims(i))) for i in range(USERS)])
    api_keys = [(f"team-{n}", "sk-load-" + secrets.token_urlsafe(24)) for n in range(API_KEYS)]
    pools["apikey"] = write_pool(w / "apikey.txt", [
        (name, "x-api-key", key) if n % 2 == 0 else (name, bearer, "Bearer " + key)
        for n, (name, key) in enumerate(api_keys * 4)])
    pools["expired"] = write_pool(w / "expired.txt", [
        ("-", bearer, "Bearer " + (tok("RS256", "rsa-1", expired_claims(i)) if i % 2 else
                                   tok("ES256", "ec-1", expired_claims(i)))) for i in range(POOL_BAD)])

    def forged(rs_kid: str, name: str) -> Path:
        return write_pool(w / name, [
            ("-", bearer, "Bearer " + (tok("RS256", rs_kid, user_claims(i, "forged"), ghost_rsa) if i % 2 else
                                       tok("ES256", "ec-1", user_claims(i, "forged"), ghost_ec)))
            for i in range(POOL_BAD)])

    pools["forged_old"] = forged("rsa-1", "forged-rsa-1.txt")
    pools["forged_new"] = forged("rsa-2", "forged-rsa-2.txt")
    pools["unknown_kid"] = write_pool(w / "unknown-kid.txt", [
        ("-", bearer, "Bearer " + (tok("RS256", f"unknown-{secrets.token_hex(6)}", user_claims(i, "ghost"),
                                       ghost_rsa) if i % 4 == 0 else
                                   tok("ES256", f"unknown-{secrets.token_hex(6)}", user_claims(i, "ghost"),
                                       ghost_ec))) for i in range(POOL_BAD)])
    pools["missing"] = write_pool(w / "missing.txt", [("-", "-", "-")])
    pools["wrong_key"] = write_pool(w / "wrong-key.txt", [
        ("-", "x-api-key", "sk-wrong-" + secrets.token_urlsafe(24)) if i % 2 else
        ("-", bearer, "Bearer sk-wrong-" + secrets.token_urlsafe(24)) for i in range(POOL_BAD)])
    sanity = {
        "valid_rs256": ("sanity-rs", bearer, "Bearer " + tok("RS256", "rsa-1", {**user_claims(0, "sanity-rs"),
                                                                                 "sub": "sanity-rs"})),
        "valid_es256": ("sanity-es", bearer, "Bearer " + tok("ES256", "ec-1", {**user_claims(0, "sanity-es"),
                                                                                "sub": "sanity-es"})),
        "valid_apikey": (api_keys[0][0], "x-api-key", api_keys[0][1]),
        "expired": ("-", bearer, "Bearer " + tok("ES256", "ec-1", expired_claims(9999))),
        "forged": ("-", bearer, "Bearer " + tok("ES256", "ec-1", user_claims(9999, "forged"), ghost_ec)),
        "unknown_kid": ("-", bearer, "Bearer " + tok("ES256", "unknown-sanity", user_claims(9999, "ghost"),
                                                      ghost_ec)),
        "missing": ("-", "-", "-"),
        "wrong_key": ("-", "x-api-key", "sk-wrong-sanity"),
    }
    return Credentials(pools, api_keys, sanity)


def assign_pools(ks: list[Klass], tl: Timeline, cred: Credentials, rotate_flag: Path) -> None:
    p = cred.pools
    for k in ks:
        k.pools = {
            "valid_rs256": [(0, p["rs256_old"], None), (tl.rotate, p["rs256_new"], rotate_flag)],
            "valid_es256": [(0, p["es256"], None)],
            "valid_apikey": [(0, p["apikey"], None)],
            "expired": [(0, p["expired"], None)],
            "forged": [(0, p["forged_old"], None), (tl.drop, p["forged_new"], None)],
            "unknown_kid": [(0, p["unknown_kid"], None)],
            "missing": [(0, p["missing"], None)],
            "wrong_key": [(0, p["wrong_key"], None)],
            "retired": [(tl.retired, p["rs256_old"], None)],
        }[k.name]


def write_plan(path: Path, ks: list[Klass], tl: Timeline) -> Path:
    total_weight = sum(k.weight for k in ks)
    lines = [f"t0 {tl.t0}"]
    for k in ks:
        rate = RPS * k.weight / total_weight
        lines.append(f"class {k.name} {max(1, round(1000 / rate))} {tl.t0 + k.start} {tl.t0 + k.stop}")
    for k in ks:
        for rel, pool, flag in k.pools:
            lines.append(f"pool {k.name} {tl.t0 + rel} {pool}" + (f" {flag}" if flag else ""))
    path.write_text("\n".join(lines) + "\n")
    return path
