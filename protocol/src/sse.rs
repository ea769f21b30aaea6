//! Server-Sent Events: the encoder both servers use for streamed answers, and an
//! incremental decoder the client feeds with arbitrary network chunks.
//!
//! The decoder follows the WHATWG event-stream rules: lines end in LF, CR or CRLF (even
//! when a CRLF pair is split across chunks), `:` starts a comment, `data` lines of one
//! event are joined with LF, an empty line dispatches the event.

use bytes::{Bytes, BytesMut};

/// Frames one JSON-RPC message as an SSE `message` event.
pub fn encode_event(data: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(data.len() + 16);
    out.extend_from_slice(b"event: message\ndata: ");
    // JSON from serde has no raw newlines; split defensively so any payload stays one event.
    for (i, line) in data.split(|&b| b == b'\n').enumerate() {
        if i > 0 {
            out.extend_from_slice(b"\ndata: ");
        }
        out.extend_from_slice(line.strip_suffix(b"\r").unwrap_or(line));
    }
    out.extend_from_slice(b"\n\n");
    out.freeze()
}

/// A keep-alive comment: keeps proxies from timing out idle streams and lets the server
/// notice a client that went away.
pub fn keep_alive() -> Bytes {
    Bytes::from_static(b": keep-alive\n\n")
}

/// One decoded event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Event {
    /// The `event:` field ("message" when absent).
    pub event: Option<String>,
    /// The `data:` lines joined with LF.
    pub data: String,
    /// The `id:` field.
    pub id: Option<String>,
}

/// Incremental SSE decoder: push bytes in, take complete events out.
#[derive(Debug, Default)]
pub struct Decoder {
    /// Bytes of the line not yet terminated.
    line: Vec<u8>,
    /// The previous chunk ended in CR: a leading LF of the next chunk belongs to it.
    after_cr: bool,
    /// The event being assembled.
    current: Event,
    /// Whether any data line was seen for the current event.
    has_data: bool,
    /// A cap on one line, so a peer cannot make us buffer without bound.
    max_line: usize,
}

/// The stream broke the decoder's limits.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("SSE line longer than {0} bytes")]
pub struct LineTooLong(pub usize);

impl Decoder {
    /// A decoder that refuses lines longer than `max_line` bytes.
    pub fn new(max_line: usize) -> Self {
        Decoder {
            max_line,
            ..Default::default()
        }
    }

    /// Feeds a chunk; returns the events it completed.
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<Event>, LineTooLong> {
        let mut events = Vec::new();
        let mut rest = chunk;
        if self.after_cr {
            self.after_cr = false;
            if let Some(stripped) = rest.strip_prefix(b"\n") {
                rest = stripped;
            }
        }
        while let Some(pos) = rest.iter().position(|&b| b == b'\n' || b == b'\r') {
            self.line.extend_from_slice(&rest[..pos]);
            let line = std::mem::take(&mut self.line);
            self.process_line(&line, &mut events);
            let is_cr = rest[pos] == b'\r';
            rest = &rest[pos + 1..];
            if is_cr {
                match rest.first() {
                    Some(b'\n') => rest = &rest[1..],
                    None => self.after_cr = true,
                    _ => {}
                }
            }
        }
        self.line.extend_from_slice(rest);
        if self.max_line > 0 && self.line.len() > self.max_line {
            return Err(LineTooLong(self.max_line));
        }
        Ok(events)
    }

    fn process_line(&mut self, line: &[u8], events: &mut Vec<Event>) {
        if line.is_empty() {
            if self.has_data {
                events.push(std::mem::take(&mut self.current));
            } else {
                self.current = Event::default();
            }
            self.has_data = false;
            return;
        }
        if line[0] == b':' {
            return;
        }
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (line, &b""[..]),
        };
        let value = String::from_utf8_lossy(value);
        match field {
            b"data" => {
                if self.has_data {
                    self.current.data.push('\n');
                }
                self.current.data.push_str(&value);
                self.has_data = true;
            }
            b"event" => self.current.event = Some(value.into_owned()),
            b"id" => self.current.id = Some(value.into_owned()),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_in_pieces(stream: &[u8], piece: usize) -> Vec<Event> {
        let mut d = Decoder::new(1 << 20);
        let mut out = Vec::new();
        for chunk in stream.chunks(piece) {
            out.extend(d.push(chunk).unwrap());
        }
        out
    }

    #[test]
    fn round_trips_through_every_chunk_size() {
        let mut stream = Vec::new();
        stream.extend_from_slice(&encode_event(br#"{"a":1}"#));
        stream.extend_from_slice(&keep_alive());
        stream.extend_from_slice(&encode_event(br#"{"b":"x y"}"#));
        for piece in 1..stream.len() {
            let events = decode_in_pieces(&stream, piece);
            let data: Vec<_> = events.iter().map(|e| e.data.as_str()).collect();
            assert_eq!(data, [r#"{"a":1}"#, r#"{"b":"x y"}"#], "piece size {piece}");
            assert_eq!(events[0].event.as_deref(), Some("message"));
        }
    }

    #[test]
    fn handles_crlf_cr_comments_multiline_and_ids() {
        let stream = b": hello\r\nid: 7\r\nevent: message\r\ndata: line1\r\ndata:line2\r\n\r\ndata: x\r\rdata: y\n\n";
        for piece in 1..stream.len() {
            let events = decode_in_pieces(stream, piece);
            assert_eq!(events.len(), 3, "piece size {piece}");
            assert_eq!(events[0].data, "line1\nline2");
            assert_eq!(events[0].id.as_deref(), Some("7"));
            assert_eq!(events[1].data, "x");
            assert_eq!(events[2].data, "y");
        }
    }

    #[test]
    fn events_without_data_are_not_dispatched() {
        let events = decode_in_pieces(b"event: ping\n\nid: 3\n\n: c\n\n", 4);
        assert!(events.is_empty());
    }

    #[test]
    fn encoder_splits_embedded_newlines() {
        let frame = encode_event(b"a\nb");
        assert_eq!(&frame[..], b"event: message\ndata: a\ndata: b\n\n");
        let events = decode_in_pieces(&frame, 3);
        assert_eq!(events[0].data, "a\nb");
    }

    #[test]
    fn refuses_unbounded_lines() {
        let mut d = Decoder::new(8);
        assert!(d.push(b"data: 0123456789").is_err());
    }
}
