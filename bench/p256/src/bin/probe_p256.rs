//! Size probe: one ES256 verification with the `p256` 0.13 crate alone.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use p256::ecdsa::signature::Verifier;
use p256::ecdsa::{Signature, VerifyingKey};

include!("../token.rs");

fn main() {
    let (x, y) = (URL_SAFE_NO_PAD.decode(X).expect("x"), URL_SAFE_NO_PAD.decode(Y).expect("y"));
    let dot = TOKEN.rfind('.').expect("JWS");
    let sig = URL_SAFE_NO_PAD.decode(&TOKEN[dot + 1..]).expect("sig");
    let key = VerifyingKey::from_sec1_bytes(&[&[4u8][..], &x, &y].concat()).expect("key");
    let ok = Signature::from_slice(&sig).is_ok_and(|s| key.verify(&TOKEN.as_bytes()[..dot], &s).is_ok());
    println!("{}", if ok { "verified" } else { "refused" });
}
