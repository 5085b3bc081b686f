//! json_scan: the incremental scanner (`gateway_filter::json_scan`) against `serde_json` reading the
//! whole document. The input is the document itself. For a fixed set of watches (`WATCHES`) the
//! scanner's hits and verdict must equal the reference's, in one piece, in 1-byte chunks and cut in
//! two at an offset derived from the input; and the chunked runs must equal the one-piece run
//! exactly (hits, error kind and offset).
//!
//! The reference (`reference`) parses with `serde_json` into an ordered tree that keeps duplicate
//! keys, then walks the watched paths in document order: the hits, or the first key on a watched
//! path that repeats in its object. Where the document is invalid only the verdict is compared (the
//! scanner may also stop at a duplicate key before the invalid byte). The one listed difference: a
//! number beyond `f64` (`1e400`), which `serde_json` refuses and the scanner accepts; such inputs
//! are skipped.

use std::fmt;

use gateway_filter::json_scan::{Found, Hit, ScanError, Scanner, Want, Watch};
use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// The watched paths: what the models and usage code read, plus short caps and a deep path.
pub const WATCHES: &[Watch<'static>] = &[
    Watch { path: &["model"], want: Want::Str { max_bytes: 256 } },
    Watch { path: &["usage", "output_tokens"], want: Want::Int },
    Watch { path: &["delta", "text"], want: Want::StrLen },
    Watch { path: &["message", "usage", "input_tokens"], want: Want::Int },
    Watch { path: &["k"], want: Want::Str { max_bytes: 4 } },
    Watch { path: &["usage"], want: Want::StrLen },
    Watch { path: &["a", "\u{e9}", "\u{1f600}"], want: Want::Str { max_bytes: 8 } },
];

/// What a document gives: the hits in order, then the verdict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub hits: Vec<Hit>,
    pub verdict: Result<(), ScanError>,
}

/// The scanner fed `chunks` in order, then finished.
pub fn scan_chunks<'a>(watches: &[Watch<'_>], chunks: impl IntoIterator<Item = &'a [u8]>) -> Outcome {
    let mut scanner = Scanner::new(watches);
    let mut hits = Vec::new();
    let mut verdict = Ok(());
    for chunk in chunks {
        verdict = scanner.feed(chunk, &mut hits);
        if verdict.is_err() {
            break;
        }
    }
    if verdict.is_ok() {
        verdict = scanner.finish();
    }
    // Errors are final.
    if let Err(e) = verdict {
        assert_eq!(scanner.feed(b"{}", &mut hits), Err(e));
        assert_eq!(scanner.finish(), Err(e));
    }
    Outcome { hits, verdict }
}

pub fn scan_whole(watches: &[Watch<'_>], doc: &[u8]) -> Outcome {
    scan_chunks(watches, [doc])
}

/// The reference verdict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reference {
    Valid(Vec<Hit>),
    /// The first key on a watched path that repeats, in document order, and the hits before it.
    Duplicate {
        watch: usize,
        hits: Vec<Hit>,
    },
    Invalid,
    /// `serde_json` refuses a number beyond `f64`: not compared.
    NumberOutOfRange,
}

/// A JSON value that keeps object members in order, duplicates included.
#[derive(Debug)]
enum Ordered {
    Object(Vec<(String, Ordered)>),
    Array,
    Str(String),
    UInt(u64),
    OtherNumber,
    Literal,
}

impl<'de> Deserialize<'de> for Ordered {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(OrderedVisitor)
    }
}

struct OrderedVisitor;

