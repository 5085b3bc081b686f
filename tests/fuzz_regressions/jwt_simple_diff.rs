//! The filter against jwt-simple (`harness::jwt_simple_diff`): every seed and saved input, a batch
//! of inputs from a fixed-seed generator through the same mutations, and each listed difference on
//! an input that shows it. See the harness for the input layout.

use std::collections::BTreeSet;

use gateway_filter::crypto::Algorithm;
use gateway_filter::reason::AuthError;
use rand::{Rng, SeedableRng};

use crate::corpus::replay;
use crate::harness::jwt_simple_diff::{
    diff_verdict, jwt_simple_diff, Op, Stage, CLAIM_NAMES, FILTER_STRICTER, HEADER_NAMES,
    JWT_SIMPLE_STRICTER, MUTATE, OPS, RAW, SHAPES, SIGN, VALUES,
};
use crate::harness::NOW;

#[test]
fn seeds_and_saved_inputs() {
    replay("jwt_simple_diff", jwt_simple_diff);
}

fn index(names: &[&str], name: &str) -> u8 {
    u8::try_from(names.iter().position(|n| *n == name).unwrap_or_else(|| panic!("no {name}"))).unwrap()
}

fn alg_index(alg: Algorithm) -> u8 {
    u8::try_from(Algorithm::ALL.iter().position(|a| *a == alg).unwrap()).unwrap()
}

fn op(op: Op, a: u8, b: u8, c: u8) -> [u8; 4] {
    [u8::try_from(OPS.iter().position(|o| *o == op).unwrap()).unwrap(), a, b, c]
}

fn set_claim(name: &str, value: &str, arg: u8) -> [u8; 4] {
    op(Op::SetClaim, index(&CLAIM_NAMES, name), index(&VALUES, value), arg)
}

fn set_header(name: &str, value: &str, arg: u8) -> [u8; 4] {
    op(Op::SetHeader, index(&HEADER_NAMES, name), index(&VALUES, value), arg)
}

fn shape(which: u8, kind: &str, arg: u8) -> [u8; 4] {
    op(Op::Shape, which, index(&SHAPES, kind), arg)
}

const HEADER: u8 = 0;
const CLAIMS: u8 = 1;

fn mutate(alg: Algorithm, ops: &[[u8; 4]]) -> Vec<u8> {
    [&[MUTATE << 6 | alg_index(alg)][..], &ops.concat()].concat()
}

fn text(mode: u8, alg: Algorithm, text: &str) -> Vec<u8> {
    [&[mode << 6 | alg_index(alg)][..], text.as_bytes()].concat()
}

/// What an input came to: our verdict, jwt-simple's (`Err` with its stage), and the listed
/// difference that explains a disagreement.
type Outcome = (Result<(), AuthError>, Result<(), Stage>, Option<&'static str>);

fn outcome(input: &[u8]) -> Outcome {
    let verdict = diff_verdict(input).unwrap();
    (verdict.ours, verdict.theirs.map_err(|(_, stage)| stage), verdict.difference)
}

fn same(ours: Result<(), AuthError>, theirs: Result<(), Stage>) -> Outcome {
    (ours, theirs, None)
}

/// Every listed difference's reason.
fn listed() -> impl Iterator<Item = &'static str> {
    FILTER_STRICTER.iter().map(|(_, why, _)| *why).chain(JWT_SIMPLE_STRICTER.iter().map(|(_, why, _)| *why))
}

/// The listed difference whose reason starts with `start`.
fn reason(start: &str) -> &'static str {
    let mut found = listed().filter(|why| why.starts_with(start));
    let why = found.next().unwrap_or_else(|| panic!("no listed difference {start:?}"));
    assert!(found.next().is_none(), "{start:?} is ambiguous");
    why
}

/// Mutation inputs: an algorithm, then 1 to 6 random operations.
fn generated(count: usize) -> impl Iterator<Item = Vec<u8>> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x6a77_745f_6469_6666);
    (0..count).map(move |_| {
        let ops = rng.gen_range(1..=6);
        let mut input = vec![rng.gen_range(0..9u8)];
        input.extend((0..4 * ops).map(|_| rng.gen::<u8>()));
        input
    })
}

/// The harness panics on any disagreement it cannot explain; the batch must also be varied enough
/// to mean something: tokens both accept, and several of the listed differences.
#[test]
fn generated_batch() {
    let (mut accepted, mut refused, mut differences) = (0, 0, BTreeSet::new());
    for input in generated(4000) {
        let verdict = diff_verdict(&input).unwrap();
        match verdict.difference {
            Some(why) => {
                differences.insert(why);
            }
            None if verdict.ours.is_ok() => accepted += 1,
            None => refused += 1,
        }
    }
    assert!(accepted >= 100 && refused >= 1000, "accepted {accepted}, refused {refused}");
    assert!(differences.len() >= 8, "{differences:#?}");
}

