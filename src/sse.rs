//! Incremental Server-Sent Events framing (WHATWG HTML §9.2.6) over byte chunks cut anywhere.
//!
//! The reader never holds an event's data: it hands each `data:` value over in pieces as they pass
//! (a JSON scanner reads them on the fly) and keeps only the line state, a field name of a few
//! bytes and the event name (at most `MAX_EVENT_NAME` bytes). Lines end with `\n`, `\r\n` or `\r`,
//! even when a chunk ends between `\r` and `\n`; `:` lines are comments; one space after the colon
//! is dropped (`data:x` and `data: x` are the same); data lines of one event are joined by `\n`.

use crate::find_byte;

/// Event names of the Messages API are short (`content_block_delta` is 19 bytes); a longer one is
/// kept as "too long", which matches no name.
pub const MAX_EVENT_NAME: usize = 32;
/// `event` and `data` are the only fields read; longer names are skipped unread.
const MAX_FIELD_NAME: usize = 5;

/// What the reader reports, in stream order.
#[derive(Debug, PartialEq, Eq)]
pub enum Item<'a> {
    /// A piece of the current event's data (a `\n` between two data lines is a piece of its own).
    Data(&'a [u8]),
    /// A blank line: the event is complete. `name` is its `event:` field (empty if none or too
    /// long); `has_data` is false when no data line came (the spec then dispatches nothing).
    End { name: &'a [u8], has_data: bool },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Line {
    /// At the start of a line.
    Start,
    /// Reading a field name (its bytes in `field`).
    Field,
    /// Right after `data:`/`event:`: one leading space is dropped.
    ValueStart(Value),
    Value(Value),
    /// A comment, or a field this reader does not need, up to the end of the line.
    Skip,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Value {
    Data,
    Event,
}

#[derive(Debug)]
pub struct SseReader {
    line: Line,
    /// The previous byte was `\r`: a `\n` right after it ends no second line.
    after_cr: bool,
    field: [u8; MAX_FIELD_NAME],
    field_len: usize,
    /// `field_len` overflowed: not a field we read.
    field_long: bool,
    name: [u8; MAX_EVENT_NAME],
    name_len: usize,
    name_long: bool,
    /// Data lines seen in the current event.
    data_lines: u32,
}

impl Default for SseReader {
    fn default() -> Self {
        SseReader {
            line: Line::Start,
            after_cr: false,
            field: [0; MAX_FIELD_NAME],
            field_len: 0,
            field_long: false,
            name: [0; MAX_EVENT_NAME],
            name_len: 0,
            name_long: false,
            data_lines: 0,
        }
    }
}

impl SseReader {
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads one chunk; `sink` gets every item the chunk completes or continues.
    pub fn feed(&mut self, chunk: &[u8], mut sink: impl FnMut(Item<'_>)) {
        let mut rest = chunk;
        while let Some((&byte, tail)) = rest.split_first() {
            if self.after_cr {
                self.after_cr = false;
                if byte == b'\n' {
                    rest = tail;
                    continue;
                }
            }
            let line_end = byte == b'\n' || byte == b'\r';
            if !line_end && matches!(self.line, Line::Value(_) | Line::Skip) {
                // The hot paths: the rest of the line in one piece (data handed over, an event
                // name kept, a comment skipped).
                let end = find_byte::either(rest, b'\n', b'\r').unwrap_or(rest.len());
                let (run, after) = rest.split_at(end);
                match self.line {
                    Line::Value(Value::Data) => sink(Item::Data(run)),
                    Line::Value(Value::Event) => self.push_name(run),
                    _ => {}
                }
                rest = after;
                continue;
            }
            rest = tail;
            if line_end {
                self.after_cr = byte == b'\r';
                self.end_line(&mut sink);
                continue;
            }
            match self.line {
                Line::Start if byte == b':' => self.line = Line::Skip,
                Line::Start => {
                    self.field_len = 0;
                    self.field_long = false;
                    self.line = Line::Field;
                    self.push_field(byte);
                }
                Line::Field if byte == b':' => {
                    self.line = match self.field_value() {
                        Some(value) => {
                            self.begin_value(value, &mut sink);
                            Line::ValueStart(value)
                        }
                        None => Line::Skip,
                    };
                }
                Line::Field => self.push_field(byte),
                Line::ValueStart(value) => {
                    self.line = Line::Value(value);
                    if byte != b' ' {
                        self.value_byte(value, byte, &mut sink);
                    }
                }
                // Read in one piece above.
                Line::Value(_) | Line::Skip => {}
            }
        }
    }

    fn push_field(&mut self, byte: u8) {
        match self.field.get_mut(self.field_len) {
            Some(slot) => {
                *slot = byte;
                self.field_len += 1;
            }
            None => self.field_long = true,
        }
    }

    fn field_value(&self) -> Option<Value> {
        if self.field_long {
            return None;
        }
        match self.field.get(..self.field_len)? {
            b"data" => Some(Value::Data),
            b"event" => Some(Value::Event),
            _ => None,
        }
    }

    /// A `data` or `event` field starts: a second data line is joined to the first by `\n`; an
    /// event name replaces the previous one.
    fn begin_value(&mut self, value: Value, sink: &mut impl FnMut(Item<'_>)) {
        match value {
            Value::Data => {
                if self.data_lines > 0 {
                    sink(Item::Data(b"\n"));
                }
                self.data_lines = self.data_lines.saturating_add(1);
            }
            Value::Event => {
                self.name_len = 0;
                self.name_long = false;
            }
        }
    }

    fn value_byte(&mut self, value: Value, byte: u8, sink: &mut impl FnMut(Item<'_>)) {
        match value {
            Value::Data => sink(Item::Data(std::slice::from_ref(&byte))),
            Value::Event => self.push_name(std::slice::from_ref(&byte)),
        }
    }

    fn push_name(&mut self, bytes: &[u8]) {
        match self.name.get_mut(self.name_len..self.name_len + bytes.len()) {
            Some(slots) => {
                slots.copy_from_slice(bytes);
                self.name_len += bytes.len();
            }
            None => self.name_long = true,
        }
    }

    fn end_line(&mut self, sink: &mut impl FnMut(Item<'_>)) {
        match self.line {
            Line::Start => {
                let name =
                    if self.name_long { &[][..] } else { self.name.get(..self.name_len).unwrap_or(&[]) };
                sink(Item::End { name, has_data: self.data_lines > 0 });
                self.name_len = 0;
                self.name_long = false;
                self.data_lines = 0;
            }
            // A field without a colon has an empty value (`data` alone is an empty data line).
            Line::Field => {
                if let Some(value) = self.field_value() {
                    self.begin_value(value, sink);
                }
            }
            Line::ValueStart(_) | Line::Value(_) | Line::Skip => {}
        }
        self.line = Line::Start;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (event name, data) of every dispatched event, feeding `input` in the given pieces.
    fn events(pieces: &[&[u8]]) -> Vec<(String, String)> {
        let mut reader = SseReader::new();
        let mut out = Vec::new();
        let mut data = Vec::new();
        for piece in pieces {
            reader.feed(piece, |item| match item {
                Item::Data(d) => data.extend_from_slice(d),
                Item::End { name, has_data } => {
                    if has_data {
                        out.push((
                            String::from_utf8_lossy(name).into_owned(),
                            String::from_utf8_lossy(&data).into_owned(),
                        ));
                    }
                    data.clear();
                }
            });
        }
        out
    }

    fn every_split(input: &[u8]) -> Vec<(String, String)> {
        let whole = events(&[input]);
        for cut in 0..=input.len() {
            let (a, b) = input.split_at(cut);
            assert_eq!(events(&[a, b]), whole, "cut at {cut}");
        }
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(events(&bytes), whole, "byte by byte");
        whole
    }

    #[test]
    fn framing_of_the_spec() {
        let input = b": comment\r\nevent: ping\r\ndata: {}\r\n\r\nevent:message_start\ndata:{\"a\":1}\n\n\
                      data: one\ndata\ndata:  two\n\nevent: x\n\ndata: last\r\r";
        let got = every_split(input);
        assert_eq!(
            got,
            vec![
                ("ping".into(), "{}".into()),
                ("message_start".into(), "{\"a\":1}".into()),
                (String::new(), "one\n\n two".into()),
                (String::new(), "last".into()),
            ]
        );
    }

    #[test]
    fn unknown_fields_and_long_names_are_skipped() {
        let long = format!("event: {}\ndata: x\n\nid: 7\nretry: 10\ndatax: no\ndata: y\n\n", "e".repeat(100));
        let got = every_split(long.as_bytes());
        assert_eq!(got, vec![(String::new(), "x".into()), (String::new(), "y".into())]);
    }

    #[test]
    fn an_unfinished_event_is_not_dispatched() {
        assert!(events(&[b"event: message_delta\ndata: {\"usage\":"]).is_empty());
    }
}
