//! An incremental JSON scanner: it reads a document in chunks split anywhere (inside a string, an
//! escape, a UTF-8 sequence or a number), validates it as it goes, and reports the values found at
//! a few paths chosen up front, without ever holding the document.
//!
//! # API
//!
//! ```
//! use gateway_filter::json_scan::{Found, Hit, Scanner, Want, Watch};
//!
//! const WATCHES: &[Watch<'static>] = &[
//!     Watch { path: &["model"], want: Want::Str { max_bytes: 256 } },
//!     Watch { path: &["usage", "output_tokens"], want: Want::Int },
//!     Watch { path: &["delta", "text"], want: Want::StrLen },
//! ];
//! let mut scanner = Scanner::new(WATCHES);
//! let mut hits = Vec::new();
//! scanner.feed(br#"{"mod\u0065l":"claude-x","usage":{"output_"#, &mut hits).unwrap();
//! scanner.feed(br#"tokens":12},"delta":{"text":"h\u00e9"}}"#, &mut hits).unwrap();
//! scanner.finish().unwrap();
//! assert_eq!(hits, [
//!     Hit { watch: 0, found: Found::Str("claude-x".into()) },
//!     Hit { watch: 1, found: Found::Int(12) },
//!     Hit { watch: 2, found: Found::Len(3) },
//! ]);
//! ```
//!
//! - A [`Watch`] names a path of object keys from the root (`["usage", "output_tokens"]`) and what
//!   to report there ([`Want`]). Paths only go through objects: a key inside an array element is
//!   never at a path, nor is a nested `model` at the top level. Paths must be distinct.
//! - [`Scanner::feed`] takes the next chunk and appends a [`Hit`] (the watch's index in the list,
//!   and a [`Found`]) when a watched value ends; hits found before an error are still appended.
//!   [`Scanner::finish`] says whether the document ended complete.
//! - Keys and strings are compared and reported decoded (`\u` escapes, surrogate pairs), as any
//!   JSON parser will read them.
//! - Errors are final ([`ScanError`]; every later call returns the same one) and carry the byte
//!   offset in the whole document: [`ScanError::Invalid`] for anything `serde_json` refuses
//!   (including a lone surrogate, invalid UTF-8, nesting deeper than [`MAX_DEPTH`], trailing
//!   bytes), and [`ScanError::DuplicateKey`] when a key on a watched path (`model`, or `usage` of
//!   `usage.output_tokens`) appears twice in its object: parsers disagree on which one wins, so
//!   reading either would be a guess.
//! - The hits and the error are the same wherever the chunks are cut (tests cut every case at
//!   every offset). One known difference from `serde_json`: a number too large for an `f64`
//!   (`1e400`) is valid JSON here, as it is to most parsers; `serde_json` refuses it.
//!
//! State is bounded: a bit per open container (at most [`MAX_DEPTH`]), one counter per watch, the
//! value being captured (at most its `max_bytes`) and the key being compared (at most the longest
//! watched key).

use std::fmt;

/// Deepest nesting of arrays and objects accepted: `serde_json` (the test oracle, and what the
/// filter's own JSON reading uses) refuses the 128th level.
pub const MAX_DEPTH: u32 = 127;

/// What to report for the value at a watched path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Want {
    /// A string, decoded; longer than `max_bytes` (UTF-8) gives [`Found::TooLong`].
    Str { max_bytes: usize },
    /// A non-negative integer that fits a `u64`.
    Int,
    /// The UTF-8 byte length of a decoded string, without keeping the string.
    StrLen,
}

/// A path of object keys from the root, and what to report there.
#[derive(Clone, Copy, Debug)]
pub struct Watch<'a> {
    pub path: &'a [&'a str],
    pub want: Want,
}

