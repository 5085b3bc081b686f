//! Verifies the RFC 7515 Appendix A.3 ES256 token many times with `gateway_filter::crypto::p256`,
//! the `p256` 0.13 crate (the filter's backend before) and `p256` 0.14 (jwt-simple 0.15's), then
//! an ES384 signature with `gateway_filter::crypto::p384` and the `p384` 0.13 crate (the filter's
//! ES384 backend before), and prints µs per verification.
//!
//! Usage: p256-bench [iterations-ours] [iterations-p256] (defaults 2000 and 300; ES384 runs half
//! of each, the p384 crate a tenth); five batches of each, the best and the median batch are
//! printed.

use std::hint::black_box;
use std::time::Instant;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use gateway_filter::crypto::p256::P256PublicKey;

include!("token.rs");

const BATCHES: usize = 5;

/// Runs `f` `iters` times per batch, `BATCHES` batches after one warm-up batch; (best, median)
/// µs per call.
fn measure(iters: u32, mut f: impl FnMut() -> bool) -> (f64, f64) {
    let mut per_call = Vec::with_capacity(BATCHES);
    for batch in 0..=BATCHES {
        let start = Instant::now();
        for _ in 0..iters {
            assert!(black_box(f()));
        }
        if batch > 0 {
            per_call.push(start.elapsed().as_secs_f64() * 1e6 / f64::from(iters));
        }
    }
    per_call.sort_by(f64::total_cmp);
    (per_call[0], per_call[BATCHES / 2])
}

fn report(what: &str, iters: u32, (best, median): (f64, f64)) {
    println!("{what:<40} {best:>9.1} µs best  {median:>9.1} µs median  ({BATCHES} x {iters})");
}

fn main() {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<u32>().expect("iteration count"));
    let iters_ours = args.next().unwrap_or(2000);
    let iters_p256 = args.next().unwrap_or(300);

    let (x, y) = (URL_SAFE_NO_PAD.decode(X).expect("x"), URL_SAFE_NO_PAD.decode(Y).expect("y"));
    let dot = TOKEN.rfind('.').expect("JWS");
    let (input, sig) = (&TOKEN.as_bytes()[..dot], URL_SAFE_NO_PAD.decode(&TOKEN[dot + 1..]).expect("sig"));

    println!("ES256 (RFC 7515 A.3), target {}", std::env::consts::ARCH);
    let key = P256PublicKey::new(&x, &y).expect("key");
    // The process's first verification also computes the tables of G (and, in Wasm, runs before
    // V8 has optimised the code).
    let start = Instant::now();
    assert!(key.verify(input, &sig));
    println!("{:<40} {:>9.1} µs", "p256_verify first verify (G tables)", start.elapsed().as_secs_f64() * 1e6);
    report(
        "p256_verify verify",
        iters_ours,
        measure(iters_ours, || key.verify(black_box(input), black_box(&sig))),
    );
    report(
        "p256_verify P256PublicKey::new",
        iters_ours,
        measure(iters_ours, || P256PublicKey::new(black_box(&x), black_box(&y)).is_some()),
    );
    // A new key's first verification also computes the key's tables.
    let iters_first = iters_ours / 10;
    report(
        "p256_verify new key + first verify",
        iters_first,
        measure(iters_first, || {
            P256PublicKey::new(black_box(&x), black_box(&y)).is_some_and(|key| key.verify(input, &sig))
        }),
    );

    {
        use p256::ecdsa::signature::Verifier;
        use p256::ecdsa::{Signature, VerifyingKey};
        let sec1 = [&[4u8][..], &x, &y].concat();
        let key = VerifyingKey::from_sec1_bytes(&sec1).expect("key");
        report(
            "p256 0.13 VerifyingKey::verify",
            iters_p256,
            measure(iters_p256, || {
                Signature::from_slice(black_box(&sig)).is_ok_and(|s| key.verify(black_box(input), &s).is_ok())
            }),
        );
        report(
            "p256 0.13 VerifyingKey::from_sec1_bytes",
            iters_p256,
            measure(iters_p256, || VerifyingKey::from_sec1_bytes(black_box(&sec1)).is_ok()),
        );
    }

    {
        use p256_014::ecdsa::signature::Verifier;
        use p256_014::ecdsa::{Signature, VerifyingKey};
        let key = VerifyingKey::from_sec1_bytes(&[&[4u8][..], &x, &y].concat()).expect("key");
        report(
            "p256 0.14 VerifyingKey::verify",
            iters_p256,
            measure(iters_p256, || {
                Signature::from_slice(black_box(&sig)).is_ok_and(|s| key.verify(black_box(input), &s).is_ok())
            }),
        );
    }

    es384(iters_ours / 2, iters_p256 / 10, input);
}

/// ES384: a signature of `input` by a fixed P-384 key, made with the `p384` crate (RFC 6979), then
/// verified by ours and by the crate.
fn es384(iters_ours: u32, iters_p384: u32, input: &[u8]) {
    use gateway_filter::crypto::p384::P384PublicKey;
    use p384::ecdsa::signature::{Signer, Verifier};
    use p384::ecdsa::{Signature, SigningKey, VerifyingKey};
    use p384::elliptic_curve::sec1::ToEncodedPoint;
    use sha2::{Digest, Sha384};

    let secret: [u8; 48] = Sha384::digest(b"gateway_filter bench es384").into();
    let signing = SigningKey::from_slice(&secret).expect("P-384 key");
    let sig: Signature = signing.sign(input);
    let sig = sig.to_bytes().to_vec();
    let point = signing.verifying_key().to_encoded_point(false);
    let (x, y) = (point.x().expect("x").to_vec(), point.y().expect("y").to_vec());

    println!("ES384 (a fixed key, the same signing input)");
    let key = P384PublicKey::new(&x, &y).expect("key");
    let start = Instant::now();
    assert!(key.verify(input, &sig));
    println!(
        "{:<40} {:>9.1} µs",
        "crypto::p384 first verify (G tables)",
        start.elapsed().as_secs_f64() * 1e6
    );
    report(
        "crypto::p384 verify",
        iters_ours,
        measure(iters_ours, || key.verify(black_box(input), black_box(&sig))),
    );
    let iters_first = (iters_ours / 10).max(1);
    report(
        "crypto::p384 new key + first verify",
        iters_first,
        measure(iters_first, || {
            P384PublicKey::new(black_box(&x), black_box(&y)).is_some_and(|key| key.verify(input, &sig))
        }),
    );
    let key = *signing.verifying_key();
    report(
        "p384 0.13 VerifyingKey::verify",
        iters_p384,
        measure(iters_p384, || {
            Signature::from_slice(black_box(&sig))
                .is_ok_and(|s| VerifyingKey::verify(&key, black_box(input), &s).is_ok())
        }),
    );
}
