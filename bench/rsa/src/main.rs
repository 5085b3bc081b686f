//! Verifies the RFC 7515 Appendix A.2 RS256 token (2048-bit key) many times with
//! `gateway_filter::crypto::rsa` and with the `rsa` 0.9 crate, and prints µs per verification.
//!
//! Usage: rsa-bench [iterations-ours] [iterations-rsa] (defaults 2000 and 300); five batches of
//! each, the best and the median batch are printed.

use std::hint::black_box;
use std::time::Instant;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use gateway_filter::crypto::rsa::{Hash, RsaPublicKey};

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
    let iters_rsa = args.next().unwrap_or(300);

    let n = URL_SAFE_NO_PAD.decode(N).expect("n");
    let e = [1u8, 0, 1];
    let dot = TOKEN.rfind('.').expect("JWS");
    let (input, sig) = (&TOKEN.as_bytes()[..dot], URL_SAFE_NO_PAD.decode(&TOKEN[dot + 1..]).expect("sig"));

    println!("RS256, 2048-bit key (RFC 7515 A.2), target {}", std::env::consts::ARCH);
    let key = RsaPublicKey::new(&n, &e).expect("key");
    report(
        "rsa_verify verify_pkcs1v15",
        iters_ours,
        measure(iters_ours, || key.verify_pkcs1v15(Hash::Sha256, black_box(input), black_box(&sig))),
    );
    report(
        "rsa_verify RsaPublicKey::new",
        iters_ours,
        measure(iters_ours, || RsaPublicKey::new(black_box(&n), &e).is_some()),
    );

    {
        use rsa::{BigUint, Pkcs1v15Sign};
        use sha2::{Digest, Sha256};
        let key =
            rsa::RsaPublicKey::new(BigUint::from_bytes_be(&n), BigUint::from_bytes_be(&e)).expect("key");
        report(
            "rsa 0.9 Pkcs1v15Sign verify",
            iters_rsa,
            measure(iters_rsa, || {
                let digest = Sha256::digest(black_box(input));
                key.verify(Pkcs1v15Sign::new::<Sha256>(), &digest, black_box(&sig)).is_ok()
            }),
        );
    }
}