/// The value found at a watched path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Found {
    Str(String),
    TooLong,
    Int(u64),
    Len(u64),
    /// A value of another type than the one wanted (or an integer that is negative, fractional or
    /// over `u64::MAX`).
    Other,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hit {
    /// Index of the watch in the list given to [`Scanner::new`].
    pub watch: usize,
    pub found: Found,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScanError {
    /// Not JSON (or not complete JSON at [`Scanner::finish`]), at this byte offset.
    Invalid { offset: u64, reason: &'static str },
    /// The key at this offset is on the path of watch `watch` and occurred before in its object.
    DuplicateKey { offset: u64, watch: usize },
}

impl fmt::Display for ScanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScanError::Invalid { offset, reason } => write!(f, "invalid JSON at byte {offset}: {reason}"),
            ScanError::DuplicateKey { offset, .. } => write!(f, "duplicate key at byte {offset}"),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Num {
    Minus,
    Zero,
    Int,
    Dot,
    Frac,
    Exp,
    ExpSign,
    ExpDigits,
}

impl Num {
    fn complete(self) -> bool {
        matches!(self, Num::Zero | Num::Int | Num::Frac | Num::ExpDigits)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// A value must start: the root, after `:`, after `,` in an array.
    Value,
    /// After `[`: a value or `]`.
    ValueOrClose,
    /// After `{`: a key or `}`.
    KeyOrClose,
    /// After `,` in an object.
    Key,
    Colon,
    /// After a value in a container: `,` or the close.
    Next,
    Str,
    Escape,
    /// Inside `\uXXXX`, this many hex digits read.
    Hex(u8),
    /// A high surrogate was read; `\` of its low half must follow.
    PairBackslash,
    /// ... then `u`.
    PairU,
    Number(Num),
    /// A literal, and how many of its bytes matched.
    Literal(&'static [u8], usize),
    /// The root value is complete: only whitespace may follow.
    Done,
    Failed(ScanError),
}

/// What the string being read is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Skip,
    Key,
    Leaf(usize),
}

#[derive(Clone, Copy, Debug, Default)]
struct Track {
    /// How many keys of the path the open objects from the root were entered through.
    matched: u32,
    /// Bit `i`: key `path[i]` already seen in its object.
    seen: u128,
    /// The last key read matched this path's next key: an object value extends the match.
    descend: bool,
}

/// The incremental scanner; see the module docs.
#[derive(Debug)]
pub struct Scanner<'a> {
    watches: &'a [Watch<'a>],
    tracks: Vec<Track>,
    state: State,
    /// Offset of the current chunk's first byte in the document.
    base: u64,
    depth: u32,
    /// Bit `i` set: the container at depth `i + 1` is an object.
    objects: u128,
    /// The value about to start is the leaf of this watch.
    leaf: Option<usize>,
    any_descend: bool,
    // The string being read.
    role: Role,
    /// The string is an object key.
    key: bool,
    buf: Vec<u8>,
    cap: usize,
    len: u64,
    hex: u32,
    high: u32,
    utf8_need: u8,
    utf8_lo: u8,
    utf8_hi: u8,
    /// Offset of the lead byte of the UTF-8 sequence being read.
    utf8_at: u64,
    key_start: u64,
    // The number being read, when it is a watched leaf.
    num_leaf: Option<usize>,
    num_value: Option<u64>,
    key_cap: usize,
}

fn invalid(offset: u64, reason: &'static str) -> ScanError {
    ScanError::Invalid { offset, reason }
}

/// JSON's whitespace.
pub fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

/// How many leading bytes are string content without `"`, `\` or a control character (any other
/// byte, UTF-8 checked separately). Eight bytes at a time, as one `u64`.
fn content_run(bytes: &[u8]) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let mut words = bytes.chunks_exact(8);
    let mut n = 0;
    for word in words.by_ref() {
        let mut eight = [0u8; 8];
        eight.copy_from_slice(word);
        let x = u64::from_le_bytes(eight);
        let quote = x ^ (ONES * u64::from(b'"'));
        let backslash = x ^ (ONES * u64::from(b'\\'));
        // Bytes that are zero in `quote`/`backslash`, or below 0x20 in `x`, get their top bit set;
        // the lowest such byte is exact (borrows only run upwards, from a flagged byte).
        let special = ((quote.wrapping_sub(ONES) & !quote)
            | (backslash.wrapping_sub(ONES) & !backslash)
            | (x.wrapping_sub(ONES * 0x20) & !x))
            & HIGH;
        if special != 0 {
            return n + (special.trailing_zeros() / 8) as usize;
        }
        n += 8;
    }
    n + words.remainder().iter().take_while(|&&b| b >= 0x20 && b != b'"' && b != b'\\').count()
}

