//! jwt_simple_diff: the filter's verdict on a token against jwt-simple's (0.15, pure Rust), on tokens
//! validly signed by fixed keys and then mutated, and on raw text.
//!
//! Ours is the production path: `authn::decide` on an `Authorization: Bearer` header, with one
//! provider (issuer, audiences, inline keys, default skew and user claims) and a fixed `now`. Theirs
//! is `verify_token` with the same issuer, audiences, skew as `time_tolerance` and `now` as
//! `artificial_time`, with each of the provider's keys, the token's `kid` required to be the key's
//! when it names one (a JWKS lookup); it accepts when one key does. Both read the credential the
//! filter takes from the header (the blanks around it are HTTP framing).
//!
//! The verdicts must be equal, except for the differences listed in `FILTER_STRICTER` and
//! `JWT_SIMPLE_STRICTER`, each with its reason. The filter never accepts a token jwt-simple refuses
//! at or before its signature check (algorithm, key, signature), whatever the list says. (When
//! jwt-simple refuses before that check, on its header, it says nothing about the signature; the
//! filter's own signature checks are tested against vectors and by the rsa_signature target.)
//!
//! The input: byte 0 is `mode << 6 | algorithm` (`algorithm % 9` indexes `Algorithm::ALL`).
//! - mode 0 or 1: start from a valid token of that algorithm (`base_header`, `base_claims`) and apply
//!   the operations that follow, 4 bytes each (`code, a, b, c`, see `apply`). JSON operations
//!   rebuild the token from its header and claims and sign it again, so the signature stays valid
//!   while the JSON changes; text operations edit the token as it stands.
//! - mode 2: the rest is `header.payload` text (`<<…>>` expanded, see `expand`), signed by the key.
//! - mode 3: the rest is the token (`<<…>>` expanded).

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};

use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use base64::Engine;
use gateway_filter::authn::{decide, Decision, State};
use gateway_filter::config::{parse_config_with_env, Config};
use gateway_filter::credential::{find_credential, DEFAULT_MAX_CREDENTIAL_BYTES};
use gateway_filter::crypto::Algorithm;
use gateway_filter::key_store::KeyStore;
use gateway_filter::opaque::OpaqueState;
use gateway_filter::reason::AuthError;
use gateway_filter::strict_json;
use gateway_filter::token::looks_like_jwt;
use gateway_filter::token_cache::TokenCache;
use jwt_simple::prelude::{
    Duration, ECDSAP256PublicKeyLike, ECDSAP384PublicKeyLike, ES256PublicKey, ES384PublicKey,
    Ed25519PublicKey, EdDSAPublicKeyLike, NoCustomClaims, PS256PublicKey, PS384PublicKey, PS512PublicKey,
    RS256PublicKey, RS384PublicKey, RS512PublicKey, RSAPublicKeyLike, Token, UnixTimeStamp,
    VerificationOptions,
};
use jwt_simple::reexports::ct_codecs::{self, Base64UrlSafeNoPadding, Decoder as _};
use jwt_simple::JWTError;
use rand::SeedableRng;
use rsa::{BigUint, Pkcs1v15Sign, Pss};
use serde_json::{json, Map, Value};
use sha2::{Digest as _, Sha256, Sha384, Sha512};

use super::{env, expand, ISSUER, NOW};

/// Private JWKs of the keys this target signs with, written by `make_seeds.py`.
pub const DIFF_KEYS: &str = include_str!("../fixture/diff_keys.json");
pub const AUDIENCES: [&str; 2] = ["gateway", "claude-desktop"];

pub const MUTATE: u8 = 0;
pub const SIGN: u8 = 2;
pub const RAW: u8 = 3;
/// Operations per input at most: each may sign again (RSA-2048), so this bounds an input's cost.
const MAX_OPS: usize = 16;

/// Operation codes (`code % 16`); `which` is bit 0 of `a` (0: header, 1: claims).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// Claim `CLAIM_NAMES[a]` := `value(b, c)`.
    SetClaim,
    /// Header member `HEADER_NAMES[a]` := `value(b, c)`.
    SetHeader,
    /// Remove member `names[b]` of `which`.
    Remove,
    /// Append member `names[b]` := `value(c, a >> 1)` to `which` again, after whatever is there.
    Duplicate,
    /// In `which`'s JSON text: flip bit `c % 8` of byte `b`, insert byte `c` at `b`, or delete byte
    /// `b`, by `(a >> 1) % 3`.
    EditJson,
    /// Reshape `which`'s JSON by `SHAPES[b]` (argument `c`).
    Shape,
    /// Flip bit `c % 7` of token byte `a << 8 | b` (ASCII stays ASCII).
    FlipText,
    /// Insert ASCII byte `c & 0x7f` at token position `a << 8 | b`.
    InsertText,
    /// Delete `c % 8 + 1` token bytes from position `a << 8 | b`.
    DeleteText,
    /// Cut the token at position `a << 8 | b`.
    Truncate,
    /// On the `.`-separated segments: swap `a % 3` and `b % 3`, append a copy of `a % 3`, or drop
    /// it, by `c % 3`.
    Segments,
    /// Change the decoded signature by `a % 7`: a leading zero byte, a trailing one, drop the first
    /// byte, drop the last, malleate (RSA s + n, ECDSA (r, n - s), Ed25519 S + L), empty; or append
    /// `=` to its text.
    Signature,
    /// Sign the token's signing input again with the key and algorithm `Algorithm::ALL[a % 9]`.
    Resign,
    /// Sign again with RSASSA-PSS and a salt of `a` bytes (the hash of the current RSA algorithm).
    PssSalt,
    /// Encode segment `a % 3` again: standard alphabet, `=` padding, or stray bits in its last
    /// character, by `b % 3`; header and payload are signed again.
    Reencode,
    /// Frame the token by `a % 6`: a leading space, a trailing tab, a leading `Bearer `, a trailing
    /// `.`, a trailing newline, a leading extra segment.
    Frame,
}

pub const OPS: [Op; 16] = [
    Op::SetClaim,
    Op::SetHeader,
    Op::Remove,
    Op::Duplicate,
    Op::EditJson,
    Op::Shape,
    Op::FlipText,
    Op::InsertText,
    Op::DeleteText,
    Op::Truncate,
    Op::Segments,
    Op::Signature,
    Op::Resign,
    Op::PssSalt,
    Op::Reencode,
    Op::Frame,
];

