//! Size probe: one RS256 verification with `src/crypto/rsa.rs` alone (compiled in directly, so
//! the rest of the filter is not linked).

#[allow(dead_code)]
#[path = "../../../../src/crypto/rsa.rs"]
mod rsa_verify;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

include!("../token.rs");

fn main() {
    let n = URL_SAFE_NO_PAD.decode(N).expect("n");
    let dot = TOKEN.rfind('.').expect("JWS");
    let sig = URL_SAFE_NO_PAD.decode(&TOKEN[dot + 1..]).expect("sig");
    let key = rsa_verify::RsaPublicKey::new(&n, &[1, 0, 1]).expect("key");
    let ok = key.verify_pkcs1v15(rsa_verify::Hash::Sha256, &TOKEN.as_bytes()[..dot], &sig);
    println!("{}", if ok { "verified" } else { "refused" });
}
