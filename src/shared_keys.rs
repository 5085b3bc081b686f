//! Sharing fetched keys between the Wasm VMs of one Envoy (one per worker thread) through proxy-wasm
//! shared data, so a refresh costs the identity provider one fetch, not one per worker. A lease
//! decides who fetches; the result (or the failure) is published for the others. The byte layouts
//! are private to this filter and versioned.

const RECORD_VERSION: u8 = 1;
const LEASE_VERSION: u8 = 2;
/// A leader that vanished (its VM restarted mid-fetch) blocks the others at most this long past
/// its fetch timeout.
pub const LEASE_SLACK_SECONDS: u64 = 2;

pub fn record_key(shared_name: &str) -> String {
    format!("gateway_auth/jwks/{shared_name}")
}

pub fn lease_key(shared_name: &str) -> String {
    format!("gateway_auth/lease/{shared_name}")
}

/// The last outcome of fetching one key source, as published by whichever VM fetched.
#[derive(Debug, PartialEq, Eq)]
pub struct Record {
    /// When `jwks` was fetched; 0 when nothing was ever fetched.
    pub fetched_at: u64,
    /// When the last fetch failed; 0 when none has.
    pub failed_at: u64,
    pub jwks: Vec<u8>,
}

impl Record {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(17 + self.jwks.len());
        out.push(RECORD_VERSION);
        out.extend_from_slice(&self.fetched_at.to_le_bytes());
        out.extend_from_slice(&self.failed_at.to_le_bytes());
        out.extend_from_slice(&self.jwks);
        out
    }

    pub fn decode(bytes: &[u8]) -> Option<Record> {
        let (&version, rest) = bytes.split_first()?;
        if version != RECORD_VERSION {
            return None;
        }
        let (fetched_at, rest) = take_u64(rest)?;
        let (failed_at, jwks) = take_u64(rest)?;
        Some(Record { fetched_at, failed_at, jwks: jwks.to_vec() })
    }
}

/// Who fetches a key source, and until when: while its fetch is in flight, or, after a failure,
/// until its next attempt (so the other VMs follow its retries instead of each retrying).
#[derive(Debug, PartialEq, Eq)]
pub struct Lease {
    pub owner: u64,
    pub until: u64,
    pub in_flight: bool,
}

impl Lease {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(18);
        out.push(LEASE_VERSION);
        out.extend_from_slice(&self.owner.to_le_bytes());
        out.extend_from_slice(&self.until.to_le_bytes());
        out.push(u8::from(self.in_flight));
        out
    }

    pub fn decode(bytes: &[u8]) -> Option<Lease> {
        let (&version, rest) = bytes.split_first()?;
        if version != LEASE_VERSION {
            return None;
        }
        let (owner, rest) = take_u64(rest)?;
        let (until, rest) = take_u64(rest)?;
        let in_flight = *rest.first()? != 0;
        Some(Lease { owner, until, in_flight })
    }

    /// Whether `me` may take the lease: nobody holds it, it ran out, or it is mine already.
    pub fn is_free_for(lease: Option<&Lease>, me: u64, now: u64) -> bool {
        lease.is_none_or(|l| l.owner == me || now >= l.until)
    }
}

fn take_u64(bytes: &[u8]) -> Option<(u64, &[u8])> {
    if bytes.len() < 8 {
        return None;
    }
    let (head, rest) = bytes.split_at(8);
    let mut out = [0u8; 8];
    out.copy_from_slice(head);
    Some((u64::from_le_bytes(out), rest))
}

/// What a VM waiting on another VM's fetch learns from the published record.
#[derive(Debug, PartialEq, Eq)]
pub enum Published {
    /// Keys newer than this VM's: adopt them.
    NewKeys,
    /// The fetch this VM waited for failed.
    Failed,
    Nothing,
}

/// `mine_fetched_at`: when this VM's keys were fetched (0: none); `waiting_since`: when it began
/// waiting for the other VM.
pub fn read_published(record: Option<&Record>, mine_fetched_at: u64, waiting_since: u64) -> Published {
    match record {
        Some(r) if r.fetched_at > mine_fetched_at && !r.jwks.is_empty() => Published::NewKeys,
        Some(r) if r.failed_at >= waiting_since && r.failed_at > 0 => Published::Failed,
        _ => Published::Nothing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() {
        let record = Record { fetched_at: 1_700_000_000, failed_at: 5, jwks: br#"{"keys":[]}"#.to_vec() };
        assert_eq!(Record::decode(&record.encode()), Some(record));
        assert_eq!(Record::decode(&[]), None);
        assert_eq!(Record::decode(&[2, 0, 0]), None);
        assert_eq!(Record::decode(&[1, 0, 0, 0]), None);
        let lease = Lease { owner: 42, until: 99, in_flight: true };
        assert_eq!(Lease::decode(&lease.encode()), Some(lease));
        assert_eq!(Lease::decode(&[2; 17]), None);
    }

    #[test]
    fn lease_rules() {
        let held = Lease { owner: 1, until: 100, in_flight: false };
        assert!(Lease::is_free_for(None, 2, 50));
        assert!(!Lease::is_free_for(Some(&held), 2, 99));
        assert!(Lease::is_free_for(Some(&held), 2, 100));
        assert!(Lease::is_free_for(Some(&held), 1, 50));
    }

    #[test]
    fn what_waiting_vms_learn() {
        let fresh = Record { fetched_at: 200, failed_at: 0, jwks: b"{}".to_vec() };
        assert_eq!(read_published(Some(&fresh), 100, 150), Published::NewKeys);
        assert_eq!(read_published(Some(&fresh), 200, 150), Published::Nothing);
        let failed = Record { fetched_at: 100, failed_at: 160, jwks: b"{}".to_vec() };
        assert_eq!(read_published(Some(&failed), 100, 150), Published::Failed);
        assert_eq!(read_published(Some(&failed), 100, 170), Published::Nothing);
        let never = Record { fetched_at: 0, failed_at: 0, jwks: Vec::new() };
        assert_eq!(read_published(Some(&never), 0, 0), Published::Nothing);
        assert_eq!(read_published(None, 0, 0), Published::Nothing);
    }
}