pub const CLAIM_NAMES: [&str; 13] =
    ["iss", "aud", "sub", "oid", "exp", "nbf", "iat", "jti", "nonce", "email", "groups", "azp", "x"];
pub const HEADER_NAMES: [&str; 14] =
    ["alg", "kid", "typ", "cty", "crit", "jku", "jwk", "x5u", "x5c", "x5t", "x5t#S256", "salt", "b64", "x"];
const ALG_NAMES: [&str; 16] = [
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA", "Ed25519", "none",
    "HS256", "ES512", "rs256", "RS256 ", "",
];
const KIDS: [&str; 7] = ["d-rsa", "d-p256", "d-p384", "d-ed", "", "other", "rsa"];
const TYPS: [&str; 8] = ["JWT", "jwt", "at+jwt", "JOSE", "application/jwt", "dpop+jwt", "JWS", ""];
const SPECIAL: [&str; 5] = ["\u{0}", " ", "é", "a\r\nb", "\u{feff}"];

/// JSON values `value(kind, arg)` makes, `kind % 26` in this order.
pub const VALUES: [&str; 26] = [
    "issuer",          // the provider's issuer
    "issuer_slash",    // it with a trailing slash
    "audience",        // AUDIENCES[arg % 2]
    "other",           // "other"
    "empty",           // ""
    "aud_array",       // ["gateway"]
    "aud_other_first", // ["other", "claude-desktop"]
    "empty_array",     // []
    "aud_with_number", // ["gateway", 5]
    "near_now",        // NOW - 128 + arg
    "near_now_half",   // NOW - 128 + arg + 0.5
    "in_an_hour",      // NOW + 3600
    "big",             // 2^32 - 1, 2^32, 2^53 + 1, 1e300, 2^64 (by arg % 5)
    "negative",        // -1, -0.5, 0, -1e300 (by arg % 4)
    "numeric_string",  // "1800003600"
    "null",
    "bool",    // arg & 1 == 1
    "object",  // {} or {"gateway":1}
    "small",   // arg
    "alg",     // ALG_NAMES[arg % 16]
    "kid",     // KIDS[arg % 7]
    "typ",     // TYPS[arg % 8]
    "crit",    // [], ["exp"], ["b64"], "exp" (by arg % 4)
    "special", // SPECIAL[arg % 5]
    "long",    // arg * 64 letters
    "nested",  // 1 inside arg % 160 arrays
];

pub fn value(kind: u8, arg: u8) -> Value {
    let near = NOW - 128 + u64::from(arg);
    match kind % 26 {
        0 => json!(ISSUER),
        1 => json!(format!("{ISSUER}/")),
        2 => json!(AUDIENCES[usize::from(arg % 2)]),
        3 => json!("other"),
        4 => json!(""),
        5 => json!(["gateway"]),
        6 => json!(["other", "claude-desktop"]),
        7 => json!([]),
        8 => json!(["gateway", 5]),
        9 => json!(near),
        10 => json!(near as f64 + 0.5),
        11 => json!(NOW + 3600),
        12 => {
            [json!(u32::MAX), json!(1u64 << 32), json!((1u64 << 53) + 1), json!(1e300), json!(2f64.powi(64))]
                [usize::from(arg % 5)]
            .clone()
        }
        13 => [json!(-1), json!(-0.5), json!(0), json!(-1e300)][usize::from(arg % 4)].clone(),
        14 => json!("1800003600"),
        15 => Value::Null,
        16 => json!(arg & 1 == 1),
        17 => {
            if arg & 1 == 0 {
                json!({})
            } else {
                json!({"gateway": 1})
            }
        }
        18 => json!(arg),
        19 => json!(ALG_NAMES[usize::from(arg % 16)]),
        20 => json!(KIDS[usize::from(arg % 7)]),
        21 => json!(TYPS[usize::from(arg % 8)]),
        22 => [json!([]), json!(["exp"]), json!(["b64"]), json!("exp")][usize::from(arg % 4)].clone(),
        23 => json!(SPECIAL[usize::from(arg % 5)]),
        24 => json!("a".repeat(usize::from(arg) * 64)),
        _ => (0..arg % 160).fold(json!(1), |inner, _| json!([inner])),
    }
}

/// `Op::Shape` kinds.
pub const SHAPES: [&str; 8] = [
    "array",                 // [JSON]
    "leading_spaces",        // arg % 8 + 1 spaces before it
    "trailing_spaces",       // arg % 8 + 1 spaces after it
    "bom",                   // a UTF-8 byte order mark before it
    "non_utf8_member",       // "x":"\xff" appended
    "lone_surrogate_member", // "x":"\ud800" appended
    "escaped_names",         // each member name's first character as a \u escape
    "empty_object",          // {}
];

// ------------------------------------------------------------------------------------------------
// Keys

/// A private key of the fixture, for the algorithms its family serves.
enum Signer {
    Rsa(Box<rsa::RsaPrivateKey>),
    P256(p256::ecdsa::SigningKey),
    P384(p384::ecdsa::SigningKey),
    Ed25519(ed25519_compact::KeyPair),
}

/// A jwt-simple public key for one algorithm, and the `kid` of its JWK.
enum TheirKey {
    Rs256(RS256PublicKey),
    Rs384(RS384PublicKey),
    Rs512(RS512PublicKey),
    Ps256(PS256PublicKey),
    Ps384(PS384PublicKey),
    Ps512(PS512PublicKey),
    Es256(ES256PublicKey),
    Es384(ES384PublicKey),
    Ed25519(Ed25519PublicKey),
}

impl TheirKey {
    fn verify(&self, token: &str, options: VerificationOptions) -> Result<(), jwt_simple::Error> {
        let options = Some(options);
        match self {
            TheirKey::Rs256(k) => k.verify_token::<NoCustomClaims>(token, options).map(drop),
            TheirKey::Rs384(k) => k.verify_token::<NoCustomClaims>(token, options).map(drop),
            TheirKey::Rs512(k) => k.verify_token::<NoCustomClaims>(token, options).map(drop),
            TheirKey::Ps256(k) => k.verify_token::<NoCustomClaims>(token, options).map(drop),
            TheirKey::Ps384(k) => k.verify_token::<NoCustomClaims>(token, options).map(drop),
            TheirKey::Ps512(k) => k.verify_token::<NoCustomClaims>(token, options).map(drop),
            TheirKey::Es256(k) => k.verify_token::<NoCustomClaims>(token, options).map(drop),
            TheirKey::Es384(k) => k.verify_token::<NoCustomClaims>(token, options).map(drop),
            TheirKey::Ed25519(k) => k.verify_token::<NoCustomClaims>(token, options).map(drop),
        }
    }

