"""Adversarial inputs, one table: each row is the input, the outcome this filter implements, and the
RFC / OpenID Connect rule behind it (in the row's id and `rule`). Every refused row also checks that
nothing reached the upstream and that the body does not echo the credential; every accepted row checks
what the upstream received.

One Envoy for the module, configured like the shared gateway, whose IdP also publishes hand-made JWKs
next to its four keys (the RSA key again under other `kid`s): `alg` pinned to RS256, `use: enc`,
`key_ops` without and with `verify`; and a second RSA key, `rsa-2`, placed so that it is the third key
an RS256 token fits and the second a PS256 token fits (a token without `kid` is tried against two).
"""

from __future__ import annotations

import base64
import functools
import json
import socket
import time
import uuid
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import httpx
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from e2e_gateway import AUDIENCE, PROVIDER, TRACE, EnvoyPool, Gateway, Result, forged, plugin_config
from e2e_expect import (EMAIL, GROUPS, IDENTITY_HEADERS, NAME, PROVIDER_HDR, USER_ID, assert_401)
from standins.idp import IdP, Keys, b64url, b64url_decode, sign
from standins.messages_api import MessagesAPI, Recorded

OK = "accepted"
ENVOY_400 = "refused by Envoy's HTTP codec"
B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


# ---- the module's gateway ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def adv_idp(keys: Keys) -> Iterator[IdP]:
    with IdP(audience=AUDIENCE, keys=keys) as idp:
        rsa_jwk = {k: v for k, v in idp.keys.jwk("rsa-1").items() if k != "use"}
        idp.extra_jwks = [
            {**rsa_jwk, "kid": "rsa-pinned-rs256", "alg": "RS256", "use": "sig"},
            _rsa_jwk(_generated_rsa("rsa-2"), "rsa-2"),
            {**rsa_jwk, "kid": "rsa-enc", "use": "enc"},
            {**rsa_jwk, "kid": "rsa-ops-sign", "key_ops": ["sign"]},
            {**rsa_jwk, "kid": "rsa-ops-verify", "key_ops": ["verify"]},
        ]
        yield idp


GOOGLE_ISS = "https://accounts.google.com"
OPAQUE_ISS = "https://sso.example.com/realms/corp"


@pytest.fixture(scope="module")
def gw(module_pool: EnvoyPool, api: MessagesAPI, adv_idp: IdP) -> Gateway:
    """The shared gateway's configuration with a credential limit of 32 KiB, plus a Google-preset
    provider with an explicit required_claims (issue #14 item 3) and an opaque-token provider whose
    answers must meet required_claims (item 2), both with the IdP's RSA key inline."""
    config = plugin_config(adv_idp)
    one_key = json.dumps({"keys": [adv_idp.keys.jwk("rsa-1")]})
    config["providers"] += [
        {"name": "google", "preset": "google", "client_id": AUDIENCE, "hosted_domains": ["acme.com"],
         "required_claims": {"azp": [AUDIENCE]}, "jwks": {"inline": one_key}},
        {"name": "corp-sso", "issuer": OPAQUE_ISS, "audiences": [AUDIENCE], "jwks": {"inline": one_key},
         "required_claims": {"tenant": ["acme"]}, "groups_overage": "deny",
         "opaque_tokens": {"style": "rfc7662", "uri": OPAQUE_ISS + "/protocol/openid-connect/token/introspect",
                           "cluster": "idp"}},
    ]
    config["limits"] = {"max_credential_bytes": 32 * 1024}
    return module_pool.gateway("adversarial", api, adv_idp, config)


# ---- building tokens ---------------------------------------------------------------------------------------
def jws(idp: IdP, header: dict[str, Any] | None = None, claims: dict[str, Any] | None = None, *,
        raw_header: bytes | None = None, raw_claims: bytes | None = None, sign_alg: str = "RS256",
        key: Any = None, edit: Callable[[str, str], tuple[str, str]] | None = None,
        edit_sig: Callable[[str], str] | None = None) -> str:
    """A JWS compact token signed over exactly the segments it carries. `header`/`claims` update the
    defaults (None removes a member); `raw_*` replace the JSON text; `edit` rewrites the two encoded
    segments before signing (so the signature stays valid over what is sent); `edit_sig` rewrites the
    encoded signature."""
    hdr: dict[str, Any] = {"alg": "RS256", "typ": "JWT", "kid": "rsa-1"}
    body = idp.default_claims()
    for target, changes in ((hdr, header), (body, claims)):
        for k, v in (changes or {}).items():
            if v is None:
                target.pop(k, None)
            else:
                target[k] = v
    h = b64url(raw_header if raw_header is not None else json.dumps(hdr, separators=(",", ":")).encode())
    p = b64url(raw_claims if raw_claims is not None else json.dumps(body, separators=(",", ":")).encode())
    if edit is not None:
        h, p = edit(h, p)
    s = b64url(sign(sign_alg, key if key is not None else idp.keys.private["rsa-1"], f"{h}.{p}".encode()))
    if edit_sig is not None:
        s = edit_sig(s)
    return f"{h}.{p}.{s}"