/// The byte a one-letter escape (`\n`, ...) stands for.
fn simple_escape(b: u8) -> Option<u8> {
    Some(match b {
        b'"' | b'\\' | b'/' => b,
        b'b' => 0x08,
        b'f' => 0x0C,
        b'n' => b'\n',
        b'r' => b'\r',
        b't' => b'\t',
        _ => return None,
    })
}

impl<'a> Scanner<'a> {
    pub fn new(watches: &'a [Watch<'a>]) -> Scanner<'a> {
        let key_cap = watches.iter().flat_map(|w| w.path.iter()).map(|k| k.len()).max().unwrap_or(0);
        Scanner {
            watches,
            tracks: vec![Track::default(); watches.len()],
            state: State::Value,
            base: 0,
            depth: 0,
            objects: 0,
            leaf: None,
            any_descend: false,
            role: Role::Skip,
            key: false,
            buf: Vec::new(),
            cap: 0,
            len: 0,
            hex: 0,
            high: 0,
            utf8_need: 0,
            utf8_lo: 0,
            utf8_hi: 0,
            utf8_at: 0,
            key_start: 0,
            num_leaf: None,
            num_value: None,
            key_cap,
        }
    }

    /// Reads the next chunk of the document.
    pub fn feed(&mut self, chunk: &[u8], hits: &mut Vec<Hit>) -> Result<(), ScanError> {
        if let State::Failed(e) = self.state {
            return Err(e);
        }
        match self.run(chunk, hits) {
            Ok(()) => {
                self.base += chunk.len() as u64;
                Ok(())
            }
            Err(e) => {
                self.state = State::Failed(e);
                Err(e)
            }
        }
    }

    /// The document has ended: `Ok` when it was one complete JSON value.
    pub fn finish(&mut self) -> Result<(), ScanError> {
        match self.state {
            State::Failed(e) => Err(e),
            State::Done => Ok(()),
            State::Number(n) if self.depth == 0 && n.complete() => Ok(()),
            _ => {
                let e = invalid(self.base, "unexpected end of the document");
                self.state = State::Failed(e);
                Err(e)
            }
        }
    }

    fn run(&mut self, chunk: &[u8], hits: &mut Vec<Hit>) -> Result<(), ScanError> {
        let mut i = 0;
        while let Some(&b) = chunk.get(i) {
            let at = self.base + i as u64;
            match self.state {
                State::Str if self.utf8_need == 0 => {
                    let rest = chunk.get(i..).unwrap_or_default();
                    let run = content_run(rest);
                    if run > 0 {
                        let content = rest.get(..run).unwrap_or_default();
                        // Whole UTF-8 sequences in one pass; one cut by the chunk's end goes on
                        // byte by byte below.
                        let valid = match std::str::from_utf8(content) {
                            Ok(_) => run,
                            Err(e) if e.error_len().is_none() && run == rest.len() => e.valid_up_to(),
                            Err(e) => {
                                return Err(invalid(at + e.valid_up_to() as u64, "invalid UTF-8 in a string"))
                            }
                        };
                        if valid > 0 {
                            if self.role != Role::Skip {
                                self.take(content.get(..valid).unwrap_or_default());
                            }
                            i += valid;
                            continue;
                        }
                    }
                    match b {
                        b'"' => self.end_string(hits)?,
                        b'\\' => match chunk.get(i + 1).copied().and_then(simple_escape) {
                            Some(decoded) => {
                                self.take_byte(decoded);
                                i += 1;
                            }
                            None => self.state = State::Escape,
                        },
                        0x80.. => self.utf8_start(b, at)?,
                        _ => return Err(invalid(at, "control character in a string")),
                    }
                }
                State::Str => {
                    if b < self.utf8_lo || b > self.utf8_hi {
                        // Reported where the sequence starts, as in one piece (`from_utf8`).
                        return Err(invalid(self.utf8_at, "invalid UTF-8 in a string"));
                    }
                    self.utf8_need -= 1;
                    (self.utf8_lo, self.utf8_hi) = (0x80, 0xBF);
                    self.take_byte(b);
                }
                State::Escape => {
                    if b == b'u' {
                        self.state = State::Hex(0);
                        self.hex = 0;
                    } else {
                        let decoded = simple_escape(b).ok_or(invalid(at, "invalid escape"))?;
                        self.take_byte(decoded);
                        self.state = State::Str;
                    }
                }
                State::Hex(n) => {
                    let digit = char::from(b).to_digit(16).ok_or(invalid(at, "invalid \\u escape"))?;
                    self.hex = self.hex << 4 | digit;
                    if n < 3 {
                        self.state = State::Hex(n + 1);
                    } else {
                        self.end_hex(at)?;
                    }
                }
                State::PairBackslash if b == b'\\' => self.state = State::PairU,
                State::PairU if b == b'u' => {
                    self.state = State::Hex(0);
                    self.hex = 0;
                }
                State::PairBackslash | State::PairU => return Err(invalid(at, "lone surrogate")),
                State::Number(num) => {
                    let next = match (num, b) {
                        (Num::Minus, b'0') => Num::Zero,
                        (Num::Minus, b'1'..=b'9') => Num::Int,
                        (Num::Int, b'0'..=b'9') => Num::Int,
                        (Num::Zero | Num::Int, b'.') => Num::Dot,
                        (Num::Dot | Num::Frac, b'0'..=b'9') => Num::Frac,
                        (Num::Zero | Num::Int | Num::Frac, b'e' | b'E') => Num::Exp,
                        (Num::Exp, b'+' | b'-') => Num::ExpSign,
                        (Num::Exp | Num::ExpSign | Num::ExpDigits, b'0'..=b'9') => Num::ExpDigits,
                        (Num::Zero, b'0'..=b'9') => return Err(invalid(at, "leading zero in a number")),
                        _ if num.complete() => {
                            // The byte after the number: end it, then read the byte again.
                            self.end_number(hits);
                            self.after_value();
                            continue;
                        }
                        _ => return Err(invalid(at, "invalid number")),
                    };
                    if self.num_leaf.is_some() {
                        self.num_value = match (next, b) {
                            (Num::Int | Num::Zero, b'0'..=b'9') => self
                                .num_value
                                .and_then(|v| v.checked_mul(10))
                                .and_then(|v| v.checked_add(u64::from(b - b'0'))),
                            _ => None,
                        };
                    }
                    self.state = State::Number(next);
                }
                State::Literal(word, n) => {
                    if word.get(n) != Some(&b) {
                        return Err(invalid(at, "invalid literal"));
                    }
                    if n + 1 == word.len() {
                        self.after_value();
                    } else {
                        self.state = State::Literal(word, n + 1);
                    }
                }
                _ if is_ws(b) => {}
                State::Value => self.start_value(b, at, hits)?,
                State::ValueOrClose if b == b']' => self.close(b, at)?,
                State::ValueOrClose => self.start_value(b, at, hits)?,
                State::KeyOrClose if b == b'}' => self.close(b, at)?,
                State::KeyOrClose | State::Key if b == b'"' => self.start_key(at),
                State::KeyOrClose | State::Key => return Err(invalid(at, "expected a key")),
                State::Colon if b == b':' => self.state = State::Value,
                State::Colon => return Err(invalid(at, "expected ':'")),
                State::Next if b == b',' => {
                    self.state = if self.in_object() { State::Key } else { State::Value };
                }
                State::Next if b == b'}' || b == b']' => self.close(b, at)?,
                State::Next => return Err(invalid(at, "expected ',' or the end of the container")),
                State::Done => return Err(invalid(at, "trailing characters after the document")),
                State::Failed(e) => return Err(e),
            }
            i += 1;
        }
        Ok(())
    }

    fn in_object(&self) -> bool {
        self.depth > 0 && (self.objects >> (self.depth - 1)) & 1 == 1
    }

    fn after_value(&mut self) {
        self.state = if self.depth == 0 { State::Done } else { State::Next };
    }

    fn start_value(&mut self, b: u8, at: u64, hits: &mut Vec<Hit>) -> Result<(), ScanError> {
        let leaf = self.leaf.take();
        let want = leaf.and_then(|w| self.watches.get(w)).map(|w| w.want);
        // A watched value of another type than wanted is reported as soon as it starts.
        let mut other = leaf;
        match b {
            b'{' | b'[' => {
                if self.depth >= MAX_DEPTH {
                    return Err(invalid(at, "nesting too deep"));
                }
                if b == b'{' {
                    if self.any_descend {
                        for track in self.tracks.iter_mut().filter(|t| t.descend) {
                            track.matched = self.depth;
                        }
                    }
                    self.objects |= 1 << self.depth;
                    self.state = State::KeyOrClose;
                } else {
                    self.objects &= !(1 << self.depth);
                    self.state = State::ValueOrClose;
                }
                self.depth += 1;
            }
            b'"' => {
                let role = match want {
                    Some(Want::Str { max_bytes }) => {
                        self.cap = max_bytes;
                        leaf.map_or(Role::Skip, Role::Leaf)
                    }
                    Some(Want::StrLen) => {
                        self.cap = 0;
                        leaf.map_or(Role::Skip, Role::Leaf)
                    }
                    _ => Role::Skip,
                };
                if role != Role::Skip {
                    other = None;
                }
                self.begin_string(role, false);
            }
            b'-' | b'0'..=b'9' => {
                self.state = State::Number(match b {
                    b'-' => Num::Minus,
                    b'0' => Num::Zero,
                    _ => Num::Int,
                });
                self.num_leaf = None;
                if want == Some(Want::Int) {
                    self.num_leaf = leaf;
                    self.num_value = if b == b'-' { None } else { Some(u64::from(b - b'0')) };
                    other = None;
                }
            }
            b't' | b'f' | b'n' => {
                let word: &'static [u8] = match b {
                    b't' => b"true",
                    b'f' => b"false",
                    _ => b"null",
                };
                self.state = State::Literal(word, 1);
            }
            _ => return Err(invalid(at, "expected a value")),
        }
        if let Some(watch) = other {
            hits.push(Hit { watch, found: Found::Other });
        }
        self.clear_descend();
        Ok(())
    }

    fn end_number(&mut self, hits: &mut Vec<Hit>) {
        if let Some(watch) = self.num_leaf.take() {
            let found = match (self.state, self.num_value) {
                (State::Number(Num::Zero | Num::Int), Some(n)) => Found::Int(n),
                _ => Found::Other,
            };
            hits.push(Hit { watch, found });
        }
    }

    fn clear_descend(&mut self) {
        if self.any_descend {
            self.tracks.iter_mut().for_each(|t| t.descend = false);
            self.any_descend = false;
        }
    }

    fn close(&mut self, b: u8, at: u64) -> Result<(), ScanError> {
        if self.in_object() != (b == b'}') {
            return Err(invalid(at, "mismatched close"));
        }
        let depth = self.depth;
        for track in self.tracks.iter_mut() {
            if track.matched + 1 == depth {
                track.matched = track.matched.saturating_sub(1);
            }
        }
        self.depth -= 1;
        self.after_value();
        Ok(())
    }

    fn begin_string(&mut self, role: Role, key: bool) {
        self.state = State::Str;
        self.role = role;
        self.key = key;
        self.buf.clear();
        self.len = 0;
        self.high = 0;
    }

    fn start_key(&mut self, at: u64) {
        let depth = self.depth;
        let relevant = self
            .watches
            .iter()
            .zip(&self.tracks)
            .any(|(w, t)| t.matched + 1 == depth && w.path.len() as u64 >= u64::from(depth));
        self.begin_string(if relevant { Role::Key } else { Role::Skip }, true);
        self.cap = self.key_cap;
        self.key_start = at;
    }

    fn take(&mut self, bytes: &[u8]) {
        self.len += bytes.len() as u64;
        if matches!(self.role, Role::Key | Role::Leaf(_)) {
            let room = self.cap.saturating_sub(self.buf.len());
            self.buf.extend_from_slice(bytes.get(..room).unwrap_or(bytes));
        }
    }

    fn take_byte(&mut self, b: u8) {
        if self.role != Role::Skip {
            self.take(&[b]);
        }
    }

    fn utf8_start(&mut self, b: u8, at: u64) -> Result<(), ScanError> {
        let (need, lo, hi) = match b {
            0xC2..=0xDF => (1, 0x80, 0xBF),
            0xE0 => (2, 0xA0, 0xBF),
            0xE1..=0xEC | 0xEE..=0xEF => (2, 0x80, 0xBF),
            0xED => (2, 0x80, 0x9F),
            0xF0 => (3, 0x90, 0xBF),
            0xF1..=0xF3 => (3, 0x80, 0xBF),
            0xF4 => (3, 0x80, 0x8F),
            _ => return Err(invalid(at, "invalid UTF-8 in a string")),
        };
        (self.utf8_need, self.utf8_lo, self.utf8_hi, self.utf8_at) = (need, lo, hi, at);
        self.take_byte(b);
        Ok(())
    }

    fn end_hex(&mut self, at: u64) -> Result<(), ScanError> {
        let unit = self.hex;
        let code = match (self.high, unit) {
            (0, 0xD800..=0xDBFF) => {
                self.high = unit;
                self.state = State::PairBackslash;
                return Ok(());
            }
            (0, 0xDC00..=0xDFFF) => return Err(invalid(at, "lone surrogate")),
            (0, _) => unit,
            (high, 0xDC00..=0xDFFF) => 0x10000 + ((high - 0xD800) << 10) + (unit - 0xDC00),
            _ => return Err(invalid(at, "lone surrogate")),
        };
        self.high = 0;
        let c = char::from_u32(code).ok_or(invalid(at, "invalid \\u escape"))?;
        if self.role != Role::Skip {
            self.take(c.encode_utf8(&mut [0; 4]).as_bytes());
        }
        self.state = State::Str;
        Ok(())
    }

    fn end_string(&mut self, hits: &mut Vec<Hit>) -> Result<(), ScanError> {
        if self.key {
            self.state = State::Colon;
            return if self.role == Role::Key { self.match_key() } else { Ok(()) };
        }
        if let Role::Leaf(watch) = self.role {
            let found = match self.watches.get(watch).map(|w| w.want) {
                Some(Want::Str { max_bytes }) if self.len <= max_bytes as u64 => {
                    String::from_utf8(std::mem::take(&mut self.buf)).map_or(Found::Other, Found::Str)
                }
                Some(Want::Str { .. }) => Found::TooLong,
                _ => Found::Len(self.len),
            };
            hits.push(Hit { watch, found });
        }
        self.after_value();
        Ok(())
    }

    /// The key just read (whole in `buf` unless longer than every watched key) against the paths
    /// whose open objects lead here.
    fn match_key(&mut self) -> Result<(), ScanError> {
        let depth = self.depth;
        let Some(level) = depth.checked_sub(1) else { return Ok(()) };
        let whole = self.len <= self.buf.len() as u64;
        for (index, (watch, track)) in self.watches.iter().zip(self.tracks.iter_mut()).enumerate() {
            let expected = watch.path.get(level as usize);
            if track.matched != level || !whole || expected.map(|k| k.as_bytes()) != Some(self.buf.as_slice())
            {
                continue;
            }
            let bit = 1u128 << level;
            if track.seen & bit != 0 {
                return Err(ScanError::DuplicateKey { offset: self.key_start, watch: index });
            }
            track.seen |= bit;
            if watch.path.len() == depth as usize {
                self.leaf = self.leaf.or(Some(index));
            } else {
                track.descend = true;
                self.any_descend = true;
            }
        }
        Ok(())
    }
}