    /// Whether a token with this `alg` is this key's to verify.
    fn takes(&self, alg: &str) -> bool {
        let names: &[&str] = match self {
            TheirKey::Rs256(_) => &["RS256"],
            TheirKey::Rs384(_) => &["RS384"],
            TheirKey::Rs512(_) => &["RS512"],
            TheirKey::Ps256(_) => &["PS256"],
            TheirKey::Ps384(_) => &["PS384"],
            TheirKey::Ps512(_) => &["PS512"],
            TheirKey::Es256(_) => &["ES256"],
            TheirKey::Es384(_) => &["ES384"],
            TheirKey::Ed25519(_) => &["EdDSA", "Ed25519"],
        };
        names.contains(&alg)
    }
}

/// Algorithm (its discriminant), PSS salt length and signing input.
type SignatureKey = (usize, Option<usize>, Vec<u8>);

pub struct DiffFixture {
    config: Config,
    keys: KeyStore,
    opaque: OpaqueState,
    tokens: TokenCache,
    /// By family: RSA, P-256, P-384, Ed25519; with their `kid`s.
    signers: Vec<(Signer, String)>,
    theirs: Vec<(TheirKey, String)>,
    options: VerificationOptions,
    /// The provider's clock skew, which is jwt-simple's time tolerance too.
    skew: u64,
    /// Signatures made so far: signing (RSA-2048 above all) is
    /// most of an input's cost, and inputs that only edit the text all start from the same 9 tokens.
    signatures: RefCell<HashMap<SignatureKey, Vec<u8>>>,
}

fn member(jwk: &Value, name: &str) -> Vec<u8> {
    let text = jwk[name].as_str().unwrap_or_else(|| panic!("diff key without {name}"));
    URL_SAFE_NO_PAD.decode(text).expect("diff key member is base64url")
}

pub fn diff_fixture() -> DiffFixture {
    let private: Value = serde_json::from_str(DIFF_KEYS).expect("diff keys");
    let private = private["keys"].as_array().expect("diff keys array");
    let mut public = Vec::new();
    let mut signers = Vec::new();
    let mut theirs = Vec::new();
    for jwk in private {
        let kid = jwk["kid"].as_str().expect("kid").to_owned();
        let mut pubkey = jwk.as_object().expect("jwk object").clone();
        pubkey.retain(|name, _| ["kty", "kid", "crv", "n", "e", "x", "y"].contains(&name.as_str()));
        public.push(Value::Object(pubkey));
        let mut their = |key: TheirKey| theirs.push((key, kid.clone()));
        let signer = match (jwk["kty"].as_str(), jwk["crv"].as_str()) {
            (Some("RSA"), _) => {
                let [n, e, d, p, q] =
                    ["n", "e", "d", "p", "q"].map(|m| BigUint::from_bytes_be(&member(jwk, m)));
                let (n, e) = (n.to_bytes_be(), e.to_bytes_be());
                their(TheirKey::Rs256(RS256PublicKey::from_components(&n, &e).expect("jwt-simple RSA key")));
                their(TheirKey::Rs384(RS384PublicKey::from_components(&n, &e).expect("jwt-simple RSA key")));
                their(TheirKey::Rs512(RS512PublicKey::from_components(&n, &e).expect("jwt-simple RSA key")));
                their(TheirKey::Ps256(PS256PublicKey::from_components(&n, &e).expect("jwt-simple RSA key")));
                their(TheirKey::Ps384(PS384PublicKey::from_components(&n, &e).expect("jwt-simple RSA key")));
                their(TheirKey::Ps512(PS512PublicKey::from_components(&n, &e).expect("jwt-simple RSA key")));
                let mut key = rsa::RsaPrivateKey::from_components(
                    BigUint::from_bytes_be(&n),
                    BigUint::from_bytes_be(&e),
                    d,
                    vec![p, q],
                )
                .expect("diff RSA key");
                key.precompute().expect("diff RSA key CRT values");
                Signer::Rsa(Box::new(key))
            }
            (Some("EC"), Some(crv)) => {
                let point = [&[4u8][..], &member(jwk, "x"), &member(jwk, "y")].concat();
                let d = member(jwk, "d");
                if crv == "P-256" {
                    let key = p256::ecdsa::SigningKey::from_slice(&d).expect("diff P-256 key");
                    assert_eq!(key.verifying_key().to_encoded_point(false).as_bytes(), &point[..]);
                    their(TheirKey::Es256(ES256PublicKey::from_bytes(&point).expect("jwt-simple P-256 key")));
                    Signer::P256(key)
                } else {
                    let key = p384::ecdsa::SigningKey::from_slice(&d).expect("diff P-384 key");
                    assert_eq!(key.verifying_key().to_encoded_point(false).as_bytes(), &point[..]);
                    their(TheirKey::Es384(ES384PublicKey::from_bytes(&point).expect("jwt-simple P-384 key")));
                    Signer::P384(key)
                }
            }
            _ => {
                let seed = ed25519_compact::Seed::from_slice(&member(jwk, "d")).expect("diff Ed25519 seed");
                let pair = ed25519_compact::KeyPair::from_seed(seed);
                assert_eq!(&pair.pk[..], &member(jwk, "x")[..]);
                their(TheirKey::Ed25519(
                    Ed25519PublicKey::from_bytes(&pair.pk[..]).expect("jwt-simple Ed25519 key"),
                ));
                Signer::Ed25519(pair)
            }
        };
        signers.push((signer, kid));
    }
    let jwks = json!({ "keys": public }).to_string();
    let config = parse_config_with_env(
        &json!({"providers": [{"name": "diff-idp", "issuer": ISSUER, "audiences": AUDIENCES,
                               "jwks": {"inline": jwks}}]}),
        &env,
    )
    .expect("diff config");
    let skew = config.providers[0].clock_skew_seconds;
    let options = VerificationOptions {
        allowed_issuers: Some(HashSet::from([ISSUER.to_owned()])),
        allowed_audiences: Some(AUDIENCES.iter().map(|a| (*a).to_owned()).collect()),
        time_tolerance: Some(Duration::from_secs(skew)),
        artificial_time: Some(UnixTimeStamp::from_secs(NOW)),
        ..VerificationOptions::default()
    };
    let keys = KeyStore::new(&config);
    let tokens = TokenCache::new(config.token_cache, [0; 16]);
    let signatures = RefCell::default();
    DiffFixture {
        config,
        keys,
        opaque: OpaqueState::default(),
        tokens,
        signers,
        theirs,
        options,
        skew,
        signatures,
    }
}

