//! Size probe baseline: the same decoding, hashing and printing as the other probes, no ECDSA.
//! The probes' sizes minus this one's are what each P-256 implementation adds.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use sha2::{Digest, Sha256};

include!("../token.rs");

fn main() {
    let (x, y) = (URL_SAFE_NO_PAD.decode(X).expect("x"), URL_SAFE_NO_PAD.decode(Y).expect("y"));
    let dot = TOKEN.rfind('.').expect("JWS");
    let sig = URL_SAFE_NO_PAD.decode(&TOKEN[dot + 1..]).expect("sig");
    let digest = Sha256::digest(&TOKEN.as_bytes()[..dot]);
    let ok = digest.len() == 32 && sig.len() == x.len() + y.len();
    println!("{}", if ok { "verified" } else { "refused" });
}