def _lenient(segment: str) -> bytes:
    """What a permissive decoder makes of a segment (stray bits ignored)."""
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def padded(segment: str) -> str:
    assert len(segment) % 4, "segment length is a multiple of 4: nothing to pad"
    return segment + "=" * (-len(segment) % 4)


def _has_unused_bits(segment: str) -> bool:
    """The last character carries unused bits (length 2 or 3 mod 4), all zero as they must be."""
    return len(segment) % 4 in (2, 3) and B64.index(segment[-1]) & {2: 0b1111, 3: 0b11}[len(segment) % 4] == 0


def stray_bits(segment: str) -> str:
    """The same bytes with non-zero unused bits in the last character (RFC 4648 §3.5)."""
    unused = {2: 0b1111, 3: 0b11}[len(segment) % 4]
    last = B64.index(segment[-1])
    assert last & unused == 0
    out = segment[:-1] + B64[last | 1]
    assert _lenient(out) == _lenient(segment)
    return out


def _claims_with(idp: IdP, want: Callable[[str], bool]) -> dict[str, Any]:
    """Claims whose base64url encoding satisfies `want` (a filler claim is varied until it does)."""
    for i in range(5000):
        claims = {**idp.default_claims(), "f": "~" * (i % 7) + "?" * (i // 7 % 5) + ">" * (i // 35)}
        if want(b64url(json.dumps(claims, separators=(",", ":")).encode())):
            return claims
    raise AssertionError("no filler found")


def _plain(idp: IdP, want: Callable[[str], bool], **kw: Any) -> str:
    return jws(idp, claims=_claims_with(idp, want), **kw)


def _header_not_multiple_of_4() -> dict[str, Any]:
    """Header changes whose encoding is not a multiple of 4 characters long (so padding shows)."""
    for n in range(4):
        hdr = {"alg": "RS256", "typ": "JWT", "kid": "rsa-1", "x": "y" * n}
        if len(b64url(json.dumps(hdr, separators=(",", ":")).encode())) % 4:
            return {"x": "y" * n}
    raise AssertionError("unreachable")


def _payload_alphabet(idp: IdP, url_char: str, std_char: str) -> str:
    """A payload whose base64url form has `url_char`, sent with the standard alphabet's `std_char`."""
    claims = _claims_with(idp, lambda p: url_char in p)
    return jws(idp, claims=claims, edit=lambda h, p: (h, p.replace(url_char, std_char)))


def _sig_with(idp: IdP, url_char: str, std_char: str) -> str:
    for i in range(200):
        token = jws(idp, claims={"jti": f"j{i}"})
        if url_char in token.split(".")[2]:
            h, p, s = token.split(".")
            return f"{h}.{p}.{s.replace(url_char, std_char)}"
    raise AssertionError("no signature with that character")


def _der_es256(idp: IdP) -> str:
    """ES256 with a DER-encoded signature instead of the fixed-width r||s (RFC 7518 §3.4)."""
    h = b64url(json.dumps({"alg": "ES256", "typ": "JWT", "kid": "ec-1"}).encode())
    p = b64url(json.dumps(idp.default_claims()).encode())
    der = idp.keys.private["ec-1"].sign(f"{h}.{p}".encode(), ec.ECDSA(hashes.SHA256()))
    return f"{h}.{p}.{b64url(der)}"


@functools.cache
def _generated_rsa(kid: str) -> Any:
    """An RSA-2048 key made once per run: "attacker" is in no JWKS, "rsa-2" in the module's IdP's."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _foreign() -> Any:
    return _generated_rsa("attacker")


def _rsa_jwk(key: Any, kid: str) -> dict[str, Any]:
    pub = key.public_key().public_numbers()
    return {"kty": "RSA", "kid": kid, "n": b64url(pub.n.to_bytes(256, "big")), "e": "AQAB"}


def _foreign_jwk() -> dict[str, Any]:
    return _rsa_jwk(_foreign(), "attacker")


P384_ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFC7634D81F4372DDF581A0DB248B0A77AECEC196ACCC52973


def _forged_es384(idp: IdP) -> str:
    """An ES384 token naming the IdP's P-384 key whose claims were changed after signing: r and s are
    well-formed (48 bytes each, in [1, n-1]), so only the curve arithmetic can tell it is wrong."""
    token = forged(jws(idp, {"alg": "ES384", "kid": "ec-384"}, sign_alg="ES384", key=idp.keys.private["ec-384"]),
                   "admin")
    sig = b64url_decode(token.split(".")[2])
    assert len(sig) == 96
    assert all(0 < int.from_bytes(half, "big") < P384_ORDER for half in (sig[:48], sig[48:]))
    return token


def _jwe() -> str:
    h = b64url(json.dumps({"alg": "RSA-OAEP-256", "enc": "A256GCM", "kid": "rsa-1"}).encode())
    return ".".join([h, b64url(b"k" * 256), b64url(b"iv" * 6), b64url(b"ciphertext"), b64url(b"t" * 16)])


def _now() -> int:
    return int(time.time())


# ---- the table ---------------------------------------------------------------------------------------------
@dataclass
class Case:
    name: str
    rule: str
    make: Callable[[IdP], Any]   # a token (sent as `Authorization: Bearer <token>`), a header list, or Raw
    expect: str                  # OK, ENVOY_400, or the exact 401 message
    user: str = "user-123"       # OK rows: the user id the upstream must see
    check: Callable[[Recorded], None] | None = None   # OK rows: more about what the upstream saw
    calls: int | None = None     # introspection calls the row must cause, counted at the stand-in


@dataclass
class Raw:
    """Header lines written on the socket as they are (what an HTTP client library would refuse)."""
    lines: str
    token: str


def utf8(value: str) -> str:
    """The stand-in reads header bytes as ISO-8859-1; this undoes that for UTF-8 values."""
    return value.encode("latin-1").decode("utf-8")


def only_identity(seen: Recorded, **want: str) -> None:
    """Each identity header at most once, exactly these (by header name), and no injected ones."""
    got = {h: seen.header_all(h) for h in IDENTITY_HEADERS}
    expected = {h: [] for h in IDENTITY_HEADERS}
    for h, v in want.items():
        expected[h] = [v]
    assert {h: [utf8(x) for x in vs] for h, vs in got.items()} == expected
    for k, v in seen.headers:
        assert "\r" not in v and "\n" not in v and "\0" not in v, (k, v)
    assert seen.header_all("x-api-key") == [] and seen.header_all("authorization") == []


def _headers(**kw: str) -> dict[str, str]:
    names = {"user": USER_ID, "email": EMAIL, "name": NAME, "groups": GROUPS, "provider": PROVIDER_HDR}
    return {names[k]: v for k, v in kw.items()}


def _inj(claims: dict[str, Any], **want: str) -> tuple[Callable[[IdP], str], Callable[[Recorded], None]]:
    def check(seen: Recorded) -> None:
        only_identity(seen, **_headers(provider=PROVIDER, **want))
    return (lambda i: i.mint(claims=claims)), check


def _twins(i: IdP) -> list[tuple[str, str]]:
    return [("authorization", "Bearer " + jws(i)), ("x_gateway_user_email", "evil@x.example"),
            ("X_GATEWAY_USER_ID", "evil"), ("x_gateway_user_groups", "admins"), ("x_gateway_tenant_id", "t2"),
            ("x_gateway_groups_overage", "false"), ("x_gateway_provider", "api-key"), ("x_gateway_user_name", "Eve")]


def _no_twins(seen: Recorded) -> None:
    only_identity(seen, **_headers(provider=PROVIDER, user="user-123", email="user@example.com", name="Test User"))
    assert not [k for k, _ in seen.headers if "_" in k and k.lower().replace("_", "-") in IDENTITY_HEADERS]


def _opaque(i: IdP, **answer: Any) -> list[tuple[str, str]]:
    token = "opq_" + uuid.uuid4().hex
    i.add_opaque(token, {"sub": "opaque-user", "aud": AUDIENCE, "exp": _now() + 600, **answer})
    return [("authorization", f"Bearer {token}")]


def _google(i: IdP, **claims: Any) -> str:
    return jws(i, claims={"iss": GOOGLE_ISS, "azp": AUDIENCE, "email": "eve@gmail.com", "email_verified": True,
                          **claims})


def _no_email(seen: Recorded) -> None:
    only_identity(seen, **_headers(provider=PROVIDER, user="user-123", name="Test User"))


KEY_NOT_FOUND = "token signing key not found"
MALFORMED = "malformed token"
ALG = "token algorithm not allowed"

CASES: list[Case] = [
    # -- JOSE header -----------------------------------------------------------------------------------------
    Case("crit-unknown-extension", "RFC7515-4.1.11",
         lambda i: jws(i, {"crit": ["urn:example:must-understand"], "urn:example:must-understand": True}),
         MALFORMED),
    Case("crit-empty-list", "RFC7515-4.1.11",
         lambda i: jws(i, {"crit": []}), MALFORMED),
    Case("duplicate-header-member-alg", "RFC7515-4",
         lambda i: jws(i, raw_header=b'{"alg":"RS256","kid":"rsa-1","alg":"none"}'), MALFORMED),
    Case("duplicate-header-member-kid", "RFC7515-4",
         lambda i: jws(i, raw_header=b'{"alg":"RS256","kid":"attacker","kid":"rsa-1"}'), MALFORMED),
    Case("duplicate-claim-sub", "RFC7519-4",
         lambda i: jws(i, raw_claims=json.dumps(i.default_claims())[:-1].encode() + b',"sub":"admin"}'),
         MALFORMED),
    Case("duplicate-claim-nested", "RFC7519-4 (RFC8259-4 names SHOULD be unique; refused at any depth)",
         lambda i: jws(i, raw_claims=json.dumps(i.default_claims())[:-1].encode()
                       + b',"ctx":{"role":"user","role":"admin"}}'), MALFORMED),
    # -- base64url: canonical form only ----------------------------------------------------------------------
    Case("padding-in-header", "RFC7515-2 base64url without padding",
         lambda i: jws(i, _header_not_multiple_of_4(), edit=lambda h, p: (padded(h), p)), MALFORMED),
    Case("padding-in-payload", "RFC7515-2 base64url without padding",
         lambda i: _plain(i, lambda p: len(p) % 4 != 0, edit=lambda h, p: (h, padded(p))), MALFORMED),
    Case("padding-in-signature", "RFC7515-2 base64url without padding",
         lambda i: jws(i, edit_sig=padded), MALFORMED),
    Case("stray-bits-in-payload", "RFC4648-3.5 canonical encoding (RFC7515-2)",
         lambda i: _plain(i, _has_unused_bits, edit=lambda h, p: (h, stray_bits(p))), MALFORMED),
    Case("stray-bits-in-signature", "RFC4648-3.5 canonical encoding (RFC7515-2)",
         lambda i: jws(i, edit_sig=stray_bits), MALFORMED),
    Case("plus-in-payload", "RFC7515-2 base64url alphabet (RFC4648-5)",
         lambda i: _payload_alphabet(i, "-", "+"), MALFORMED),
    Case("slash-in-payload", "RFC7515-2 base64url alphabet (RFC4648-5)",
         lambda i: _payload_alphabet(i, "_", "/"), MALFORMED),
    Case("plus-in-signature", "RFC7515-2 base64url alphabet (RFC4648-5)",
         lambda i: _sig_with(i, "-", "+"), MALFORMED),
    # -- which key may verify --------------------------------------------------------------------------------
    Case("rs256-token-naming-es256-jwk", "RFC7517-4.4 JWK alg",
         lambda i: jws(i, {"kid": "ec-1"}), KEY_NOT_FOUND),
    Case("ps256-token-naming-rs256-pinned-jwk", "RFC7517-4.4 JWK alg",
         lambda i: jws(i, {"alg": "PS256", "kid": "rsa-pinned-rs256"}, sign_alg="PS256"), KEY_NOT_FOUND),
    Case("rs256-token-naming-rs256-pinned-jwk", "RFC7517-4.4 JWK alg (control)",
         lambda i: jws(i, {"kid": "rsa-pinned-rs256"}), OK),
    Case("jwk-use-enc", "RFC7517-4.2 use",
         lambda i: jws(i, {"kid": "rsa-enc"}), KEY_NOT_FOUND),
    Case("jwk-key_ops-without-verify", "RFC7517-4.3 key_ops",
         lambda i: jws(i, {"kid": "rsa-ops-sign"}), KEY_NOT_FOUND),
    Case("jwk-key_ops-with-verify", "RFC7517-4.3 key_ops (control)",
         lambda i: jws(i, {"kid": "rsa-ops-verify"}), OK),
    Case("jku-header-ignored", "RFC8725-3.10 (keys only from the configured source)",
         lambda i: jws(i, {"kid": "attacker", "jku": "http://evil.example/jwks.json"}, key=_foreign()),
         KEY_NOT_FOUND),
    Case("embedded-jwk-header-ignored", "RFC7515-4.1.3 / RFC8725-3.10",
         lambda i: jws(i, {"jwk": _foreign_jwk()}, key=_foreign()), "token signature invalid"),
    Case("x5u-header-ignored", "RFC7515-4.1.5 / RFC8725-3.10",
         lambda i: jws(i, {"x5u": "http://evil.example/cert.pem"}, key=_foreign()),
         "token signature invalid"),
    Case("es256-der-signature", "RFC7518-3.4 (R||S, not DER)",
         _der_es256, "token signature invalid"),
    Case("kid-not-a-string", "RFC7515-4.1.4 kid is a string",
         lambda i: jws(i, {"kid": 1}), MALFORMED),
    # -- NumericDate -----------------------------------------------------------------------------------------
    Case("exp-as-string", "RFC7519-2 NumericDate",
         lambda i: jws(i, claims={"exp": str(_now() + 3600)}), MALFORMED),
    Case("nbf-as-string", "RFC7519-2 NumericDate",
         lambda i: jws(i, claims={"nbf": str(_now() - 5)}), MALFORMED),
    Case("iat-as-string", "RFC7519-2 NumericDate",
         lambda i: jws(i, claims={"iat": str(_now())}), MALFORMED),
    Case("exp-nbf-iat-as-floats", "RFC7519-2 NumericDate may be non-integer",
         lambda i: jws(i, claims={"exp": _now() + 3600.5, "nbf": _now() - 5.25, "iat": _now() - 0.5}), OK),
    Case("exp-negative", "RFC7519-4.1.4",
         lambda i: jws(i, claims={"exp": -1, "nbf": None, "iat": None}), "token expired"),
    Case("nbf-iat-negative", "RFC7519-2 NumericDate before 1970: in the past (jwt-simple refuses; listed)",
         lambda i: jws(i, claims={"nbf": -1, "iat": -1}), OK),
    Case("exp-huge-1e300", "RFC7519-4.1.4 (far future)",
         lambda i: jws(i, claims={"exp": 1e300}), OK),
    Case("nbf-huge-1e300", "RFC7519-4.1.5",
         lambda i: jws(i, claims={"nbf": 1e300}), "token not yet valid"),
    # -- aud, iss, typ ---------------------------------------------------------------------------------------
    Case("aud-empty-array", "RFC7519-4.1.3 / OIDC-Core-2 aud contains the client",
         lambda i: jws(i, claims={"aud": []}), "audience not allowed"),
    Case("aud-array-with-non-string", "RFC7519-4.1.3 StringOrURI",
         lambda i: jws(i, claims={"aud": [AUDIENCE, 7]}), MALFORMED),
    Case("iss-with-trailing-slash", "OIDC-Core-3.1.3.7 exact issuer match",
         lambda i: jws(i, claims={"iss": i.issuer + "/"}),
         "token issuer differs from a trusted issuer only by a trailing slash"),
    Case("typ-JWT", "RFC7519-5.1", lambda i: jws(i, {"typ": "JWT"}), OK),
    Case("typ-at+jwt", "RFC9068-2.1 (access tokens accepted too)", lambda i: jws(i, {"typ": "at+jwt"}), OK),
    Case("typ-JOSE", "RFC7515-4.1.9", lambda i: jws(i, {"typ": "JOSE"}), OK),
    Case("typ-absent", "RFC7515-4.1.9 optional", lambda i: jws(i, {"typ": None}), OK),
    # -- algorithms ------------------------------------------------------------------------------------------
    Case("alg-none", "RFC8725-3.1 / RFC7518-3.6",
         lambda i: jws(i, {"alg": "none"}, sign_alg="none"), ALG),
    Case("alg-none-with-signature", "RFC8725-3.1",
         lambda i: jws(i, {"alg": "none"}), ALG),
    Case("alg-hs256-rsa-pem-as-secret", "RFC8725-3.1 / 2.1 key confusion",
         lambda i: jws(i, {"alg": "HS256"}, sign_alg="HS256", key=i.keys.rsa_public_pem()), ALG),
    Case("alg-hs512-rsa-modulus-as-secret", "RFC8725-3.1 / 2.1 key confusion",
         lambda i: jws(i, {"alg": "HS512"}, sign_alg="HS512",
                       key=i.keys.private["rsa-1"].public_key().public_numbers().n.to_bytes(256, "big")), ALG),
    Case("alg-with-trailing-space", "RFC7515-4.1.1 case-sensitive exact name",
         lambda i: jws(i, {"alg": "RS256 "}), ALG),
    Case("alg-lowercase", "RFC7515-4.1.1 case-sensitive exact name",
         lambda i: jws(i, {"alg": "rs256"}), ALG),
    Case("alg-as-number", "RFC7515-4.1.1 alg is a string",
         lambda i: jws(i, {"alg": 256}), MALFORMED),
    Case("alg-absent", "RFC7515-4.1.1 alg is required",
         lambda i: jws(i, {"alg": None}), MALFORMED),
    # -- shape and size --------------------------------------------------------------------------------------
    Case("jwe-five-segments", "RFC7516-7.1 (JWE is not a JWS)", lambda i: _jwe(), MALFORMED),
    Case("two-segments", "RFC7515-7.1 compact serialization",
         lambda i: ".".join(jws(i).split(".")[:2]), MALFORMED),
    Case("four-segments", "RFC7515-7.1 compact serialization", lambda i: jws(i) + ".e30", MALFORMED),
    Case("credential-20KB-under-configured-limit", "RFC6750-2.1 (limits.max_credential_bytes 32768; issue #14 item 10)",
         lambda i: jws(i, claims={"pad": "x" * 20 * 1024}), OK),
    Case("credential-40KB-over-configured-limit", "RFC6750-2.1 (limits.max_credential_bytes 32768; issue #14 item 10)",
         lambda i: jws(i, claims={"pad": "x" * 40 * 1024}),
         "credential too large (over the gateway's limits.max_credential_bytes)"),
    # -- issue #14: identity that could be spoofed or widened, secrets sent where they do not belong ---------
    Case("underscore-twins-of-identity-headers", "RFC3875-4.1.18 CGI maps _ and - alike (issue #14 item 1)",
         _twins, OK, check=_no_twins),
    Case("introspection-answer-misses-required-claim", "RFC7662-2.2 + required_claims (issue #14 item 2)",
         lambda i: _opaque(i, tenant="evil", hasgroups=True), "token not issued for this gateway", calls=1),
    Case("google-preset-hd-pin-kept-with-required-claims", "OIDC-Core-3.1.3.7 + preset pin (issue #14 item 3)",
         lambda i: _google(i, hd=None), "account domain not allowed"),
    Case("email-verified-false-not-forwarded", "OIDC-Core-5.1 email_verified (issue #14 item 4)",
         lambda i: jws(i, claims={"email_verified": False}), OK, check=_no_email),
    Case("user-id-with-spaces-and-crlf", "RFC9110-5.5 refused, never rewritten (issue #14 item 5)",
         lambda i: jws(i, claims={"sub": " admin\r\n"}),
         "token user id has control characters or leading or trailing spaces"),
    Case("user-id-over-1024-bytes", "refused, never cut (issue #14 item 5)",
         lambda i: jws(i, claims={"sub": "a" * 1025}), "token user id is over 1024 bytes"),
    Case("sub-as-number", "RFC7519-4.1.2 StringOrURI (issue #14 item 6)",
         lambda i: jws(i, claims={"sub": 12345}), "token sub claim is not a string"),
    Case("client-api-key-not-introspected", "RFC7662-2.1 bearer tokens only (issue #14 item 7)",
         lambda i: [("x-api-key", "sk-ant-api03-" + "k" * 40)], "invalid API key", calls=0),
    Case("es384-validly-signed", "RFC7518-3.4 ES384 on P-384 (issue #14 item 8)",
         lambda i: jws(i, {"alg": "ES384", "kid": "ec-384"}, sign_alg="ES384", key=i.keys.private["ec-384"]), OK),
    Case("es384-forged-r-s-in-range", "RFC7518-3.4 ES384 on P-384 (issue #14 item 8)",
         _forged_es384, "token signature invalid"),
    # Keys fitting an RS256 token, in JWKS order: rsa-1, rsa-pinned-rs256 (the same key), rsa-2; fitting
    # PS256: rsa-1, rsa-2. A token without `kid` is tried against the first two only.
    Case("no-kid-first-rsa-key", "RFC7515-4.1.4 kid is optional (issue #14 item 8)",
         lambda i: jws(i, {"kid": None}), OK),
    Case("no-kid-second-fitting-rsa-key", "RFC7515-4.1.4 kid is optional (issue #14 item 8)",
         lambda i: jws(i, {"alg": "PS256", "kid": None}, sign_alg="PS256", key=_generated_rsa("rsa-2")), OK),
    Case("no-kid-third-fitting-rsa-key", "RFC7515-4.1.4 kid optional; two keys tried at most (issue #14 item 8)",
         lambda i: jws(i, {"kid": None}, key=_generated_rsa("rsa-2")), "token signature invalid"),
    Case("kid-names-third-fitting-rsa-key", "RFC7515-4.1.4 control: the same key named by kid (issue #14 item 8)",
         lambda i: jws(i, {"kid": "rsa-2"}, key=_generated_rsa("rsa-2")), OK),
    # -- whitespace and line breaks in the credential --------------------------------------------------------
    Case("interior-space", "RFC7515-7.1 no whitespace / RFC6750-2.1 b64token",
         lambda i: (lambda t: t[:40] + " " + t[40:])(jws(i)), MALFORMED),
    Case("interior-tab", "RFC7515-7.1 no whitespace / RFC6750-2.1 b64token",
         lambda i: [("authorization", "Bearer " + (lambda t: t[:40] + "\t" + t[40:])(jws(i)))], MALFORMED),
    Case("interior-obs-fold-line-break", "RFC9112-5.2 obs-fold (Envoy unfolds it to a space)",
         lambda i: (lambda t: Raw(f"Authorization: Bearer {t[:40]}\r\n {t[40:]}\r\n", t))(jws(i)), MALFORMED),
    Case("interior-bare-lf", "RFC9112-2.2 bare LF in a field value",
         lambda i: (lambda t: Raw(f"Authorization: Bearer {t[:40]}\n{t[40:]}\r\n", t))(jws(i)), ENVOY_400),
    Case("several-spaces-after-bearer", "RFC6750-2.1 1*SP",
         lambda i: [("authorization", "Bearer    " + jws(i))], OK),
    Case("tab-after-bearer", "RFC9110-5.6.3 OWS",
         lambda i: [("authorization", "Bearer\t" + jws(i))], OK),
    Case("trailing-spaces", "RFC9110-5.5 surrounding whitespace is not part of the value",
         lambda i: (lambda t: Raw(f"Authorization: Bearer {t}   \t \r\n", t))(jws(i)), OK),
]

# Claim values that try to reach the upstream as extra or changed headers: CR, LF and NUL are removed
# (RFC 9110 §5.5 forbids them in field values), other UTF-8 passes as is (obs-text, RFC 9110 §5.5). A
# user id is never rewritten: one with such characters is refused (the user-id-* rows above).
INJECTIONS: list[tuple[str, dict[str, Any], dict[str, str]]] = [
    ("crlf-in-name", {"sub": "inj-1", "name": "x\r\nx-gateway-user-id: admin"},
     {"user": "inj-1", "name": "xx-gateway-user-id: admin", "email": "user@example.com"}),
    ("lf-in-email", {"sub": "inj-3", "email": "a@b.example\nx-api-key: stolen", "name": None},
     {"user": "inj-3", "email": "a@b.examplex-api-key: stolen"}),
    ("crlf-in-group", {"sub": "inj-4", "groups": ["eng\r\nx-gateway-user-groups: admins", "ops"], "name": None},
     {"user": "inj-4", "email": "user@example.com", "groups": "engx-gateway-user-groups: admins,ops"}),
    ("nul-in-values", {"sub": "inj-5", "name": "Null\u0000Byte", "email": None},
     {"user": "inj-5", "name": "NullByte"}),
    ("c1-control-nel", {"sub": "inj-6", "name": "C1\u0085control", "email": None},
     {"user": "inj-6", "name": "C1control"}),
    ("non-ascii-latin", {"sub": "jörg-ß", "name": "José Müller", "email": None},
     {"user": "jörg-ß", "name": "José Müller"}),
    ("non-ascii-emoji", {"sub": "inj-8", "name": "Ada 🚀", "groups": ["🔥team", "ops"], "email": None},
     {"user": "inj-8", "name": "Ada 🚀", "groups": "🔥team,ops"}),
]
for _name, _claims, _want in INJECTIONS:
    _make, _check = _inj(_claims, **_want)
    CASES.append(Case(f"header-injection-{_name}", "RFC9110-5.5 field values", _make, OK,
                      user=_want["user"], check=_check))


# ---- sending -----------------------------------------------------------------------------------------------
def _raw(gw: Gateway, raw: Raw) -> Result:
    trace = uuid.uuid4().hex
    req = (f"GET /v1/models HTTP/1.1\r\nHost: gateway\r\n{TRACE}: {trace}\r\n{raw.lines}"
           f"Connection: close\r\n\r\n")
    data = b""
    with socket.create_connection(("127.0.0.1", gw.envoy.port), timeout=15) as s:
        s.sendall(req.encode("latin-1"))
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = httpx.Headers([(k.strip(), v.strip()) for k, _, v in (ln.partition(":") for ln in lines)])
    return Result(status=int(status_line.split()[1]), headers=headers, body=body, http_version="HTTP/1.1",
                  trace=trace, upstream=gw.api.find(TRACE, trace))


@pytest.mark.parametrize("case", [pytest.param(c, id=f"{c.name}--{c.rule.split(' ')[0]}") for c in CASES])
def test_adversarial(gw: Gateway, adv_idp: IdP, case: Case) -> None:
    calls_before = len(adv_idp.introspections)
    made = case.make(adv_idp)
    if isinstance(made, Raw):
        r, secret = _raw(gw, made), made.token
    elif isinstance(made, list):
        r, secret = gw.request("GET", "/v1/models", headers=made), made[0][1].split()[-1]
    else:
        r, secret = gw.request("GET", "/v1/models", token=made), made
    why = f"{case.name} ({case.rule})"
    if case.expect == OK:
        assert r.status == 200, f"{why}: {r.status} {r.text[:200]}"
        seen = r.seen
        assert [utf8(v) for v in seen.header_all(USER_ID)] == [case.user], why
        assert seen.header_all(PROVIDER_HDR) == [PROVIDER], why
        if case.check is not None:
            case.check(seen)
    elif case.expect == ENVOY_400:
        assert r.status == 400, f"{why}: {r.status} {r.text[:200]}"
        assert r.upstream == [], f"{why}: the upstream received the request"
        assert "www-authenticate" not in r.headers   # Envoy's codec answered, not the filter
    else:
        try:
            assert_401(r, case.expect, secrets=(secret,))
        except AssertionError as e:
            raise AssertionError(f"{why}: {e}") from None
    if case.calls is not None:
        assert len(adv_idp.introspections) - calls_before == case.calls, f"{why}: introspection calls"


def test_unusable_jwks_entries_are_logged_by_kid(gw: Gateway, adv_idp: IdP) -> None:
    """The keys the table relies on being skipped are skipped one by one, each with a warning naming its
    kid and why (docs/operations.md "Hygiene"); the usable ones load."""
    assert gw.request("GET", "/v1/models", token=adv_idp.mint()).status == 200
    lines = gw.envoy.log_text().splitlines()

    def logged(*parts: str) -> bool:
        return any(all(p in ln for p in parts) for ln in lines)

    # Values from the JWKS are quoted and escaped in the log line (they are untrusted text).
    assert logged("[warning]", 'skipped key kid="rsa-enc" reason="\\"use\\" is not \\"sig\\""'), gw.envoy.log_tail(30)
    assert logged("[warning]", 'skipped key kid="rsa-ops-sign" reason="\\"key_ops\\" does not allow \\"verify\\""')
    assert not logged('skipped key kid="rsa-ops-verify"') and not logged('skipped key kid="rsa-pinned-rs256"')
    assert not logged('skipped key kid="rsa-2"')
    assert logged("keys loaded provider=test-idp n=7")


def test_table_rows_are_unique_and_cite_a_rule() -> None:
    """Guard: row ids are unique and every row names its rule."""
    names = [c.name for c in CASES]
    assert len(names) == len(set(names))
    assert all(c.rule for c in CASES)