thread_local! {
    static DIFF: DiffFixture = diff_fixture();
}

/// Index into `signers` of the key family that signs `alg`.
fn family(alg: Algorithm) -> usize {
    match alg {
        Algorithm::ES256 => 1,
        Algorithm::ES384 => 2,
        Algorithm::EdDSA => 3,
        _ => 0,
    }
}

fn hash_of(alg: Algorithm, data: &[u8]) -> Vec<u8> {
    match alg {
        Algorithm::RS384 | Algorithm::PS384 => Sha384::digest(data).to_vec(),
        Algorithm::RS512 | Algorithm::PS512 => Sha512::digest(data).to_vec(),
        _ => Sha256::digest(data).to_vec(),
    }
}

impl DiffFixture {
    /// The JWS signature of `input` by `alg` (deterministic: RFC 6979 ECDSA, a fixed PSS salt).
    /// `salt` overrides the PSS salt length (RSA only; `alg` then picks the hash). Empty when the
    /// key cannot make it (a salt too long for the modulus).
    fn sign(&self, alg: Algorithm, input: &[u8], salt: Option<usize>) -> Vec<u8> {
        let key = (alg as usize, salt, input.to_vec());
        if let Some(signature) = self.signatures.borrow().get(&key) {
            return signature.clone();
        }
        let signature = self.sign_now(alg, input, salt);
        let mut signatures = self.signatures.borrow_mut();
        if signatures.len() >= 4096 {
            signatures.clear();
        }
        signatures.insert(key, signature.clone());
        signature
    }

    fn sign_now(&self, alg: Algorithm, input: &[u8], salt: Option<usize>) -> Vec<u8> {
        let digest = hash_of(alg, input);
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let pss = |len: Option<usize>| match (alg, len) {
            (Algorithm::RS384 | Algorithm::PS384, Some(len)) => Pss::new_with_salt::<Sha384>(len),
            (Algorithm::RS512 | Algorithm::PS512, Some(len)) => Pss::new_with_salt::<Sha512>(len),
            (_, Some(len)) => Pss::new_with_salt::<Sha256>(len),
            (Algorithm::PS384, None) => Pss::new::<Sha384>(),
            (Algorithm::PS512, None) => Pss::new::<Sha512>(),
            _ => Pss::new::<Sha256>(),
        };
        match &self.signers[family(alg)].0 {
            Signer::Rsa(key) => {
                let result = match alg {
                    Algorithm::PS256 | Algorithm::PS384 | Algorithm::PS512 => {
                        key.sign_with_rng(&mut rng, pss(salt), &digest)
                    }
                    _ if salt.is_some() => key.sign_with_rng(&mut rng, pss(salt), &digest),
                    Algorithm::RS384 => key.sign(Pkcs1v15Sign::new::<Sha384>(), &digest),
                    Algorithm::RS512 => key.sign(Pkcs1v15Sign::new::<Sha512>(), &digest),
                    _ => key.sign(Pkcs1v15Sign::new::<Sha256>(), &digest),
                };
                result.unwrap_or_default()
            }
            Signer::P256(key) => {
                use p256::ecdsa::signature::Signer as _;
                let signature: p256::ecdsa::Signature = key.sign(input);
                signature.to_bytes().to_vec()
            }
            Signer::P384(key) => {
                use p384::ecdsa::signature::Signer as _;
                let signature: p384::ecdsa::Signature = key.sign(input);
                signature.to_bytes().to_vec()
            }
            Signer::Ed25519(pair) => pair.sk.sign(input, None).to_vec(),
        }
    }

    fn kid(&self, alg: Algorithm) -> &str {
        &self.signers[family(alg)].1
    }
}

pub fn base_header(alg: Algorithm, kid: &str) -> Value {
    json!({"alg": alg.name(), "typ": "JWT", "kid": kid})
}

pub fn base_claims() -> Value {
    json!({"iss": ISSUER, "aud": "gateway", "sub": "user-1", "iat": NOW - 10, "nbf": NOW - 10, "exp": NOW + 3600,
           "email": "ada@example.com", "groups": ["eng"], "jti": "j-1"})
}

// ------------------------------------------------------------------------------------------------
// Building the token

/// A token being mutated: its JSON, the algorithm that signs it, and its text once built.
struct Draft<'f> {
    f: &'f DiffFixture,
    json: [Vec<u8>; 2],
    signer: Algorithm,
    /// `None` while the JSON changed since the text was built.
    text: Option<Vec<u8>>,
}