impl<'de> Visitor<'de> for OrderedVisitor {
    type Value = Ordered;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("JSON")
    }
    fn visit_bool<E>(self, _: bool) -> Result<Ordered, E> {
        Ok(Ordered::Literal)
    }
    fn visit_unit<E>(self) -> Result<Ordered, E> {
        Ok(Ordered::Literal)
    }
    fn visit_u64<E>(self, v: u64) -> Result<Ordered, E> {
        Ok(Ordered::UInt(v))
    }
    fn visit_i64<E>(self, _: i64) -> Result<Ordered, E> {
        Ok(Ordered::OtherNumber)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Ordered, E> {
        Ok(Ordered::OtherNumber)
    }
    fn visit_str<E>(self, v: &str) -> Result<Ordered, E> {
        Ok(Ordered::Str(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Ordered, E> {
        Ok(Ordered::Str(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Ordered, A::Error> {
        while seq.next_element::<Ordered>()?.is_some() {}
        Ok(Ordered::Array)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Ordered, A::Error> {
        let mut members = Vec::new();
        while let Some(entry) = map.next_entry::<String, Ordered>()? {
            members.push(entry);
        }
        Ok(Ordered::Object(members))
    }
}

fn classify(value: &Ordered, want: Want) -> Found {
    match (want, value) {
        (Want::Str { max_bytes }, Ordered::Str(s)) if s.len() <= max_bytes => Found::Str(s.clone()),
        (Want::Str { .. }, Ordered::Str(_)) => Found::TooLong,
        (Want::StrLen, Ordered::Str(s)) => Found::Len(s.len() as u64),
        (Want::Int, Ordered::UInt(n)) => Found::Int(*n),
        _ => Found::Other,
    }
}

/// Walks the object at `depth` (keys at index `depth` of the paths) for the watches in `active`;
/// `Err(watch)` at the first duplicate.
fn walk(
    watches: &[Watch<'_>],
    members: &[(String, Ordered)],
    depth: usize,
    active: &[usize],
    hits: &mut Vec<Hit>,
) -> Result<(), usize> {
    let mut seen: Vec<usize> = Vec::new();
    for (key, value) in members {
        let matching: Vec<usize> =
            active.iter().copied().filter(|&w| watches[w].path.get(depth) == Some(&key.as_str())).collect();
        if let Some(&dup) = matching.iter().find(|w| seen.contains(w)) {
            return Err(dup);
        }
        seen.extend(&matching);
        if let Some(&leaf) = matching.iter().find(|&&w| watches[w].path.len() == depth + 1) {
            hits.push(Hit { watch: leaf, found: classify(value, watches[leaf].want) });
        }
        let deeper: Vec<usize> =
            matching.into_iter().filter(|&w| watches[w].path.len() > depth + 1).collect();
        if let (Ordered::Object(inner), false) = (value, deeper.is_empty()) {
            walk(watches, inner, depth + 1, &deeper, hits)?;
        }
    }
    Ok(())
}

pub fn reference(watches: &[Watch<'_>], doc: &[u8]) -> Reference {
    let root = match serde_json::from_slice::<Ordered>(doc) {
        Ok(root) => root,
        Err(e) if e.to_string().starts_with("number out of range") => return Reference::NumberOutOfRange,
        Err(_) => return Reference::Invalid,
    };
    let mut hits = Vec::new();
    let Ordered::Object(members) = root else { return Reference::Valid(hits) };
    let all: Vec<usize> = (0..watches.len()).collect();
    match walk(watches, &members, 0, &all, &mut hits) {
        Ok(()) => Reference::Valid(hits),
        Err(watch) => Reference::Duplicate { watch, hits },
    }
}

/// Panics unless the scanner's one-piece outcome agrees with the reference.
pub fn assert_agrees(watches: &[Watch<'_>], doc: &[u8], whole: &Outcome) {
    match reference(watches, doc) {
        Reference::Valid(hits) => {
            assert_eq!(
                whole,
                &Outcome { hits, verdict: Ok(()) },
                "valid document {:?}",
                String::from_utf8_lossy(doc)
            )
        }
        Reference::Duplicate { watch, hits } => {
            assert_eq!(whole.hits, hits, "hits before the duplicate in {:?}", String::from_utf8_lossy(doc));
            assert!(
                matches!(whole.verdict, Err(ScanError::DuplicateKey { watch: w, .. }) if w == watch),
                "duplicate of watch {watch} in {:?}: {:?}",
                String::from_utf8_lossy(doc),
                whole.verdict
            );
        }
        Reference::Invalid => {
            assert!(whole.verdict.is_err(), "invalid document accepted: {:?}", String::from_utf8_lossy(doc))
        }
        Reference::NumberOutOfRange => {}
    }
    if let Err(ScanError::Invalid { offset, .. } | ScanError::DuplicateKey { offset, .. }) = whole.verdict {
        assert!(offset <= doc.len() as u64, "offset {offset} beyond the document");
    }
}

pub fn json_scan(data: &[u8]) {
    let whole = scan_whole(WATCHES, data);
    assert_agrees(WATCHES, data, &whole);
    assert_eq!(scan_chunks(WATCHES, data.chunks(1)), whole, "1-byte chunks");
    let cut =
        data.iter().fold(7usize, |h, &b| h.wrapping_mul(31).wrapping_add(usize::from(b))) % (data.len() + 1);
    let (head, tail) = data.split_at(cut);
    assert_eq!(scan_chunks(WATCHES, [head, tail]), whole, "cut at {cut}");
}