#[test]
fn valid_tokens_of_every_algorithm_verify_on_both_sides() {
    for alg in Algorithm::ALL {
        assert_eq!(outcome(&mutate(alg, &[])), same(Ok(()), Ok(())), "{alg:?}");
        // Without a kid, every key that fits the algorithm is tried, by both.
        let no_kid = mutate(alg, &[op(Op::Remove, HEADER, index(&HEADER_NAMES, "kid"), 0)]);
        assert_eq!(outcome(&no_kid), same(Ok(()), Ok(())), "{alg:?}");
    }
}

#[test]
fn signature_problems_are_refused_by_both() {
    use Algorithm::*;
    let signature = |alg, kind| mutate(alg, &[op(Op::Signature, kind, 0, 0)]);
    let refused = same(Err(AuthError::BadSignature), Err(Stage::Signature));
    for alg in Algorithm::ALL {
        for kind in [0, 1, 2, 3, 5] {
            // A leading or trailing zero byte, the first or last byte dropped, none at all.
            assert_eq!(outcome(&signature(alg, kind)), refused, "{alg:?} {kind}");
        }
        // Signed with every other algorithm's key (or the same key, other padding or hash).
        for other in Algorithm::ALL.into_iter().filter(|o| *o != alg) {
            let resigned = mutate(alg, &[op(Op::Resign, alg_index(other), 0, 0)]);
            assert_eq!(outcome(&resigned), refused, "{alg:?} signed as {other:?}");
        }
    }
    // RSA s + n, Ed25519 S + L: the same value, refused (RFC 8017 §8.2.2 step 1; RFC 8032 §5.1.7).
    assert_eq!(outcome(&signature(RS256, 4)), refused);
    assert_eq!(outcome(&signature(EdDSA, 4)), refused);
    // ECDSA (r, n - s) is as valid as (r, s): neither verifier asks for low s.
    assert_eq!(outcome(&signature(ES256, 4)), same(Ok(()), Ok(())));
    assert_eq!(outcome(&signature(ES384, 4)), same(Ok(()), Ok(())));
    // RFC 7518 §3.5: the PSS salt is as long as the hash; both check.
    for salt in [0, 20, 31, 33, 64] {
        assert_eq!(outcome(&mutate(PS256, &[op(Op::PssSalt, salt, 0, 0)])), refused, "salt {salt}");
    }
    assert_eq!(outcome(&mutate(PS256, &[op(Op::PssSalt, 32, 0, 0)])), same(Ok(()), Ok(())));
    assert_eq!(outcome(&mutate(PS512, &[op(Op::PssSalt, 64, 0, 0)])), same(Ok(()), Ok(())));
}

#[test]
fn encodings_both_refuse() {
    use Algorithm::*;
    let reencode = |alg, segment, kind| mutate(alg, &[op(Op::Reencode, segment, kind, 0)]);
    // Padding and stray bits in the last character of the header or claims (signed again), and in the signature.
    assert_eq!(outcome(&reencode(RS256, CLAIMS, 1)), same(Err(AuthError::Malformed), Err(Stage::Claims)));
    assert_eq!(outcome(&reencode(EdDSA, HEADER, 2)), same(Err(AuthError::Malformed), Err(Stage::Header)));
    assert_eq!(outcome(&reencode(ES256, 2, 1)), same(Err(AuthError::Malformed), Err(Stage::Signature)));
    // A byte order mark before the header, a header that is an array.
    let bom = mutate(ES256, &[shape(HEADER, "bom", 0)]);
    assert_eq!(outcome(&bom), same(Err(AuthError::UnknownApiKey), Err(Stage::Header)));
    let wrapped = mutate(ES256, &[shape(HEADER, "array", 0)]);
    assert_eq!(outcome(&wrapped), same(Err(AuthError::UnknownApiKey), Err(Stage::Header)));
    // Invalid UTF-8 and a lone surrogate in a claim jwt-simple does not know: it reads claims whole.
    let non_utf8 = mutate(PS384, &[shape(CLAIMS, "non_utf8_member", 0)]);
    assert_eq!(outcome(&non_utf8), same(Err(AuthError::Malformed), Err(Stage::Claims)));
    let surrogate = mutate(PS384, &[shape(CLAIMS, "lone_surrogate_member", 0)]);
    assert_eq!(outcome(&surrogate), same(Err(AuthError::Malformed), Err(Stage::Claims)));
    // Member names written with \u escapes are the same names to both.
    let escaped = mutate(RS512, &[shape(HEADER, "escaped_names", 0), shape(CLAIMS, "escaped_names", 0)]);
    assert_eq!(outcome(&escaped), same(Ok(()), Ok(())));
}