impl Draft<'_> {
    fn signed(&self, input: &[u8], salt: Option<usize>) -> Vec<u8> {
        let signature = URL_SAFE_NO_PAD.encode(self.f.sign(self.signer, input, salt));
        [input, b".", signature.as_bytes()].concat()
    }

    fn text(&mut self) -> &mut Vec<u8> {
        if self.text.is_none() {
            let input = format!(
                "{}.{}",
                URL_SAFE_NO_PAD.encode(&self.json[0]),
                URL_SAFE_NO_PAD.encode(&self.json[1])
            );
            self.text = Some(self.signed(input.as_bytes(), None));
        }
        self.text.get_or_insert_with(Vec::new)
    }

    /// Signs everything before the last `.` again (all of it if there is none).
    fn resign(&mut self, salt: Option<usize>) {
        let text = self.text().clone();
        let input = text.iter().rposition(|&b| b == b'.').map_or(&text[..], |dot| &text[..dot]);
        self.text = Some(self.signed(input, salt));
    }

    fn json_mut(&mut self, which: u8) -> &mut Vec<u8> {
        self.text = None;
        &mut self.json[usize::from(which & 1)]
    }

    fn apply(&mut self, [code, a, b, c]: [u8; 4]) {
        let names: &[&str] = if a & 1 == 0 { &HEADER_NAMES } else { &CLAIM_NAMES };
        let pos = usize::from(a) << 8 | usize::from(b);
        match OPS[usize::from(code % 16)] {
            Op::SetClaim => set_member(self.json_mut(1), CLAIM_NAMES[usize::from(a) % 13], value(b, c)),
            Op::SetHeader => set_member(self.json_mut(0), HEADER_NAMES[usize::from(a) % 14], value(b, c)),
            Op::Remove => {
                let name = names[usize::from(b) % names.len()];
                let json = self.json_mut(a);
                if let Ok(mut map) = serde_json::from_slice::<Map<String, Value>>(json) {
                    map.remove(name);
                    *json = serde_json::to_vec(&map).expect("JSON");
                }
            }
            Op::Duplicate => {
                let name = names[usize::from(b) % names.len()];
                append_member(self.json_mut(a), name, &value(c, a >> 1));
            }
            Op::EditJson => {
                let json = self.json_mut(a);
                let at = usize::from(b);
                match (a >> 1) % 3 {
                    0 if !json.is_empty() => {
                        let len = json.len();
                        json[at % len] ^= 1 << (c % 8);
                    }
                    1 => json.insert(at % (json.len() + 1), c),
                    _ if !json.is_empty() => {
                        let len = json.len();
                        json.remove(at % len);
                    }
                    _ => {}
                }
            }
            Op::Shape => shape(self.json_mut(a), b, c),
            Op::FlipText => {
                let text = self.text();
                if !text.is_empty() {
                    let len = text.len();
                    text[pos % len] ^= 1 << (c % 7);
                }
            }
            Op::InsertText => {
                let text = self.text();
                text.insert(pos % (text.len() + 1), c & 0x7f);
            }
            Op::DeleteText => {
                let text = self.text();
                let start = pos % (text.len() + 1);
                let end = (start + usize::from(c % 8) + 1).min(text.len());
                text.drain(start..end);
            }
            Op::Truncate => {
                let text = self.text();
                text.truncate(pos % (text.len() + 1));
            }
            Op::Segments => {
                let text = self.text();
                let mut segments: Vec<Vec<u8>> = text.split(|&b| b == b'.').map(<[u8]>::to_vec).collect();
                let (i, j) = (usize::from(a % 3), usize::from(b % 3));
                if i < segments.len() && j < segments.len() {
                    match c % 3 {
                        0 => segments.swap(i, j),
                        1 => segments.push(segments[i].clone()),
                        _ => drop(segments.remove(i)),
                    }
                    *text = segments.join(&b'.');
                }
            }
            Op::Signature => self.change_signature(a),
            Op::Resign => {
                self.signer = Algorithm::ALL[usize::from(a % 9)];
                self.resign(None);
            }
            Op::PssSalt => self.resign(Some(usize::from(a))),
            Op::Reencode => {
                let segment = usize::from(a % 3);
                let text = self.text();
                let mut segments: Vec<String> =
                    String::from_utf8_lossy(text).split('.').map(str::to_owned).collect();
                let Some(encoded) = segments.get_mut(segment) else { return };
                let Ok(bytes) = URL_SAFE_NO_PAD.decode(&*encoded) else { return };
                *encoded = match b % 3 {
                    0 => STANDARD_NO_PAD.encode(&bytes),
                    1 => base64::engine::general_purpose::URL_SAFE.encode(&bytes),
                    _ => with_stray_bits(encoded),
                };
                *text = segments.join(".").into_bytes();
                if segment < 2 {
                    self.resign(None);
                }
            }
            Op::Frame => {
                let text = self.text();
                match a % 6 {
                    0 => text.insert(0, b' '),
                    1 => text.push(b'\t'),
                    2 => *text = [b"Bearer ", &text[..]].concat(),
                    3 => text.push(b'.'),
                    4 => text.push(b'\n'),
                    _ => *text = [b"eyJ9.", &text[..]].concat(),
                }
            }
        }
    }

    fn change_signature(&mut self, kind: u8) {
        let (f, signer) = (self.f, self.signer);
        let text = self.text();
        let dot = text.iter().rposition(|&b| b == b'.').map_or(0, |dot| dot + 1);
        if kind % 7 == 6 {
            text.push(b'=');
            return;
        }
        let Ok(mut signature) = URL_SAFE_NO_PAD.decode(&text[dot..]) else { return };
        match kind % 7 {
            0 => signature.insert(0, 0),
            1 => signature.push(0),
            2 => signature = signature.get(1..).unwrap_or_default().to_vec(),
            3 => signature.truncate(signature.len().saturating_sub(1)),
            4 => signature = malleate(signer, &f.signers[family(signer)].0, &signature),
            5 => signature.clear(),
            _ => {}
        }
        text.truncate(dot);
        text.extend_from_slice(URL_SAFE_NO_PAD.encode(&signature).as_bytes());
    }
}

/// The other encodings of the same signature value a lax verifier might take: RSA s + n; ECDSA
/// (r, n - s), valid for plain ECDSA; Ed25519 S + L, which RFC 8032 §5.1.7 refuses.
fn malleate(alg: Algorithm, signer: &Signer, signature: &[u8]) -> Vec<u8> {
    let order = |hex: &str| BigUint::parse_bytes(hex.as_bytes(), 16).expect("group order");
    let neg_s = |size: usize, n: BigUint| {
        if signature.len() != 2 * size {
            return signature.to_vec();
        }
        let s = BigUint::from_bytes_be(&signature[size..]);
        let low = if s < n { &n - &s } else { s };
        [&signature[..size], &super::fit(&low.to_bytes_be(), size)[..]].concat()
    };
    match signer {
        Signer::Rsa(key) => {
            use rsa::traits::PublicKeyParts;
            (BigUint::from_bytes_be(signature) + key.n()).to_bytes_be()
        }
        Signer::P256(_) => {
            neg_s(32, order("FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551"))
        }
        Signer::P384(_) => neg_s(
            48,
            order(
                "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFC7634D81F4372DDF581A0DB248B0A77AECEC196ACCC52973",
            ),
        ),
        Signer::Ed25519(_) if signature.len() == 64 && alg == Algorithm::EdDSA => {
            let l = order("1000000000000000000000000000000014DEF9DEA2F79CD65812631A5CF5D3ED");
            let s = BigUint::from_bytes_le(&signature[32..]) + l;
            let mut s = s.to_bytes_le();
            s.resize(32, 0);
            [&signature[..32], &s[..]].concat()
        }
        Signer::Ed25519(_) => signature.to_vec(),
    }
}

