//! `crypto::rsa` on encodings the rsa_signature target shapes, with the exact verdict. The harness
//! signs with fixed test keys (2048 and 1024 bits with e = 65537, 2049 and 1025 bits with e = 3), so
//! each input names an encoding, not a signature: see `harness::rsa_signature` for the layout.

use crate::harness::{pkcs1_encoding, pss_encoding, rsa_keys, rsa_verdict, Hash, HASHES};

/// First input byte: key 0 or 1, PSS or not, hash index, mode.
fn first(key: u8, pss: bool, hash: u8, mode: u8) -> u8 {
    key | if pss { 2 } else { 0 } | (hash << 2) | (mode << 4)
}

#[test]
fn valid_encodings_verify_with_every_key_and_hash() {
    for key in [0, 1, 0x80, 0x81] {
        for pss in [false, true] {
            for hash in 0..3 {
                let verdict = rsa_verdict(&[first(key, pss, hash, 0), 0, 0]);
                // 1024 and 1025 bits leave no room for PSS with SHA-512 and its 64-byte salt.
                let expected = if key & 0x80 != 0 && pss && hash == 2 { None } else { Some(true) };
                assert_eq!(verdict, expected, "{key} {pss} {hash}");
            }
        }
    }
}

#[test]
fn encodings_the_harness_builds_are_the_standard_ones() {
    let keys = rsa_keys();
    assert_eq!((keys[0].ours.bits(), keys[0].ours.size()), (2048, 256));
    assert_eq!((keys[1].ours.bits(), keys[1].ours.size()), (2049, 257));
    assert_eq!((keys[2].ours.bits(), keys[3].ours.bits()), (1024, 1025));
    let em = pkcs1_encoding(Hash::Sha256, 8);
    assert_eq!(em.len(), 3 + 8 + 19 + 32);
    assert_eq!(&em[..3], &[0x00, 0x01, 0xff]);
    for hash in HASHES {
        let pss = pss_encoding(hash, &[7; 32], 2047).unwrap();
        assert_eq!((pss.len(), pss[255], pss[0] & 0x80), (256, 0xbc, 0));
    }
    // No room for a 64-byte hash, a 64-byte salt and two more bytes in 100 bytes.
    assert!(pss_encoding(Hash::Sha512, &[0; 64], 8 * 100 - 1).is_none());
}

#[test]
fn near_miss_encodings_are_refused_by_both_verifiers() {
    let inputs: Vec<Vec<u8>> = vec![
        vec![first(0, false, 0, 1), 0, 1, 0x03], // block type 01 -> 02
        vec![first(0, false, 0, 3), 0, 0, 1, 2, 3, 4, 5, 6, 7], // 7 bytes of padding
        vec![first(0, false, 0, 1), 0, 2, 0x01], // first padding byte FE
        vec![first(0, false, 0, 2), 0, 32, 0x01], // last DigestInfo byte before the hash
        vec![first(0, true, 0, 2), 0, 0, 0xbd],  // PSS trailer BD
        vec![first(0, true, 0, 1), 0, 0, 0x80],  // PSS leftmost bit set
        vec![first(1, true, 0, 0), 0, 0, 0x01],  // 2049 bits: integer longer than emLen
        vec![first(0, true, 0, 3), 0, 0],        // PSS, empty salt (the empty patch)
        vec![first(0, true, 1, 3), 0, 0, 1, 2, 3], // PSS, 3-byte salt
        vec![first(0, false, 0, 5), 0, 0],       // signature + n
        vec![first(1, true, 2, 5), 0, 0],        // signature + n
        vec![first(0, false, 0, 4), 0, 255, 0x01], // last signature bit flipped
        vec![first(0x81, true, 1, 0), 0, 0, 0x01], // 1025 bits: integer longer than emLen
        vec![first(0x80, false, 2, 1), 0, 60, 0x01], // 1024 bits: DigestInfo byte flipped
    ];
    for input in inputs {
        // The harness also asserts agreement with the rsa crate and the exact PKCS#1 comparison.
        assert_eq!(rsa_verdict(&input), Some(false), "{input:02x?}");
    }
}
