#!/usr/bin/env python3
"""Writes the fuzzing fixture and the seed corpora of tests/fuzz.

    .venv/bin/python tests/fuzz/make_seeds.py

Outputs (all checked in, all small):
  fixture/jwks.json        the public JWKS the targets trust (RSA-2048, P-256, Ed25519)
  fixture/good_tokens.txt  tokens signed by those keys that the fixed configurations accept
  fixture/signed_tokens.txt  every token signed by those keys (the good ones and policy refusals)
  fixture/diff_keys.json   private JWKs of the jwt_simple_diff target (other keys than jwks.json's)
  seeds/<target>/*         a handful of realistic inputs per fuzz target

The private keys are derived from fixed seeds below, and every signature is deterministic (PKCS#1
v1.5, EdDSA, RFC 6979 ECDSA, PSS with a salt derived from the message), so every run writes the same
bytes. They are test keys:
anyone can re-derive them from this file, which is fine, because the fuzzer never sees this file and
the point is only that it cannot forge signatures. The jwt_simple_diff harness signs what it mutates,
so it reads its own keys (fixture/diff_keys.json), never the ones above. Needs only the stdlib and
`cryptography`.
"""

import base64
import hashlib
import json
import random
import shutil
import struct
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

HERE = Path(__file__).resolve().parent
NOW = 1_800_000_000  # the fixed `now` of every target (same as tests/host)
ISSUER = "https://idp.example.com"
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
ENTRA_ISSUER = f"https://login.microsoftonline.com/{TENANT}/v2.0"
ENTRA_CLIENT = "6e74172b-be56-4843-9ff4-e66a39bb12e3"
API_KEY = "sk-fuzz-0123456789abcdef"  # the one valid API key of the decision target
OPAQUE_GOOD = "opaque-good-token"      # cached as valid in the decision target's opaque state
OPAQUE_BAD = "opaque-bad-token"        # cached as refused
OPAQUE_PENDING = "opaque-pending-token"  # introspection in flight


# ---------------------------------------------------------------- keys (deterministic test keys)

def _is_probable_prime(n, rng):
    if n < 2:
        return False
    for p in (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37):
        if n % p == 0:
            return n == p
    d, r = n - 1, 0
    while d % 2 == 0:
        d, r = d // 2, r + 1
    for _ in range(40):
        a = rng.randrange(2, n - 1)
        x = pow(a, d, n)
        if x in (1, n - 1):
            continue
        for _ in range(r - 1):
            x = pow(x, 2, n)
            if x == n - 1:
                break
        else:
            return False
    return True


def _prime(rng, bits, e):
    while True:
        p = rng.getrandbits(bits) | (3 << (bits - 2)) | 1  # top two bits set: n has exactly 2*bits
        if (p - 1) % e != 0 and _is_probable_prime(p, rng):
            return p


def rsa_key():
    rng = random.Random("gateway_filter fuzz rsa-2048")
    e = 65537
    p = _prime(rng, 1024, e)
    q = _prime(rng, 1024, e)
    n = p * q
    d = pow(e, -1, (p - 1) * (q - 1))
    numbers = rsa.RSAPrivateNumbers(
        p, q, d, rsa.rsa_crt_dmp1(d, p), rsa.rsa_crt_dmq1(d, q), rsa.rsa_crt_iqmp(p, q),
        rsa.RSAPublicNumbers(e, n),
    )
    return numbers.private_key()


def p256_key():
    scalar = int.from_bytes(hashlib.sha256(b"gateway_filter fuzz p256").digest(), "big")
    order = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
    return ec.derive_private_key(scalar % order, ec.SECP256R1())


def ed25519_key():
    return ed25519.Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"gateway_filter fuzz ed25519").digest())