/// The same bytes with the unused low bits of the last character set (strict decoders refuse it).
fn with_stray_bits(encoded: &str) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let unused = match encoded.len() % 4 {
        2 => 0b1111,
        3 => 0b11,
        _ => return encoded.to_owned(),
    };
    let mut bytes = encoded.as_bytes().to_vec();
    if let Some(last) = bytes.last_mut() {
        if let Some(index) = ALPHABET.iter().position(|c| c == last) {
            *last = ALPHABET[index | unused];
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

fn set_member(json: &mut Vec<u8>, name: &str, value: Value) {
    match serde_json::from_slice::<Map<String, Value>>(json) {
        Ok(mut map) => {
            map.insert(name.to_owned(), value);
            *json = serde_json::to_vec(&map).expect("JSON");
        }
        Err(_) => append_member(json, name, &value),
    }
}

/// `"name":value` inserted before the last `}` (or at the end), whatever is there already.
fn append_member(json: &mut Vec<u8>, name: &str, value: &Value) {
    let at = json.iter().rposition(|&b| b == b'}').unwrap_or(json.len());
    let empty = json[..at].iter().rev().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
    let member = format!("{}{}:{value}", if empty { "" } else { "," }, Value::from(name));
    json.splice(at..at, member.into_bytes());
}

fn shape(json: &mut Vec<u8>, kind: u8, arg: u8) {
    let blanks = vec![b' '; usize::from(arg % 8) + 1];
    match kind % 8 {
        0 => *json = [b"[", &json[..], b"]"].concat(),
        1 => *json = [&blanks[..], &json[..]].concat(),
        2 => json.extend_from_slice(&blanks),
        3 => *json = [&b"\xef\xbb\xbf"[..], &json[..]].concat(),
        4 | 5 => {
            let at = json.iter().rposition(|&b| b == b'}').unwrap_or(json.len());
            let member: &[u8] = if kind % 8 == 4 { b",\"x\":\"\xff\"" } else { b",\"x\":\"\\ud800\"" };
            json.splice(at..at, member.iter().copied());
        }
        6 => {
            if let Ok(map) = serde_json::from_slice::<Map<String, Value>>(json) {
                let members: Vec<String> = map
                    .iter()
                    .map(|(name, value)| {
                        let mut chars = name.chars();
                        let first =
                            chars.next().map_or(String::new(), |c| format!("\\u{:04x}", u32::from(c)));
                        format!("\"{first}{}\":{value}", chars.as_str())
                    })
                    .collect();
                *json = format!("{{{}}}", members.join(",")).into_bytes();
            }
        }
        _ => *json = b"{}".to_vec(),
    }
}

/// The token `data` describes (`None`: nothing to try).
pub fn diff_token(data: &[u8]) -> Option<String> {
    let (&first, rest) = data.split_first()?;
    let alg = Algorithm::ALL[usize::from(first & 0x3f) % 9];
    let text = || {
        let text = String::from_utf8_lossy(rest);
        expand(&text).unwrap_or_else(|| text.into_owned())
    };
    DIFF.with(|f| match first >> 6 {
        RAW => Some(text()),
        SIGN => {
            let input = text();
            let signature = URL_SAFE_NO_PAD.encode(f.sign(alg, input.as_bytes(), None));
            Some(format!("{input}.{signature}"))
        }
        _ => {
            let json =
                [base_header(alg, f.kid(alg)), base_claims()].map(|v| serde_json::to_vec(&v).expect("JSON"));
            let mut draft = Draft { f, json, signer: alg, text: None };
            for op in rest.chunks(4).take(MAX_OPS) {
                let mut bytes = [0u8; 4];
                bytes[..op.len()].copy_from_slice(op);
                draft.apply(bytes);
            }
            Some(String::from_utf8_lossy(draft.text()).into_owned())
        }
    })
}

// ------------------------------------------------------------------------------------------------
// Verdicts

/// Where in jwt-simple's `verify_token` a token was refused: before the signature check, at it
/// (algorithm, key, signature), or after it (claims).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    Header,
    Signature,
    Claims,
}

fn stage(token: &str, error: &jwt_simple::Error) -> Stage {
    if let Some(error) = error.downcast_ref::<JWTError>() {
        return match error {
            JWTError::TokenTooLong
            | JWTError::HeaderTooLarge
            | JWTError::CompactEncodingError
            | JWTError::UnknownCriticalExtension
            | JWTError::NotJWT => Stage::Header,
            JWTError::ClockDrift
            | JWTError::TokenNotValidYet
            | JWTError::TokenHasExpired
            | JWTError::RequiredIssuerMismatch
            | JWTError::RequiredIssuerMissing
            | JWTError::RequiredAudienceMismatch
            | JWTError::RequiredAudienceMissing => Stage::Claims,
            // AlgorithmMismatch, KeyIdentifierMismatch, MissingJWTKeyIdentifier, InvalidSignature,
            // and anything unexpected.
            _ => Stage::Signature,
        };
    }
    // The header is read the same way before the signature check: if it is unreadable, so was it then.
    let Ok(metadata) = Token::decode_metadata(token) else { return Stage::Header };
    if metadata.salt().is_none() && jwt_header(token).is_some_and(|h| h.get("salt").is_some()) {
        return Stage::Header; // jwt-simple's own `salt` member, decoded before the signature check
    }
    // With the header read, JSON fails only in the claims, and base64url in the claims once the
    // signature reads: both after the signature check. Anything else (signature encoding, Ed25519
    // parsing, ...) is the signature's.
    let signature_reads =
        token.split('.').nth(2).is_some_and(|s| Base64UrlSafeNoPadding::decode_to_vec(s, None).is_ok());
    if error.downcast_ref::<serde_json::Error>().is_some()
        || (error.downcast_ref::<ct_codecs::Error>().is_some() && signature_reads)
    {
        Stage::Claims
    } else {
        Stage::Signature
    }
}

fn jwt_header(token: &str) -> Option<Map<String, Value>> {
    let segment = token.split('.').next()?;
    serde_json::from_slice(&Base64UrlSafeNoPadding::decode_to_vec(segment, None).ok()?).ok()
}

/// What the two verifiers said about one token.
#[derive(Debug)]
pub struct Verdict {
    pub token: String,
    pub ours: Result<(), AuthError>,
    /// jwt-simple's error with the key for the token's `alg`, and where it arose.
    pub theirs: Result<(), (String, Stage)>,
    /// The listed difference that explains a disagreement.
    pub difference: Option<&'static str>,
}

impl DiffFixture {
    fn ours(&self, token: &str) -> Result<(), AuthError> {
        let headers = [("authorization".to_owned(), format!("Bearer {token}"))];
        let state = State { keys: &self.keys, opaque: &self.opaque, tokens: &self.tokens, now: NOW };
        match decide(&headers, &self.config, &state) {
            Decision::Verified(_) => Ok(()),
            Decision::Deny(reason) => Err(reason),
            other => panic!("inline keys, no opaque tokens: decided {other:?} on {token:?}"),
        }
    }

    fn theirs(&self, token: &str) -> Result<(), jwt_simple::Error> {
        let metadata = Token::decode_metadata(token).ok();
        let alg = metadata.as_ref().map_or("", |m| m.algorithm());
        let has_kid = metadata.as_ref().is_some_and(|m| m.key_id().is_some());
        let mut error = None;
        for (key, kid) in &self.theirs {
            let mut options = self.options.clone();
            options.required_key_id = has_kid.then(|| kid.clone());
            match key.verify(token, options) {
                Ok(()) => return Ok(()),
                Err(e) if error.is_none() || key.takes(alg) => error = Some(e),
                Err(_) => {}
            }
        }
        Err(error.expect("one key at least"))
    }
}

/// A token's parts as the filter decodes them, for the predicates below.
pub struct Case<'a> {
    pub token: &'a str,
    /// Header and payload, base64url-decoded (`None`: not base64url).
    pub segments: [Option<Vec<u8>>; 2],
    pub skew: u64,
}