#[test]
fn claims_both_check() {
    use Algorithm::*;
    let claim = |name, value, arg| outcome(&mutate(ES256, &[set_claim(name, value, arg)]));
    let near = |offset: i64| u8::try_from(offset + 128).unwrap();
    assert_eq!(claim("exp", "near_now", near(-61)), same(Err(AuthError::Expired), Err(Stage::Claims)));
    assert_eq!(claim("exp", "near_now", near(-59)), same(Ok(()), Ok(())));
    assert_eq!(claim("nbf", "near_now", near(60)), same(Ok(()), Ok(())));
    assert_eq!(claim("nbf", "near_now", near(61)), same(Err(AuthError::NotYetValid), Err(Stage::Claims)));
    assert_eq!(claim("iat", "near_now", near(61)), same(Err(AuthError::IssuedInFuture), Err(Stage::Claims)));
    // Times past 2^32 s: jwt-simple's clock saturates there, which keeps the verdicts.
    assert_eq!(claim("exp", "big", 1), same(Ok(()), Ok(())));
    assert_eq!(claim("nbf", "big", 1), same(Err(AuthError::NotYetValid), Err(Stage::Claims)));
    assert_eq!(claim("exp", "numeric_string", 0), same(Err(AuthError::Malformed), Err(Stage::Claims)));
    assert_eq!(claim("exp", "negative", 1), same(Err(AuthError::Expired), Err(Stage::Claims)));
    assert_eq!(
        claim("iss", "issuer_slash", 0),
        same(Err(AuthError::IssuerTrailingSlash), Err(Stage::Claims))
    );
    // A numeric sub: both refuse it (RFC 7519 §4.1.2 StringOrURI), as Envoy's jwt_authn does.
    assert_eq!(claim("sub", "small", 7), same(Err(AuthError::SubjectNotString), Err(Stage::Claims)));
    assert_eq!(claim("aud", "aud_other_first", 0), same(Ok(()), Ok(())));
    assert_eq!(claim("aud", "aud_with_number", 0), same(Err(AuthError::Malformed), Err(Stage::Claims)));
    assert_eq!(claim("aud", "empty_array", 0), same(Err(AuthError::AudienceNotAllowed), Err(Stage::Claims)));
    assert_eq!(claim("aud", "object", 1), same(Err(AuthError::Malformed), Err(Stage::Claims)));
    let kid = outcome(&mutate(ES256, &[set_header("kid", "kid", 2)]));
    assert_eq!(kid, same(Err(AuthError::KeyNotFound), Err(Stage::Signature)), "the P-384 key's kid");
    let none = outcome(&mutate(RS256, &[set_header("alg", "alg", 10)]));
    assert_eq!(none, same(Err(AuthError::AlgorithmNotAllowed), Err(Stage::Signature)));
    // Signed over `header.payload` as the text mode writes it.
    let claims =
        format!(r#"{{"iss":"https://idp.example.com","aud":"gateway","sub":"u","exp":{}}}"#, NOW + 3600);
    let signed = text(SIGN, EdDSA, &format!(r#"<<{{"alg":"EdDSA"}}>>.<<{claims}>>"#));
    assert_eq!(outcome(&signed), same(Ok(()), Ok(())));
    let unsigned = text(RAW, EdDSA, &format!(r#"<<{{"alg":"EdDSA"}}>>.<<{claims}>>.AAAA"#));
    assert_eq!(outcome(&unsigned), same(Err(AuthError::BadSignature), Err(Stage::Signature)));
}

/// One input per listed difference, with both verdicts; together they show every one.
#[test]
fn every_listed_difference() {
    use Algorithm::*;
    let near = |offset: i64| u8::try_from(offset + 128).unwrap();
    let strict = |reason_: AuthError, why: &str| (Err(reason_), Ok(()), Some(reason(why)));
    let lenient = |stage: Stage, why: &str| (Ok(()), Err(stage), Some(reason(why)));
    let claims =
        format!(r#"{{"iss":"https://idp.example.com","aud":"gateway","sub":"u","exp":{}}}"#, NOW + 3600);
    let email = index(&CLAIM_NAMES, "email");
    let cases: Vec<(Vec<u8>, Outcome)> = vec![
        (mutate(RS256, &[set_header("crit", "crit", 0)]), strict(AuthError::Malformed, "RFC 7515 §4.1.11")),
        (
            mutate(PS512, &[op(Op::Duplicate, CLAIMS, email, index(&VALUES, "small"))]),
            strict(AuthError::Malformed, "RFC 7515 §4, RFC 7519 §4"),
        ),
        (
            mutate(EdDSA, &[set_claim("x", "nested", 40)]),
            strict(AuthError::Malformed, "the filter's JSON nests"),
        ),
        (
            mutate(RS256, &[shape(HEADER, "non_utf8_member", 0)]),
            strict(AuthError::Malformed, "RFC 7515 §4, RFC 8259"),
        ),
        (
            mutate(RS256, &[shape(HEADER, "lone_surrogate_member", 0)]),
            strict(AuthError::Malformed, "RFC 7515 §4, RFC 8259"),
        ),
        (
            mutate(EdDSA, &[shape(HEADER, "leading_spaces", 2)]),
            strict(AuthError::UnknownApiKey, "the filter takes a credential for a JWT"),
        ),
        (
            text(SIGN, EdDSA, &format!(r#"<<["EdDSA"]>>.<<{claims}>>"#)),
            strict(AuthError::UnknownApiKey, "the filter takes a credential for a JWT"),
        ),
        (
            mutate(RS256, &[set_claim("exp", "near_now", near(-60))]),
            strict(AuthError::Expired, "RFC 7519 §4.1.4"),
        ),
        (
            mutate(ES256, &[set_claim("nbf", "near_now_half", near(60))]),
            strict(AuthError::NotYetValid, "jwt-simple truncates a fractional nbf"),
        ),
        (
            mutate(ES256, &[set_claim("iat", "near_now_half", near(60))]),
            strict(AuthError::IssuedInFuture, "jwt-simple truncates a fractional iat"),
        ),
        (
            mutate(EdDSA, &[op(Op::Remove, CLAIMS, index(&CLAIM_NAMES, "exp"), 0)]),
            strict(AuthError::NoExpiry, "the filter requires exp"),
        ),
        (
            mutate(ES384, &[op(Op::Remove, CLAIMS, index(&CLAIM_NAMES, "sub"), 0)]),
            strict(AuthError::NoUserId, "the filter needs a user id"),
        ),
        (
            // tests/fuzz_regressions/inputs/jwt_simple_diff/empty_oid_before_sub
            mutate(PS256, &[set_claim("oid", "long", 0)]),
            strict(AuthError::NoUserId, "the filter needs a user id"),
        ),
        (
            mutate(EdDSA, &[set_header("alg", "alg", 9)]),
            strict(AuthError::AlgorithmNotAllowed, "jwt-simple also takes Ed25519"),
        ),
        (
            mutate(ES256, &[set_claim("x", "long", 255)]),
            strict(AuthError::CredentialTooLarge, "the filter caps credentials at 16 KiB (limits"),
        ),
        (mutate(ES256, &[set_header("typ", "typ", 3)]), lenient(Stage::Header, "jwt-simple wants typ JWT")),
        (
            mutate(RS512, &[set_header("jwk", "object", 0)]),
            lenient(Stage::Header, "jwt-simple types header members"),
        ),
        (
            mutate(ES256, &[set_header("salt", "other", 0)]),
            lenient(Stage::Header, "jwt-simple types header members"),
        ),
        (
            mutate(RS256, &[set_header("x", "long", 130)]),
            lenient(Stage::Header, "jwt-simple caps the header at 8 KiB"),
        ),
        (
            // tests/fuzz_regressions/inputs/jwt_simple_diff/negative_iat
            mutate(RS256, &[set_claim("iat", "negative", 0)]),
            lenient(Stage::Claims, "jwt-simple refuses negative NumericDates"),
        ),
        (
            mutate(ES384, &[set_claim("nbf", "negative", 0)]),
            lenient(Stage::Claims, "jwt-simple refuses negative NumericDates"),
        ),
        (
            mutate(RS384, &[set_claim("jti", "small", 7)]),
            lenient(Stage::Claims, "jwt-simple types jti and nonce"),
        ),
        (
            mutate(ES256, &[set_claim("oid", "special", 1)]),
            strict(AuthError::UserIdNotHeaderSafe, "the filter passes a user id upstream exactly"),
        ),
        (
            mutate(ES256, &[set_claim("oid", "long", 17)]),
            strict(AuthError::UserIdTooLong, "the filter refuses a user id over 1024 bytes"),
        ),
        (
            mutate(RS256, &[set_claim("sub", "null", 0)]),
            strict(AuthError::SubjectNotString, "RFC 7519 §4.1.2: sub is a StringOrURI"),
        ),
    ];
    let mut unseen: BTreeSet<&str> = listed().collect();
    for (input, expected) in cases {
        assert_eq!(outcome(&input), expected, "{input:?}");
        unseen.remove(expected.2.unwrap());
    }
    assert!(unseen.is_empty(), "no input shows {unseen:#?}");
}
