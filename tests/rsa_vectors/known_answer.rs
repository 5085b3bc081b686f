//! Published JWS examples: RFC 7515 Appendix A.2 (RS256) and RFC 7520 §4.2 (PS384), with their
//! public keys.

use crate::*;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

fn b64(s: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(s).expect("base64url")
}

/// Splits a compact JWS into (signing input, signature).
fn split(jws: &str) -> (&[u8], Vec<u8>) {
    let dot = jws.rfind('.').expect("compact JWS");
    (&jws.as_bytes()[..dot], b64(&jws[dot + 1..]))
}

const RFC7515_N: &str = "ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSHSXndS5z5rexMdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ";

const RFC7515_A2: &str = concat!(
    "eyJhbGciOiJSUzI1NiJ9",
    ".",
    "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFt",
    "cGxlLmNvbS9pc19yb290Ijp0cnVlfQ",
    ".",
    "cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7",
    "AAuHIm4Bh-0Qc_lF5YKt_O8W2Fp5jujGbds9uJdbF9CUAr7t1dnZcAcQjbKBYNX4",
    "BAynRFdiuB--f_nZLgrnbyTyWzO75vRK5h6xBArLIARNPvkSjtQBMHlb1L07Qe7K",
    "0GarZRmB_eSN9383LcOLn6_dO--xi12jzDwusC-eOkHWEsqtFZESc6BfI7noOPqv",
    "hJ1phCnvWh6IeYI2w9QOYEUipUTI8np6LbgGY9Fs98rqVt5AXLIhWkWywlVmtVrB",
    "p0igcN_IoypGlUPQGe77Rw",
);

const RFC7520_N: &str = concat!(
    "n4EPtAOCc9AlkeQHPzHStgAbgs7bTZLwUBZdR8_KuKPEHLd4rHVTeT",
    "-O-XV2jRojdNhxJWTDvNd7nqQ0VEiZQHz_AJmSCpMaJMRBSFKrKb2wqV",
    "wGU_NsYOYL-QtiWN2lbzcEe6XC0dApr5ydQLrHqkHHig3RBordaZ6Aj-",
    "oBHqFEHYpPe7Tpe-OfVfHd1E6cS6M1FZcD1NNLYD5lFHpPI9bTwJlsde",
    "3uhGqC0ZCuEHg8lhzwOHrtIQbS0FVbb9k3-tVTU4fg_3L_vniUFAKwuC",
    "LqKnS2BYwdq_mzSnbLY7h_qixoR7jig3__kRhuaxwUkRz5iaiQkqgc5g",
    "HdrNP5zw",
);

const RFC7520_4_2: &str = concat!(
    "eyJhbGciOiJQUzM4NCIsImtpZCI6ImJpbGJvLmJhZ2dpbnNAaG9iYml0b24uZX",
    "hhbXBsZSJ9",
    ".",
    "SXTigJlzIGEgZGFuZ2Vyb3VzIGJ1c2luZXNzLCBGcm9kbywgZ29pbmcgb3V0IH",
    "lvdXIgZG9vci4gWW91IHN0ZXAgb250byB0aGUgcm9hZCwgYW5kIGlmIHlvdSBk",
    "b24ndCBrZWVwIHlvdXIgZmVldCwgdGhlcmXigJlzIG5vIGtub3dpbmcgd2hlcm",
    "UgeW91IG1pZ2h0IGJlIHN3ZXB0IG9mZiB0by4",
    ".",
    "cu22eBqkYDKgIlTpzDXGvaFfz6WGoz7fUDcfT0kkOy42miAh2qyBzk1xEsnk2I",
    "pN6-tPid6VrklHkqsGqDqHCdP6O8TTB5dDDItllVo6_1OLPpcbUrhiUSMxbbXU",
    "vdvWXzg-UD8biiReQFlfz28zGWVsdiNAUf8ZnyPEgVFn442ZdNqiVJRmBqrYRX",
    "e8P_ijQ7p8Vdz0TTrxUeT3lm8d9shnr2lfJT8ImUjvAA2Xez2Mlp8cBE5awDzT",
    "0qI0n6uiP1aCN_2_jLAeQTlqRHtfa64QQSUmFAAjVKPbByi7xho0uTOcbH510a",
    "6GYmJUAfmWjwZ6oD4ifKo8DYM-X72Eaw",
);

#[test]
fn rfc7515_a2_rs256() {
    let key = RsaPublicKey::new(&b64(RFC7515_N), &b64("AQAB")).expect("key");
    assert_eq!((key.bits(), key.size()), (2048, 256));
    let (input, sig) = split(RFC7515_A2);
    assert!(key.verify_pkcs1v15(Hash::Sha256, input, &sig));
    // Same inputs, anything else: refused.
    assert!(!key.verify_pkcs1v15(Hash::Sha384, input, &sig));
    assert!(!key.verify_pkcs1v15(Hash::Sha512, input, &sig));
    assert!(!key.verify_pss(Hash::Sha256, input, &sig));
    assert!(!key.verify_pkcs1v15(Hash::Sha256, &input[1..], &sig));
    let mut bad = sig.clone();
    bad[255] ^= 1;
    assert!(!key.verify_pkcs1v15(Hash::Sha256, input, &bad));
    let other = RsaPublicKey::new(&b64(RFC7520_N), &b64("AQAB")).expect("key");
    assert!(!other.verify_pkcs1v15(Hash::Sha256, input, &sig));
}

#[test]
fn rfc7520_4_2_ps384() {
    let key = RsaPublicKey::new(&b64(RFC7520_N), &b64("AQAB")).expect("key");
    assert_eq!((key.bits(), key.size()), (2048, 256));
    let (input, sig) = split(RFC7520_4_2);
    assert!(key.verify_pss(Hash::Sha384, input, &sig));
    assert!(!key.verify_pss(Hash::Sha256, input, &sig));
    assert!(!key.verify_pss(Hash::Sha512, input, &sig));
    assert!(!key.verify_pkcs1v15(Hash::Sha384, input, &sig));
    assert!(!key.verify_pss(Hash::Sha384, &input[..input.len() - 1], &sig));
    let mut bad = sig.clone();
    bad[0] ^= 0x80;
    assert!(!key.verify_pss(Hash::Sha384, input, &bad));
}