RSA, P256, ED = rsa_key(), p256_key(), ed25519_key()


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def uint(n: int) -> bytes:
    return n.to_bytes((n.bit_length() + 7) // 8, "big")


def jwks():
    pub = RSA.public_key().public_numbers()
    ecp = P256.public_key().public_numbers()
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
    ed_x = ED.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return {"keys": [
        {"kty": "RSA", "kid": "rsa", "use": "sig", "n": b64(uint(pub.n)), "e": b64(uint(pub.e))},
        {"kty": "EC", "kid": "p256", "use": "sig", "crv": "P-256", "alg": "ES256",
         "x": b64(ecp.x.to_bytes(32, "big")), "y": b64(ecp.y.to_bytes(32, "big"))},
        {"kty": "OKP", "kid": "ed", "crv": "Ed25519", "x": b64(ed_x)},
    ]}


def sign(alg: str, data: bytes) -> bytes:
    hash_ = {"256": hashes.SHA256(), "384": hashes.SHA384(), "512": hashes.SHA512()}.get(alg[2:])
    if alg.startswith("RS"):
        return RSA.sign(data, padding.PKCS1v15(), hash_)
    if alg.startswith("PS"):
        return pss_sign(data, alg[2:])
    if alg == "ES256":
        r, s = decode_dss_signature(P256.sign(data, ec.ECDSA(hashes.SHA256(), deterministic_signing=True)))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")
    if alg == "EdDSA":
        return ED.sign(data)
    raise ValueError(alg)


def pss_sign(data: bytes, bits: str) -> bytes:
    """RSASSA-PSS (RFC 8017 §9.1, MGF1 with the same hash, salt as long as the hash) with a salt
    derived from the message, so the output is reproducible; `cryptography` always draws a random salt."""
    h = getattr(hashlib, f"sha{bits}")
    priv = RSA.private_numbers()
    n, d = priv.public_numbers.n, priv.d
    em_bits = n.bit_length() - 1
    em_len = (em_bits + 7) // 8
    m_hash = h(data).digest()
    h_len = len(m_hash)
    salt = h(b"salt" + data).digest()
    digest = h(b"\0" * 8 + m_hash + salt).digest()
    db = b"\0" * (em_len - 2 * h_len - 2) + b"\x01" + salt
    mask = b"".join(h(digest + i.to_bytes(4, "big")).digest() for i in range(len(db) // h_len + 1))[: len(db)]
    masked = bytearray(a ^ b for a, b in zip(db, mask))
    masked[0] &= 0xFF >> (8 * em_len - em_bits)
    em = bytes(masked) + digest + b"\xbc"
    signature = pow(int.from_bytes(em, "big"), d, n).to_bytes((n.bit_length() + 7) // 8, "big")
    RSA.public_key().verify(signature, data, padding.PSS(padding.MGF1(getattr(hashes, f"SHA{bits}")()), h_len),
                            getattr(hashes, f"SHA{bits}")())
    return signature


def compact(obj) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def mint(header: dict, claims: dict, sign_alg=None):
    """(token, template): the template spells the JSON out between << >> (see harness/mod.rs)."""
    h, c = compact(header), compact(claims)
    signing_input = f"{b64(h)}.{b64(c)}".encode()
    sig = b64(sign(sign_alg or header["alg"], signing_input))
    return f"{signing_input.decode()}.{sig}", f"<<{h.decode()}>>.<<{c.decode()}>>.{sig}"


def claims(**changes):
    base = {"iss": ISSUER, "aud": "gateway", "sub": "user-1", "email": "ada@example.com", "name": "Ada Lovelace",
            "groups": ["eng", "ml"], "tenant": "acme", "scp": "openid llm", "iat": NOW - 10, "nbf": NOW - 10,
            "exp": NOW + 3600}
    for k, v in changes.items():
        if v is None:
            base.pop(k, None)
        else:
            base[k] = v
    return base


def entra_claims(**changes):
    base = {"iss": ENTRA_ISSUER, "aud": ENTRA_CLIENT, "tid": TENANT, "oid": "00000000-0000-0000-0000-0000000000a1",
            "sub": "pairwise", "preferred_username": "ada@contoso.com", "name": "Ada", "groups": ["g1"],
            "iat": NOW - 10, "nbf": NOW - 10, "exp": NOW + 3600, "ver": "2.0"}
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


GOOD = [
    mint({"alg": "RS256", "typ": "JWT", "kid": "rsa"}, claims()),
    mint({"alg": "PS256", "kid": "rsa"}, claims(aud=["other", "gateway"])),
    mint({"alg": "ES256", "kid": "p256"}, claims(sub="user-2", groups="solo")),
    mint({"alg": "EdDSA", "kid": "ed"}, claims(nbf=None, iat=None, scp=["llm"])),
    mint({"alg": "RS512"}, claims(aud="claude-desktop", email=None)),
    mint({"alg": "RS256", "typ": "JWT", "kid": "rsa"}, entra_claims()),
    mint({"alg": "RS256", "kid": "rsa"}, entra_claims(groups=None, _claim_names={"groups": "src1"})),
]

# Signed by the fixed keys but refused (policy checks come before the signature check).
SIGNED_BAD = [
    mint({"alg": "RS256", "kid": "rsa"}, claims(exp=NOW - 120)),
    mint({"alg": "ES256", "kid": "p256"}, claims(aud="someone-else")),
    mint({"alg": "EdDSA", "kid": "ed"}, claims(tenant="evil")),
    mint({"alg": "RS256", "kid": "rsa"}, claims(scp="openid")),
    mint({"alg": "RS256", "kid": "rsa", "nonce": "abc"}, entra_claims()),
    mint({"alg": "RS256", "kid": "rsa"}, entra_claims(aud="00000003-0000-0000-c000-000000000000")),
    mint({"alg": "ES256", "kid": "rsa"}, claims()),  # kid of a key that does not fit ES256
    mint({"alg": "RS256", "kid": "rsa"}, claims(), sign_alg="PS256"),
]

UNSIGNED = [  # templates with a dummy signature
    ('{"alg":"none"}', claims()),
    ('{"alg":"HS256","kid":"rsa"}', claims()),
    ('{"alg":"RS256","kid":"rsa","crit":["exp"]}', claims()),
    ('{"alg":"RS256","kid":"unknown"}', claims()),
    ('{"alg":"ES384","kid":"p384"}', claims()),
    ('{"alg":"RS256","kid":7}', claims()),
    ('{"alg":"RS256","alg":"none"}', claims()),
    ('   {"alg":"EdDSA"}', claims()),
    ('{"alg":"EdDSA"}', claims(exp="1800003600")),
    ('{"alg":"EdDSA"}', claims(exp=1e300, nbf=-1e300)),
    ('{"alg":"EdDSA"}', claims(aud=["gateway", 5])),
    ('{"alg":"EdDSA"}', claims(iss=ISSUER + "/")),
]


# ---------------------------------------------------------------- jwt_simple_diff: keys and inputs

P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
P384_ORDER = int("FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFC7634D81F4372DDF581A0DB248B0A77AECEC196ACCC52973", 16)


def diff_keys():
    """One private JWK per key family the filter and jwt-simple both verify (RSA-2048 serves RS* and PS*)."""
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
    rng = random.Random("gateway_filter fuzz jwt_simple_diff rsa-2048")
    e = 65537
    p, q = _prime(rng, 1024, e), _prime(rng, 1024, e)
    d = pow(e, -1, (p - 1) * (q - 1))
    keys = [{"kty": "RSA", "kid": "d-rsa", "n": b64(uint(p * q)), "e": b64(uint(e)), "d": b64(uint(d)),
             "p": b64(uint(p)), "q": b64(uint(q)), "dp": b64(uint(d % (p - 1))), "dq": b64(uint(d % (q - 1))),
             "qi": b64(uint(pow(q, -1, p)))}]
    for kid, crv, curve, order, size in (("d-p256", "P-256", ec.SECP256R1(), P256_ORDER, 32),
                                         ("d-p384", "P-384", ec.SECP384R1(), P384_ORDER, 48)):
        scalar = int.from_bytes(hashlib.sha512(f"gateway_filter fuzz jwt_simple_diff {crv}".encode()).digest(), "big")
        scalar = scalar % (order - 1) + 1
        point = ec.derive_private_key(scalar, curve).public_key().public_numbers()
        keys.append({"kty": "EC", "kid": kid, "crv": crv, "x": b64(point.x.to_bytes(size, "big")),
                     "y": b64(point.y.to_bytes(size, "big")), "d": b64(scalar.to_bytes(size, "big"))})
    seed = hashlib.sha256(b"gateway_filter fuzz jwt_simple_diff ed25519").digest()
    x = ed25519.Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    keys.append({"kty": "OKP", "kid": "d-ed", "crv": "Ed25519", "x": b64(x), "d": b64(seed)})
    return {"keys": keys}


# The input layout of harness::jwt_simple_diff (keep in step with tests/fuzz/harness/jwt_simple_diff.rs):
# byte 0 = mode << 6 | algorithm index; in mutation mode, 4 bytes per operation: code, a, b, c.
DIFF_ALGS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA"]
DIFF_MUTATE, DIFF_SIGN, DIFF_RAW = 0, 2, 3
DIFF_OPS = ["set_claim", "set_header", "remove", "duplicate", "edit_json", "shape", "flip_text", "insert_text",
            "delete_text", "truncate", "segments", "signature", "resign", "pss_salt", "reencode", "frame"]
DIFF_CLAIMS = ["iss", "aud", "sub", "oid", "exp", "nbf", "iat", "jti", "nonce", "email", "groups", "azp", "x"]
DIFF_HEADER = ["alg", "kid", "typ", "cty", "crit", "jku", "jwk", "x5u", "x5c", "x5t", "x5t#S256", "salt", "b64", "x"]
DIFF_VALUES = ["issuer", "issuer_slash", "audience", "other", "empty", "aud_array", "aud_other_first", "empty_array",
               "aud_with_number", "near_now", "near_now_half", "in_an_hour", "big", "negative", "numeric_string",
               "null", "bool", "object", "small", "alg", "kid", "typ", "crit", "special", "long", "nested"]
DIFF_SHAPES = ["array", "leading_spaces", "trailing_spaces", "bom", "non_utf8_member", "lone_surrogate_member",
               "escaped_names", "empty_object"]
HEADER, CLAIMS = 0, 1


def op(name, a=0, b=0, c=0):
    return bytes([DIFF_OPS.index(name), a, b, c])


def diff_input(alg, *ops):
    return bytes([DIFF_MUTATE << 6 | DIFF_ALGS.index(alg)]) + b"".join(ops)


def claim(name, value, arg=0):
    return op("set_claim", DIFF_CLAIMS.index(name), DIFF_VALUES.index(value), arg)


def header(name, value, arg=0):
    return op("set_header", DIFF_HEADER.index(name), DIFF_VALUES.index(value), arg)


def shape(which, kind, arg=0):
    return op("shape", which, DIFF_SHAPES.index(kind), arg)


def diff_seeds():
    seeds = {f"valid_{alg}": diff_input(alg) for alg in DIFF_ALGS}
    seeds.update({
        "exp_at_now_minus_skew": diff_input("RS256", claim("exp", "near_now", 68)),
        "nbf_half_past_skew": diff_input("ES256", claim("nbf", "near_now_half", 188)),
        "iat_big": diff_input("PS256", claim("iat", "big", 1)),
        "no_exp": diff_input("EdDSA", op("remove", CLAIMS, DIFF_CLAIMS.index("exp"))),
        "no_sub": diff_input("ES384", op("remove", CLAIMS, DIFF_CLAIMS.index("sub"))),
        "sub_number": diff_input("RS384", claim("sub", "small", 7)),
        "aud_other": diff_input("RS512", claim("aud", "aud_other_first")),
        "iss_slash": diff_input("PS384", claim("iss", "issuer_slash")),
        "duplicate_claim": diff_input("PS512", op("duplicate", CLAIMS, DIFF_CLAIMS.index("email"), DIFF_VALUES.index("small"))),
        "deep_claim": diff_input("EdDSA", claim("x", "nested", 40)),
        "crit_empty": diff_input("RS256", header("crit", "crit", 0)),
        "typ_jose": diff_input("ES256", header("typ", "typ", 3)),
        "kid_other": diff_input("ES384", header("kid", "kid", 5)),
        "no_kid": diff_input("PS256", op("remove", HEADER, DIFF_HEADER.index("kid"))),
        "alg_ed25519": diff_input("EdDSA", header("alg", "alg", 9)),
        "alg_none": diff_input("RS256", header("alg", "alg", 10)),
        "alg_ps_signed_rs": diff_input("RS256", header("alg", "alg", 3)),
        "salt_not_base64": diff_input("ES256", header("salt", "other")),
        "long_header": diff_input("RS256", header("x", "long", 130)),
        "header_spaces": diff_input("EdDSA", shape(HEADER, "leading_spaces", 2)),
        "header_array": diff_input("ES256", shape(HEADER, "array")),
        "header_non_utf8": diff_input("RS256", shape(HEADER, "non_utf8_member")),
        "claims_escaped_names": diff_input("PS384", shape(CLAIMS, "escaped_names")),
        "edit_claims": diff_input("ES384", op("edit_json", CLAIMS | 1 << 1, 1, ord(" "))),  # insert a space
        "flip_signature": diff_input("RS256", op("flip_text", 2, 0, 3)),
        "insert_dot": diff_input("EdDSA", op("insert_text", 0, 20, ord("."))),
        "truncate": diff_input("ES256", op("truncate", 0, 200)),
        "swap_segments": diff_input("PS256", op("segments", 0, 1, 0)),
        "signature_leading_zero": diff_input("RS512", op("signature", 0)),
        "ecdsa_n_minus_s": diff_input("ES256", op("signature", 4)),
        "ed25519_s_plus_l": diff_input("EdDSA", op("signature", 4)),
        "resign_es256_as_rs256": diff_input("RS256", op("resign", DIFF_ALGS.index("ES256"))),
        "pss_salt_0": diff_input("PS256", op("pss_salt", 0)),
        "padded_claims": diff_input("RS256", op("reencode", CLAIMS, 1)),
        "stray_bits_header": diff_input("EdDSA", op("reencode", HEADER, 2)),
        "framed": diff_input("EdDSA", op("frame", 0)),
    })
    ed_claims = compact(claims(nbf=None, tenant=None, scp=None))
    seeds["signed_template"] = bytes([DIFF_SIGN << 6 | DIFF_ALGS.index("ES256")]) + \
        f'<<{{"alg":"ES256","kid":"d-p256"}}>>.<<{ed_claims.decode()}>>'.encode()
    seeds["signed_template_crit"] = bytes([DIFF_SIGN << 6 | DIFF_ALGS.index("EdDSA")]) + \
        f'<<{{"alg":"EdDSA","crit":[]}}>>.<<{ed_claims.decode()}>>'.encode()
    seeds["raw_unsigned"] = bytes([DIFF_RAW << 6]) + f'<<{{"alg":"RS256"}}>>.<<{ed_claims.decode()}>>.AAAA'.encode()
    seeds["raw_fixture_token"] = bytes([DIFF_RAW << 6]) + GOOD[0][0].encode()
    return seeds


# ---------------------------------------------------------------- protobuf Struct encoder

def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def field(num: int, body: bytes) -> bytes:
    return varint(num << 3 | 2) + varint(len(body)) + body


def pb_value(v) -> bytes:
    if v is None:
        return bytes([0x08, 0x00])
    if isinstance(v, bool):
        return bytes([0x20, int(v)])
    if isinstance(v, (int, float)):
        return bytes([2 << 3 | 1]) + struct.pack("<d", float(v))
    if isinstance(v, str):
        return field(3, v.encode())
    if isinstance(v, dict):
        return field(5, pb_struct(v))
    if isinstance(v, list):
        return field(6, b"".join(field(1, pb_value(i)) for i in v))
    raise TypeError(v)


def pb_struct(obj: dict) -> bytes:
    return b"".join(field(1, field(1, k.encode()) + field(2, pb_value(v))) for k, v in obj.items())


# ---------------------------------------------------------------- p256_signature and p384_signature inputs

# The layout of harness::ecdsa_signature (keep in step with tests/fuzz/harness/ecdsa_signature.rs).
ECDSA_OPS = ["flip", "xor", "set_r", "set_s", "add_n", "negate", "nudge", "swap", "truncate", "extend", "resign",
             "nonce", "craft", "key_set", "key_map", "key_flip"]
# Indices into the harness's VALUES (the same names for both curves).
ECDSA_VALUES = ["0", "1", "2", "n-1", "n", "n+1", "p-1", "p", "p+1", "max", "p-n", "gx", "gy", "2^255", "(n-1)/2",
                "(n+1)/2"]
ECDSA_RAW, ECDSA_PREHASH = 6, 8
ECDSA_KEY_G, ECDSA_KEY_MINUS_G, ECDSA_KEY_2G = 3, 4, 5
ECDSA_MESSAGE = b"eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJmdXp6In0"
# (size in bytes, n, p, Gx, Gy, hash) per target.
ECDSA_CURVES = {
    "p256_signature": (32, P256_ORDER,
                       0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF,
                       0x6B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C296,
                       0x4FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5, hashlib.sha256),
    "p384_signature": (48, P384_ORDER, 2**384 - 2**128 - 2**96 + 2**32 - 1,
                       0xAA87CA22BE8B05378EB1C71EF320AD746E1D3B628BA79B9859F741E082542A385502F25DBF55296C3A545E3872760AB7,
                       0x3617DE4A96262C6F5D9E98BF9292DC29F8F41DBD289A147CE9DA3113B5F0B8C00A60B1CE1D7E819D7A431D7C90EA0E5F,
                       hashlib.sha384),
}


def ecdsa_op(name, a=0, b=0):
    return bytes([ECDSA_OPS.index(name), a, b])


def ecdsa_value(name):
    return ECDSA_VALUES.index(name)


def ecdsa_msg(key, *ops, message=ECDSA_MESSAGE):
    return bytes([key, len(message)]) + message + b"".join(ops)


def ecdsa_digest(key, digest, *ops):
    return bytes([key | ECDSA_PREHASH]) + digest + b"".join(ops)


def ecdsa_seeds(target):
    size, order, p, gx, gy, hash_ = ECDSA_CURVES[target]
    v, op, msg, dig = ecdsa_value, ecdsa_op, ecdsa_msg, ecdsa_digest
    digest = hash_(ECDSA_MESSAGE).digest()
    seeds = {f"valid_key{k}": msg(k) for k in range(6)}
    seeds.update({f"valid_key{k}_prehash": dig(k, digest) for k in range(6)})
    seeds.update({
        "valid_empty_message": bytes([0, 0]),
        "digest_max": dig(0, b"\xff" * size),
        "digest_n": dig(1, order.to_bytes(size, "big")),
        "digest_zero": dig(2, bytes(size)),
        "bit_flip": msg(0, op("flip", 0, 200)),
        "xor_last": msg(1, op("xor", 2 * size - 1, 0x80)),
        "high_s": msg(0, op("negate", 0)),
        "negate_r": msg(2, op("negate", 1)),
        "r_plus_n": msg(0, op("add_n", 0)),
        "s_plus_n": msg(1, op("add_n", 1)),
        "r_one_plus_n": msg(0, op("set_r", v("1")), op("add_n", 0)),
        "nudge_s": msg(0, op("nudge", 1, 0xff)),
        "swap": msg(2, op("swap")),
        "truncate": msg(0, op("truncate", 2 * size - 1)),
        "truncate_empty": msg(0, op("truncate", 0)),
        "extend": msg(1, op("extend", 0, 0)),
        "resign_other_key": msg(0, op("resign", 1)),
        "nonce_one": msg(0, op("nonce", v("1"))),
        "nonce_minus_one": dig(1, digest, op("nonce", v("n-1"))),
        "nonce_zero": msg(2, op("nonce", v("0"))),
        "craft_g_plus_g": dig(ECDSA_KEY_G, digest, op("craft", v("1"), v("1"))),
        "craft_g_minus_g": dig(ECDSA_KEY_MINUS_G, digest, op("craft", v("1"), v("1"))),
        "craft_2g_infinity": dig(ECDSA_KEY_2G, digest, op("craft", 137, v("1"))),  # (n-2)G + 2G
        "craft_u1_zero": dig(0, digest, op("craft", v("0"), v("2"))),
        "craft_u2_zero": dig(0, digest, op("craft", v("1"), v("0"))),
        "craft_halves": dig(ECDSA_KEY_G, digest, op("craft", v("(n-1)/2"), v("(n+1)/2"))),
        "key_negate_y": msg(0, op("key_map", 0)),
        "key_x_plus_p": msg(1, op("key_map", 1)),
        "key_y_plus_p": msg(2, op("key_map", 2)),
        "key_swap": msg(0, op("key_map", 3)),
        "key_x_p": msg(0, op("key_set", v("p"), 0)),
        "key_generator": msg(0, op("key_set", v("gx"), 0), op("key_set", v("gy"), 1)),
        "key_flip": msg(0, op("key_flip", 1, 255)),
    })
    for name, index in {"zero": "0", "one": "1", "n_minus_1": "n-1", "n": "n", "n_plus_1": "n+1",
                        "p_minus_1": "p-1", "max": "max"}.items():
        seeds[f"r_{name}"] = msg(0, op("set_r", v(index)))
        seeds[f"s_{name}"] = msg(1, op("set_s", v(index)))
    gxb, gyb = gx.to_bytes(size, "big"), gy.to_bytes(size, "big")
    seeds["raw_key_generator"] = bytes([ECDSA_RAW]) + gxb + gyb + bytes([len(ECDSA_MESSAGE)]) + ECDSA_MESSAGE
    seeds["raw_key_p"] = bytes([ECDSA_RAW + 1]) + p.to_bytes(size, "big") + gyb + bytes([0])
    seeds["raw_key_zero"] = bytes([ECDSA_RAW | ECDSA_PREHASH]) + bytes(2 * size) + digest
    return seeds


# ---------------------------------------------------------------- seed sets

def fixed_provider():
    return {"name": "fuzz-idp", "issuer": ISSUER, "audiences": ["gateway", "claude-desktop"],
            "jwks": {"inline": json.dumps(jwks())}, "required_claims": {"tenant": ["acme"]}}


def configs():
    sha = hashlib.sha256(API_KEY.encode()).hexdigest()
    return {
        "inline_and_api_key": {"providers": [fixed_provider()],
                               "api_keys": [{"name": "ci-bot", "sha256": sha, "groups": ["bots"]}]},
        "api_keys_only": {"api_keys": [{"name": "a", "sha256": sha}], "token_headers": ["X-Api-Key"],
                          "remove_credential": False},
        "entra": {"providers": [{"name": "entra", "preset": "entra", "tenant_id": TENANT, "client_id": ENTRA_CLIENT,
                                 "jwks": {"cluster": "entra_jwks", "refresh_seconds": 600, "max_stale_seconds": 86400},
                                 "required_scopes": ["llm.use"], "groups_overage": "deny"}],
                  "headers": {"user_id": "x-user", "groups": "x-groups"}},
        "okta": {"providers": [{"name": "okta", "preset": "okta", "org_url": "https://acme.okta.com/",
                                "authorization_server": "default", "client_id": "0oa1",
                                "jwks": {"cluster": "okta", "timeout_ms": 2000}}]},
        "google_opaque": {"providers": [{
            "name": "google", "preset": "google", "client_id": "1234-abc.apps.googleusercontent.com",
            "hosted_domains": ["acme.com"], "jwks": {"cluster": "google_jwks"},
            "opaque_tokens": {"style": "google_tokeninfo", "uri": "https://oauth2.googleapis.com/tokeninfo",
                              "cluster": "google_oauth", "cache_seconds": 120}}]},
        "keycloak_rfc7662": {"providers": [{
            "name": "keycloak", "issuer": "https://sso.acme.com/realms/eng", "audiences": ["gateway"],
            "jwks": {"discovery": True, "cluster": "sso", "clusters": {"keys.acme.com": "keys"}},
            "algorithms": ["RS256", "ES256"], "clock_skew_seconds": 30, "user_claims": ["preferred_username", "sub"],
            "opaque_tokens": {"style": "rfc7662", "uri": "https://sso.acme.com/realms/eng/introspect",
                              "cluster": "sso", "client_id": "gateway", "client_secret_env": "FUZZ_SECRET",
                              "max_pending": 16, "max_calls_per_second": 5}}]},
    }


def write(directory: Path, name: str, data):
    directory.mkdir(parents=True, exist_ok=True)
    (directory / name).write_bytes(data if isinstance(data, bytes) else data.encode())


def json_scan_seeds():
    """Request bodies and SSE event payloads as the filter reads them, and the corners of JSON."""
    return {
        "model_first": b'{"model":"claude-opus-4","max_tokens":1024,"stream":true,"messages":[{"role":"user","content":"hi"}]}',
        "model_last": b'{"messages":[{"role":"user","content":[{"type":"text","text":"say \\"model\\":\\"x\\""}]}],'
                      b'"metadata":{"model":"nested"},"model":"claude-haiku"}',
        "escaped_key": b'{"mod\\u0065l":"\\u0063laude \\ud83d\\ude00 \\u00e9\\n"}',
        "duplicate": b'{"model":"a","messages":[],"model":"b"}',
        "message_start": b'{"type":"message_start","message":{"id":"msg_1","model":"claude","usage":{"input_tokens":25,"output_tokens":1}}}',
        "message_delta": b'{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":15}}',
        "text_delta": b'{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hello \\u00e9 \xc3\xa9 \xf0\x9f\x98\x80"}}',
        "deep_path": '{"a":{"\u00e9":{"\U0001f600":"deep"}},"k":"abcde"}'.encode(),
        "numbers": b'[0,-0,1.5e-3,18446744073709551616,-12,1E+2,true,false,null,{"usage":{"output_tokens":18446744073709551615}}]',
        "nested": b'{"x":[[[[{"model":[{"model":"y"}]}]]]],"usage":[{"output_tokens":1}]}',
    }


def main():
    fixture = HERE / "fixture"
    write(fixture, "jwks.json", json.dumps(jwks(), indent=1) + "\n")
    write(fixture, "good_tokens.txt", "".join(tok + "\n" for tok, _ in GOOD))
    write(fixture, "signed_tokens.txt", "".join(tok + "\n" for tok, _ in GOOD + SIGNED_BAD))
    write(fixture, "diff_keys.json", json.dumps(diff_keys(), indent=1) + "\n")

    seeds = HERE / "seeds"
    if seeds.exists():
        shutil.rmtree(seeds)

    # token: raw tokens and << >> templates
    d = seeds / "token"
    for i, (tok, tpl) in enumerate(GOOD):
        write(d, f"good_{i}.txt", tok)
        write(d, f"good_{i}.tpl", tpl)
    for i, (tok, tpl) in enumerate(SIGNED_BAD):
        write(d, f"signed_bad_{i}.tpl", tpl)
    for i, (header, body) in enumerate(UNSIGNED):
        write(d, f"unsigned_{i}.tpl", f"<<{header}>>.<<{compact(body).decode()}>>.AAAA")
    write(d, "opaque.txt", "ya29.a0AfH6SMBx-not-a-jwt")
    write(d, "two_dots.txt", "a.b")

    # jwks
    d = seeds / "jwks"
    keys = jwks()["keys"]
    write(d, "fixed.json", json.dumps(jwks()))
    write(d, "mixed.json", json.dumps({"keys": [
        {"kty": "RSA", "use": "enc", "kid": "enc", "n": keys[0]["n"], "e": "AQAB"},
        {"kty": "RSA", "kid": "ops", "key_ops": ["verify"], "alg": "PS256", "n": keys[0]["n"], "e": "AQAB"},
        {"kty": "EC", "kid": "p384", "crv": "P-384", "x": "AAAA", "y": "AAAA"},
        {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
        keys[1], keys[2]]}))
    write(d, "small_rsa.json", json.dumps({"keys": [{"kty": "RSA", "kid": "1024", "n": b64(b"\xc1" * 128), "e": "AQAB"}]}))
    write(d, "bad_alg.json", json.dumps({"keys": [dict(keys[2], alg="RS256"), dict(keys[1], alg="HS256")]}))
    write(d, "entra_like.json", json.dumps({"keys": [dict(keys[0], x5t="abc", x5c=["MIIC"], issuer=ENTRA_ISSUER)]}))
    write(d, "not_keys.json", '{"keys":{"kty":"RSA"}}')

    # discovery (the target's issuer is https://issuer.example.com)
    d = seeds / "discovery"
    iss = "https://issuer.example.com"
    write(d, "good.json", json.dumps({"issuer": iss, "jwks_uri": iss + "/.well-known/jwks.json",
                                      "authorization_endpoint": iss + "/authorize",
                                      "id_token_signing_alg_values_supported": ["RS256"]}))
    write(d, "other_host.json", json.dumps({"issuer": iss, "jwks_uri": "https://keys.example.net:8443/certs?v=2"}))
    write(d, "mismatch.json", json.dumps({"issuer": iss + "/", "jwks_uri": iss + "/keys"}))
    write(d, "bad_uri.json", json.dumps({"issuer": iss, "jwks_uri": "https://user@evil/keys#x"}))
    write(d, "no_uri.json", json.dumps({"issuer": iss}))

    # config: JSON text and the protobuf Struct encoding of each
    d = seeds / "config"
    for name, cfg in configs().items():
        write(d, f"{name}.json", json.dumps(cfg, indent=2))
        write(d, f"{name}.pb", pb_struct(cfg))

    # decision: "name: value" lines; << >> in a value is base64url of what is between
    d = seeds / "decision"
    write(d, "api_key.txt", f"x-api-key: {API_KEY}\n")
    write(d, "api_key_bearer.txt", f"content-type: application/json\nauthorization: Bearer {API_KEY}\n")
    write(d, "wrong_key.txt", "x-api-key: sk-ant-api03-guess\n")
    write(d, "basic_then_key.txt", f"authorization: Basic dXNlcjpwYXNz\nx-api-key: {API_KEY}\n")
    write(d, "opaque_good.txt", f"authorization: bearer {OPAQUE_GOOD}\n")
    write(d, "opaque_bad.txt", f"authorization: Bearer {OPAQUE_BAD}\n")
    write(d, "opaque_pending.txt", f"x-api-key: {OPAQUE_PENDING}\n")
    write(d, "opaque_new.txt", "authorization: Bearer ya29.unknown-opaque\n")
    for i, (tok, tpl) in enumerate(GOOD):
        write(d, f"jwt_good_{i}.txt", f"authorization: Bearer {tok}\n")
    for i, (tok, tpl) in enumerate(SIGNED_BAD):
        write(d, f"jwt_bad_{i}.txt", f"authorization: Bearer {tpl}\n")
    write(d, "okta_pending.txt", "authorization: Bearer " +
          f'<<{{"alg":"RS256","kid":"k1"}}>>.<<{compact(claims(iss="https://acme.okta.com", aud="0oa1", cid="x")).decode()}>>.AAAA\n')
    write(d, "entra_v1.txt", "authorization: Bearer " +
          f'<<{{"alg":"RS256","kid":"new"}}>>.<<{compact(entra_claims(iss=f"https://sts.windows.net/{TENANT}/")).decode()}>>.AAAA\n')
    write(d, "keycloak_unfetched.txt", "authorization: Bearer " +
          f'<<{{"alg":"RS256"}}>>.<<{compact(claims(iss="https://sso.acme.com/realms/eng")).decode()}>>.AAAA\n')

    # opaque_answer: first byte picks style (low bit: 0 rfc7662, 1 google_tokeninfo) and status
    # ((byte >> 1) & 7 indexes 200, 400, 401, 500, 503, 200, 200, no response); the rest is the body.
    d = seeds / "opaque_answer"
    rfc = {"active": True, "client_id": "claude-desktop", "aud": ["gateway", "account"], "sub": "f:1:ada",
           "username": "ada", "scope": "openid llm", "exp": NOW + 3600, "iat": NOW - 10, "email": "ada@acme.com",
           "groups": ["eng"]}
    google = {"azp": "1234-abc.apps.googleusercontent.com", "aud": "1234-abc.apps.googleusercontent.com",
              "sub": "110169484474386276334", "scope": "openid email llm", "exp": str(NOW + 1800),
              "expires_in": "1800", "email": "ada@acme.com", "email_verified": "true", "access_type": "online"}
    write(d, "rfc_active", b"0" + json.dumps(rfc).encode())
    write(d, "rfc_inactive", b"0" + b'{"active":false}')
    write(d, "rfc_no_scope", b"0" + json.dumps(dict(rfc, scope="openid")).encode())
    write(d, "rfc_500", b"6" + b"upstream error")
    write(d, "google_ok", b"1" + json.dumps(google).encode())
    write(d, "google_expires_in", b"1" + json.dumps({k: v for k, v in google.items() if k != "exp"}).encode())
    write(d, "google_other_domain", b"1" + json.dumps(dict(google, email="eve@evil.com")).encode())
    write(d, "google_400", b"3" + b'{"error_description":"Invalid Value"}')

    # rsa_signature: first byte = key (bit 0; bit 7: small keys), PSS (bit 1), hash (((b >> 2) & 3) % 3),
    # mode ((b >> 4) & 7);
    # bytes 1-2 an offset; the rest a patch (see harness/mod.rs)
    d = seeds / "rsa_signature"
    for key in (0, 1):
        for pss in (0, 2):
            for h in (0, 4, 8):
                write(d, f"valid_k{key}_{'pss' if pss else 'pkcs1'}_h{h >> 2}", bytes([key | pss | h, 0, 0]))
    for key in (0x80, 0x81):
        for pss in (0, 2):
            write(d, f"valid_small_k{key & 1}_{'pss' if pss else 'pkcs1'}", bytes([key | pss, 0, 0]))
    write(d, "pkcs1_xor_type", bytes([0x10, 0, 1, 0x03]))
    write(d, "pkcs1_short_padding", bytes([0x30, 0, 0]) + b"\xff" * 7)
    write(d, "pkcs1_digestinfo_no_null", bytes([0x00, 0, 202]) + bytes.fromhex("302f300b0609608648016503040201"))
    write(d, "pss_trailer", bytes([0x22, 0, 0]) + b"\xbd")
    write(d, "pss_empty_salt", bytes([0x32, 0, 0]))
    write(d, "pss_long_salt", bytes([0x33, 0, 0]) + bytes(range(64)))
    write(d, "pss_top_byte", bytes([0x13, 0, 0, 0x80]))
    write(d, "sig_plus_n", bytes([0x52, 0, 0]))
    write(d, "sig_bit_flip", bytes([0x40, 0, 200, 0x01]))

    # jwt_simple_diff: byte 0 picks the mode and algorithm, then operations of 4 bytes (see the harness)
    d = seeds / "jwt_simple_diff"
    for name, data in diff_seeds().items():
        write(d, name, data)

    # p256_signature, p384_signature: byte 0 = key (bits 0-2; 6-7 raw x || y follows) | prehash (bit 3),
    # then a digest of the curve's size or a length byte and the message, then operations of 3 bytes
    # (see harness/ecdsa_signature.rs)
    for target in ECDSA_CURVES:
        for name, data in ecdsa_seeds(target).items():
            write(seeds / target, name, data)

    # json_scan: the input is the JSON document itself (see harness/json_scan.rs for the watched paths)
    d = seeds / "json_scan"
    for name, data in json_scan_seeds().items():
        write(d, name, data)


if __name__ == "__main__":
    main()
