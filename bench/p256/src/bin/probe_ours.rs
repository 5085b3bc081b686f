//! Size probe: one ES256 verification with `src/crypto/p256.rs` and the `ecdsa.rs` it builds on
//! alone (compiled in directly, so the rest of the filter is not linked).

#[path = "../../../../src/crypto/ecdsa.rs"]
mod ecdsa;
#[path = "../../../../src/crypto/p256.rs"]
mod p256_verify;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

include!("../token.rs");

fn main() {
    let (x, y) = (URL_SAFE_NO_PAD.decode(X).expect("x"), URL_SAFE_NO_PAD.decode(Y).expect("y"));
    let dot = TOKEN.rfind('.').expect("JWS");
    let sig = URL_SAFE_NO_PAD.decode(&TOKEN[dot + 1..]).expect("sig");
    let key = p256_verify::P256PublicKey::new(&x, &y).expect("key");
    let ok = key.verify(&TOKEN.as_bytes()[..dot], &sig);
    println!("{}", if ok { "verified" } else { "refused" });
}