impl Case<'_> {
    fn json(&self, segment: usize) -> Option<Map<String, Value>> {
        serde_json::from_slice(self.segments[segment].as_deref()?).ok()
    }
    fn header(&self, name: &str) -> Option<Value> {
        self.json(0)?.remove(name)
    }
    fn claim(&self, name: &str) -> Option<Value> {
        self.json(1)?.remove(name)
    }
    fn time(&self, name: &str) -> Option<f64> {
        self.claim(name)?.as_f64()
    }
    /// Whether the filter's strict parser refuses a segment with this error.
    fn strict_error(&self, message: &str) -> bool {
        self.segments
            .iter()
            .flatten()
            .any(|json| strict_json::parse(json).is_err_and(|e| e.to_string().starts_with(message)))
    }
    /// A NumericDate jwt-simple reads as `trunc(v)`, while the filter compares `v` with now + skew.
    fn fraction_past_skew(&self, name: &str) -> bool {
        let limit = (NOW + self.skew) as f64;
        self.time(name).is_some_and(|v| v > limit && v.trunc() <= limit)
    }
}

/// Where the filter refuses, with this reason, a token jwt-simple accepts; on purpose.
type Difference = (AuthError, &'static str, fn(&Case) -> bool);

pub const FILTER_STRICTER: &[Difference] = &[
    (
        AuthError::Malformed,
        "RFC 7515 §4.1.11: crit names extensions the filter does not understand, so it refuses any; \
         jwt-simple only a non-empty list",
        |c| c.header("crit").is_some(),
    ),
    (
        AuthError::Malformed,
        "RFC 7515 §4, RFC 7519 §4: duplicate member names are refused; jwt-simple keeps the last of \
         members it does not know",
        |c| c.strict_error("duplicate key"),
    ),
    (
        AuthError::Malformed,
        "the filter's JSON nests 32 levels at most; jwt-simple's (serde_json's) 128",
        |c| c.strict_error("nesting too deep"),
    ),
    (
        AuthError::Malformed,
        "RFC 7515 §4, RFC 8259 §8: the header is JSON text in UTF-8 (§8.1), without unpaired \
         surrogates (§8.2); jwt-simple skips header members it does not know without validating them",
        |c| c.segments[0].as_deref().is_some_and(|h| serde_json::from_slice::<Value>(h).is_err()),
    ),
    (
        AuthError::UnknownApiKey,
        "the filter takes a credential for a JWT only when its header starts a JSON object within 3 \
         bytes (`looks_like_jwt`), else for an API key: a header after 3 blanks or one that is an \
         array (which serde's derived Deserialize reads as the struct, fields in order)",
        |c| !looks_like_jwt(c.token),
    ),
    (
        AuthError::Expired,
        "RFC 7519 §4.1.4: refused on or after exp (+ skew); jwt-simple accepts at exp + skew exactly",
        |c| c.time("exp") == Some((NOW - c.skew) as f64),
    ),
    (AuthError::NotYetValid, "jwt-simple truncates a fractional nbf (RFC 7519 §2 allows fractions)", |c| {
        c.fraction_past_skew("nbf")
    }),
    (
        AuthError::IssuedInFuture,
        "jwt-simple truncates a fractional iat (RFC 7519 §2 allows fractions)",
        |c| c.fraction_past_skew("iat"),
    ),
    (AuthError::NoExpiry, "the filter requires exp; jwt-simple does not", |c| c.claim("exp").is_none()),
    (
        AuthError::NoUserId,
        "the filter needs a user id for its identity headers: the first of oid (a string or an integer) \
         and sub (a string) that is present (docs/configuration.md: user_claims takes the first claim present), \
         non-empty; an empty oid does not fall back to sub",
        |c| first_user_id(c).is_none_or(|id| id.is_empty()),
    ),
    (
        AuthError::UserIdNotHeaderSafe,
        "the filter passes a user id upstream exactly as issued or not at all: one with control \
         characters or surrounding blanks is refused, never rewritten (two ids must never become one)",
        |c| first_user_id(c).is_some_and(|id| id.chars().any(char::is_control) || id.trim() != id),
    ),
    (
        AuthError::UserIdTooLong,
        "the filter refuses a user id over 1024 bytes rather than cut it (two ids must never become one)",
        |c| first_user_id(c).is_some_and(|id| id.len() > 1024),
    ),
    (
        AuthError::SubjectNotString,
        "RFC 7519 §4.1.2: sub is a StringOrURI; jwt-simple reads a null sub as absent, the filter (like \
         Envoy's jwt_authn) refuses it",
        |c| c.claim("sub").is_some_and(|sub| sub.is_null()),
    ),
    (
        AuthError::AlgorithmNotAllowed,
        "jwt-simple also takes Ed25519 (RFC 9864's fully-specified name) for EdDSA; the filter only \
         the RFC 7518 and RFC 8037 names",
        |c| c.header("alg").is_some_and(|alg| alg == "Ed25519"),
    ),
    (
        AuthError::CredentialTooLarge,
        "the filter caps credentials at 16 KiB (limits.max_credential_bytes), jwt-simple tokens at 1 MB",
        |c| c.token.len() > DEFAULT_MAX_CREDENTIAL_BYTES,
    ),
];

/// Where jwt-simple refuses, with this error, a token the filter accepts; on purpose. Only
/// refusals before its signature check (`Stage::Header`) or after it (`Stage::Claims`) qualify.
type Refusal = (Stage, &'static str, fn(&Case, &jwt_simple::Error) -> bool);

pub const JWT_SIMPLE_STRICTER: &[Refusal] = &[
    (
        Stage::Header,
        "jwt-simple wants typ JWT or *+JWT; the filter ignores typ (RFC 7519 §5.1: optional, advisory)",
        |c, e| {
            matches!(e.downcast_ref::<JWTError>(), Some(JWTError::NotJWT))
                && c.header("typ").is_some_and(|typ| typ.as_str().is_some_and(|t| !is_jwt_type(t)))
        },
    ),
    (
        Stage::Header,
        "jwt-simple types header members the filter does not read: cty, typ, jku, x5u, x5t, x5t#S256 \
         and salt as strings, jwk as a string (RFC 7515 §4.1.3 has an object), x5c as strings; and it \
         decodes its own salt member",
        |c, _| {
            c.json(0).is_some_and(|header| {
                header.iter().any(|(name, value)| match name.as_str() {
                    "cty" | "typ" | "jku" | "jwk" | "x5u" | "x5t" | "x5t#S256" => !value.is_string(),
                    "salt" => value.as_str().is_none_or(|s| URL_SAFE_NO_PAD.decode(s).is_err()),
                    "x5c" => !value.as_array().is_some_and(|items| items.iter().all(Value::is_string)),
                    _ => false,
                })
            })
        },
    ),
    (Stage::Header, "jwt-simple caps the header at 8 KiB of base64url", |c, e| {
        matches!(e.downcast_ref::<JWTError>(), Some(JWTError::HeaderTooLarge))
            && c.token.split('.').next().is_some_and(|h| h.len() > jwt_simple::prelude::MAX_HEADER_LENGTH)
    }),
    (
        Stage::Claims,
        "jwt-simple refuses negative NumericDates; RFC 7519 §2 counts seconds from 1970 and does not \
         forbid earlier ones, so to the filter a negative nbf or iat is in the past (a negative exp \
         has expired: both refuse it)",
        |c, e| {
            e.downcast_ref::<serde_json::Error>().is_some()
                && ["nbf", "iat"]
                    .iter()
                    .any(|name| c.claim(name).and_then(|v| v.as_f64()).is_some_and(|t| t < 0.0))
        },
    ),
    (
        Stage::Claims,
        "jwt-simple types jti and nonce as strings; the filter ignores both (sub it types too)",
        |c, e| {
            e.downcast_ref::<serde_json::Error>().is_some()
                && ["jti", "nonce"].iter().any(|name| c.claim(name).is_some_and(|v| !v.is_string()))
        },
    ),
];

/// The user id the filter reads with the default `user_claims` (oid, sub): the first present as an id.
fn first_user_id(c: &Case) -> Option<String> {
    ["oid", "sub"].iter().find_map(|name| match c.claim(name) {
        Some(Value::String(id)) => Some(id),
        Some(Value::Number(id)) if *name == "oid" && (id.is_i64() || id.is_u64()) => Some(id.to_string()),
        _ => None,
    })
}

fn is_jwt_type(typ: &str) -> bool {
    let typ = typ.to_uppercase();
    typ == "JWT" || typ.ends_with("+JWT")
}

/// Both verdicts on the token `data` describes, after checking they agree or differ as listed
/// (`None`: the input describes no token).
pub fn diff_verdict(data: &[u8]) -> Option<Verdict> {
    let token = diff_token(data)?;
    Some(DIFF.with(|f| compare(f, token)))
}

fn compare(f: &DiffFixture, token: String) -> Verdict {
    let ours = f.ours(&token);
    let headers = [("authorization".to_owned(), format!("Bearer {token}"))];
    let credential = find_credential(&headers, &f.config.token_headers, f.config.limits.max_credential_bytes)
        .map_or(token.as_str(), |found| found.value);
    let theirs = f.theirs(credential);
    let mut parts = credential.split('.').map(|s| URL_SAFE_NO_PAD.decode(s).ok());
    let case =
        Case { token: credential, segments: [parts.next().flatten(), parts.next().flatten()], skew: f.skew };
    let (theirs, difference) = match (&ours, theirs) {
        (Ok(()), Ok(())) => (Ok(()), None),
        (Err(_), Err(error)) => (Err((error.to_string(), stage(credential, &error))), None),
        (Err(reason), Ok(())) => {
            let why = FILTER_STRICTER.iter().find(|(r, _, holds)| r == reason && holds(&case));
            let Some((_, why, _)) = why else {
                panic!("the filter refuses ({reason:?}) a token jwt-simple accepts: {credential:?}")
            };
            (Ok(()), Some(*why))
        }
        (Ok(()), Err(error)) => {
            let at = stage(credential, &error);
            assert!(
                at != Stage::Signature,
                "the filter accepts a token jwt-simple refuses at its signature check ({error}): {credential:?}"
            );
            let why = JWT_SIMPLE_STRICTER.iter().find(|(s, _, holds)| *s == at && holds(&case, &error));
            let Some((_, why, _)) = why else {
                panic!("the filter accepts a token jwt-simple refuses ({error}, {at:?}): {credential:?}")
            };
            (Err((error.to_string(), at)), Some(*why))
        }
    };
    Verdict { token, ours, theirs, difference }
}

pub fn jwt_simple_diff(data: &[u8]) {
    let _ = diff_verdict(data);
}
