//! Size probe: one RS256 verification with the `rsa` 0.9 crate alone.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rsa::{BigUint, Pkcs1v15Sign};
use sha2::{Digest, Sha256};

include!("../token.rs");

fn main() {
    let n = URL_SAFE_NO_PAD.decode(N).expect("n");
    let dot = TOKEN.rfind('.').expect("JWS");
    let sig = URL_SAFE_NO_PAD.decode(&TOKEN[dot + 1..]).expect("sig");
    let key = rsa::RsaPublicKey::new(BigUint::from_bytes_be(&n), BigUint::from(65537u32)).expect("key");
    let digest = Sha256::digest(&TOKEN.as_bytes()[..dot]);
    let ok = key.verify(Pkcs1v15Sign::new::<Sha256>(), &digest, &sig).is_ok();
    println!("{}", if ok { "verified" } else { "refused" });
}
