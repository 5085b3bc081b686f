"""The variants `make bench` measures, in one table (`all_variants`), and the Envoy configuration of
each: the front listener's HTTP filters, rendered into bench/envoy.yaml.in."""

from __future__ import annotations

import json
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import budgets_example
from envoy_process import ROUTER, struct_configuration, wasm_filter
from settings import (AUDIENCE, ISSUER, MODEL, MODEL_FIRST_BODY, NOKID_RSA_KEYS, TEMPLATE,
                      UPSTREAM_BODY, USERS)
from token_pools import Keys

NATIVE_CACHE_SIZE = 1000
# The identity headers the filter sets by default (docs/configuration.md), from the claims the tokens carry; the
# filter also sets x-gateway-provider, which jwt_authn has no claim for.
IDENTITY_CLAIMS = [("x-gateway-user-id", "sub"), ("x-gateway-user-email", "email"),
                   ("x-gateway-user-name", "name"), ("x-gateway-user-groups", "groups")]
# What the wasm-headers baseline does to each request: what this filter does on a cache hit for a
# warm-pool user (the credential removed, the identity headers set), values of the same lengths.
HEADER_EDITS = "\n".join(["-authorization", "x-gateway-user-id: user-000042",
                          "x-gateway-user-email: user-000042@bench.example",
                          "x-gateway-user-name: Bench User user 42",
                          "x-gateway-user-groups: eng,ml-platform", "x-gateway-provider: bench"])



@dataclass(frozen=True)
class Variant:
    id: str
    kind: str             # none | noop-sdk | noop | noop-headers | native | native-cache | native-headers | filter
    alg: str              # RS256 | ES256 | "" (no auth)
    pool: str             # token file key
    label: str
    expect: int           # status of every measured response
    sanity: tuple[int, int]   # (valid, forged) expected statuses
    compare_native: str   # id of the native variant to compare with, "" for none
    tokens: str = ""      # suffix of its sanity-<tokens> pools, when not the alg's
    jwks: str = "jwks"    # the Keys field with its JWKS
    models: str = ""      # "": no models config; "open": a catalog, not enforced; "enforce": enforced
    body: str = ""        # "": tokens.lua's small body; "model-first": MODEL_FIRST_BODY
    budgets: bool = False  # envoy.filters.http.ratelimit with budgets.yaml's rate_limits after the filter
    compare: str = ""     # id of the variant this one adds to (the "+ vs" column of the extras table)


def all_variants() -> list[Variant]:
    out = [Variant("no-auth", "none", "", "warm-rs256", "no auth filter (plain proxy)", 200,
                   (200, 200), ""),
           Variant("wasm-noop-sdk", "noop-sdk", "", "warm-rs256",
                   "a Wasm filter that does nothing, every SDK callback exported", 200, (200, 200), ""),
           Variant("wasm-noop", "noop", "", "warm-rs256",
                   "the same with the callbacks it leaves at their default not exported "
                   "(tools/trim_exports.py, as `make build` does for this filter)", 200, (200, 200), ""),
           Variant("wasm-headers", "noop-headers", "", "warm-rs256",
                   "the same module, trimmed, making the host calls of this filter's cache hit and "
                   "nothing else: reads the request headers, removes `authorization`, sets the five "
                   "identity headers to fixed values", 200, (200, 200), "")]
    for alg in ("RS256", "ES256"):
        a = alg.lower()
        out += [
            Variant(f"native-{a}", "native", alg, f"cold-{a}",
                    "native jwt_authn, no cache, distinct tokens", 200, (200, 401), ""),
            Variant(f"native-cache-{a}", "native-cache", alg, f"warm-{a}",
                    f"native jwt_authn, jwt_cache_size {NATIVE_CACHE_SIZE}, {USERS} users", 200,
                    (200, 401), ""),
            Variant(f"native-headers-{a}", "native-headers", alg, f"warm-{a}",
                    "the same, and claim_to_headers writing the identity headers this filter "
                    "writes (the same job)", 200, (200, 401), ""),
            Variant(f"filter-cold-{a}", "filter", alg, f"cold-{a}",
                    "this filter, cold: every token distinct", 200, (200, 401), f"native-{a}"),
            Variant(f"filter-warm-{a}", "filter", alg, f"warm-{a}",
                    f"this filter, warm: {USERS} users' tokens reused", 200, (200, 401),
                    f"native-cache-{a}"),
        ]
    for alg in ("RS256", "ES256"):
        a = alg.lower()
        out.append(Variant(f"filter-flood-{a}", "filter", alg, f"forged-{a}",
                           "this filter, forged-token flood (known kid, bad signature)", 401,
                           (200, 401), ""))
    out += [Variant("filter-flood-es384", "filter", "ES384", "forged-es384",
                    "this filter, forged-token flood, ES384 (known kid, bad signature)", 401, (200, 401), ""),
            Variant("filter-flood-rs256-nokid", "filter", "RS256", "forged-rs256-nokid",
                    f"this filter, forged-token flood, RS256 without kid, {NOKID_RSA_KEYS} RSA keys in the JWKS",
                    401, (200, 401), "", tokens="rs256-nokid", jwks="jwks_nokid")]
    # What enforcing the model (issue #17) and the budgets (#18) add to the warm RS256 filter.
    out += [Variant("models-open", "filter", "RS256", "warm-rs256",
                    f"this filter, warm, a {len(MODEL_FIRST_BODY):,}-byte body with `model` first, "
                    "a one-model catalog, `models.enforce: false`", 200, (200, 401), "",
                    models="open", body="model-first"),
            Variant("models-enforce", "filter", "RS256", "warm-rs256",
                    "the same with `models.enforce: true`: each body is scanned for its `model` before "
                    "it is passed on", 200, (200, 401), "", models="enforce", body="model-first",
                    compare="models-open"),
            Variant("budgets", "filter", "RS256", "warm-rs256",
                    "this filter, warm, then envoy.filters.http.ratelimit with the rate_limits of "
                    "envoy/examples/budgets.yaml (rate, check, charge at stream end) asking "
                    "gateway-ratelimit on Redis; budgets never reached", 200, (200, 401), "",
                    budgets=True, compare="filter-warm-rs256")]
    return out


def select_variants(variants: list[Variant]) -> list[Variant]:
    wanted = [w.strip() for w in os.environ.get("BENCH_VARIANTS", "").split(",") if w.strip()]
    if not wanted:
        return variants
    picked = {v.id for v in variants if any(v.id == w or v.id.startswith(w) for w in wanted)}
    # a variant measured as an addition comes with what it adds to, in the same rounds
    picked |= {v.compare for v in variants if v.id in picked and v.compare}
    chosen = [v for v in variants if v.id in picked]
    if not chosen:
        sys.exit(f"bench: BENCH_VARIANTS={os.environ['BENCH_VARIANTS']!r} matches none of "
                 + ", ".join(v.id for v in variants))
    return chosen




def http_filters(v: Variant, keys: Keys, wasm: Path, noop: dict[str, Path]) -> list[dict[str, Any]]:
    router = ROUTER
    if v.kind == "none":
        return [router]
    if v.kind in noop:
        return [wasm_filter(noop[v.kind], None), router]
    if v.kind == "noop-headers":
        edits = {"@type": "type.googleapis.com/google.protobuf.StringValue", "value": HEADER_EDITS}
        return [wasm_filter(noop["noop"], edits), router]
    if v.kind in ("native", "native-cache", "native-headers"):
        provider: dict[str, Any] = {"issuer": ISSUER, "audiences": [AUDIENCE],
                                    "local_jwks": {"inline_string": keys.jwks}, "forward": False}
        if v.kind in ("native-cache", "native-headers"):
            provider["jwt_cache_config"] = {"jwt_cache_size": NATIVE_CACHE_SIZE}
        if v.kind == "native-headers":
            provider["claim_to_headers"] = [{"header_name": h, "claim_name": c} for h, c in IDENTITY_CLAIMS]
        return [{"name": "envoy.filters.http.jwt_authn", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication",
            "providers": {"bench": provider},
            "rules": [{"match": {"prefix": "/"}, "requires": {"provider_name": "bench"}}]}}, router]
    plugin: dict[str, Any] = {"providers": [{"name": "bench", "issuer": ISSUER, "audiences": [AUDIENCE],
                                             "jwks": {"inline": getattr(keys, v.jwks)}}]}
    if v.models:
        plugin["models"] = {"catalog": [{"id": MODEL, "display_name": "Claude Sonnet 4.5",
                                         "created_at": "2025-09-29T00:00:00Z"}],
                            "enforce": v.models == "enforce"}
    budgets = [budgets_example.pieces()["filter"]] if v.budgets else []
    return [wasm_filter(wasm, struct_configuration(plugin)), *budgets, router]


def render_config(v: Variant, keys: Keys, wasm: Path, noop: dict[str, Path], upstream_port: int,
                  rls_port: int = 0) -> str:
    """bench/envoy.yaml.in for `v`; `rls_port`: gateway-ratelimit's, for the budgets variant."""
    if v.budgets and not rls_port:
        raise RuntimeError(f"{v.id}: no rate-limit service port")
    text = TEMPLATE.read_text()
    values = {"@FRONT_PORT@": "0", "@ADMIN_PORT@": "0", "@UPSTREAM_PORT@": str(upstream_port),
              "@UPSTREAM_BODY@": UPSTREAM_BODY,
              # JSON is YAML (flow style), so the filter list goes in as JSON text
              "@HTTP_FILTERS@": json.dumps(http_filters(v, keys, wasm, noop)),
              "@ROUTE_FILTER_CONFIG@": json.dumps(budgets_example.pieces()["per_route"] if v.budgets else {}),
              "@EXTRA_CLUSTERS@": "- " + json.dumps(budgets_example.local_cluster(rls_port)) if v.budgets else ""}
    for k, val in values.items():
        text = text.replace(k, val)
    if re.search(r"@[A-Z_]+@", text):
        raise RuntimeError(f"unfilled placeholder in {TEMPLATE}")
    return text
