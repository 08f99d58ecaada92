//! Control characters in HTTP/1 header values answered with problem+json instead of a bare 400.
//!
//! The HTTP/1 parser refuses a header value holding a control byte (NUL, DEL, ...) before any
//! middleware runs, with an empty 400 that carries no `code`. [`HeaderGuard`] (around every HTTP
//! connection, see [`crate::connections`]) reads each request head as it arrives and replaces such
//! bytes in header lines (never in the request line or a body) with `0xFF`, a byte the parser
//! accepts and no UTF-8 text contains; [`reject_invalid_header_values`] then answers every request
//! with such a header value with 400 `request.invalid_header`. Bodies are skipped by their
//! `Content-Length`; after a chunked body, an upgrade or the HTTP/2 preface the connection is passed
//! through untouched.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use longship_errors::{Error, PlatformCode};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The byte a control byte in a header value is replaced with.
const MARK: u8 = 0xFF;
/// Longest header line kept to read the framing headers (longer lines are not framing headers).
const MAX_KEPT_LINE: usize = 256;

/// Where the reader is in the byte stream of an HTTP/1 connection.
#[derive(Debug)]
enum State {
    /// In a request head.
    Head(Head),
    /// In a body of known length: this many bytes left.
    Body(u64),
    /// Not HTTP/1 framing we follow (chunked body, upgrade, HTTP/2): bytes pass untouched.
    Through,
}

#[derive(Debug, Default)]
struct Head {
    /// Past the request line.
    in_headers: bool,
    /// Bytes of the current line (without CR).
    line_len: usize,
    /// The current line's first bytes, lower-cased (to find the framing headers).
    line: Vec<u8>,
    /// Whether the request line is the HTTP/2 preface.
    http2: bool,
    content_length: Option<u64>,
    lengths_seen: u32,
    chunked_or_upgrade: bool,
}

impl Head {
    fn end_line(&mut self) -> Option<State> {
        if self.line_len == 0 && self.in_headers {
            return Some(self.framing());
        }
        if self.in_headers {
            self.framing_header();
        } else {
            self.http2 = self.line.starts_with(b"pri * http/2.0");
            self.in_headers = true;
        }
        self.line.clear();
        self.line_len = 0;
        None
    }

    fn framing_header(&mut self) {
        let Some(colon) = self.line.iter().position(|b| *b == b':') else {
            return;
        };
        let (name, value) = (&self.line[..colon], &self.line[colon + 1..]);
        match name {
            b"content-length" => {
                self.lengths_seen += 1;
                self.content_length = std::str::from_utf8(value)
                    .ok()
                    .and_then(|v| v.trim().parse().ok());
            }
            b"transfer-encoding" | b"upgrade" => self.chunked_or_upgrade = true,
            _ => {}
        }
    }

    fn framing(&self) -> State {
        if self.http2 || self.chunked_or_upgrade || self.lengths_seen > 1 {
            return State::Through;
        }
        match (self.lengths_seen, self.content_length) {
            (0, _) | (1, Some(0)) => State::Head(Head::default()),
            (1, Some(n)) => State::Body(n),
            // an unparsable length: the server refuses the request and closes
            _ => State::Through,
        }
    }
}

/// Whether `b` may not appear in a header value (RFC 9110: VCHAR, SP, HTAB and obs-text only).
fn forbidden(b: u8) -> bool {
    (b < 0x20 && b != b'\t') || b == 0x7F
}

/// A connection whose request heads have control bytes in header lines replaced by `0xFF`.
#[derive(Debug)]
pub struct HeaderGuard<IO> {
    inner: IO,
    state: State,
}

impl<IO> HeaderGuard<IO> {
    /// Guards `inner`.
    pub fn new(inner: IO) -> HeaderGuard<IO> {
        HeaderGuard {
            inner,
            state: State::Head(Head::default()),
        }
    }

    /// Rewrites `bytes` (just read) and advances the state.
    fn scan(&mut self, bytes: &mut [u8]) {
        let mut i = 0;
        while i < bytes.len() {
            match &mut self.state {
                State::Through => return,
                State::Body(left) => {
                    let skip = (*left).min((bytes.len() - i) as u64);
                    *left -= skip;
                    i += skip as usize;
                    if *left == 0 {
                        self.state = State::Head(Head::default());
                    }
                }
                State::Head(head) => {
                    let b = bytes[i];
                    i += 1;
                    match b {
                        b'\n' => {
                            if let Some(next) = head.end_line() {
                                self.state = next;
                            }
                        }
                        b'\r' => {}
                        _ => {
                            if head.in_headers && forbidden(b) {
                                bytes[i - 1] = MARK;
                            }
                            if head.line.len() < MAX_KEPT_LINE && b != b' ' && b != b'\t' {
                                head.line.push(bytes[i - 1].to_ascii_lowercase());
                            }
                            head.line_len += 1;
                        }
                    }
                }
            }
        }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for HeaderGuard<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            let filled = buf.filled_mut();
            let mut fresh = filled[before..].to_vec();
            self.scan(&mut fresh);
            filled[before..].copy_from_slice(&fresh);
        }
        polled
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for HeaderGuard<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// axum middleware: a header value holding a control byte (as [`HeaderGuard`] marks it: `0xFF`,
/// a byte no UTF-8 text contains) is 400 `request.invalid_header`. Other non-ASCII bytes are left
/// to the handlers, which refuse them where a header must be ASCII.
pub async fn reject_invalid_header_values(request: Request, next: Next) -> Response {
    let bad = request
        .headers()
        .iter()
        .find(|(_, value)| value.as_bytes().iter().any(|b| forbidden(*b) || *b == MARK));
    if let Some((name, _)) = bad {
        return Error::coded(
            PlatformCode::InvalidHeader,
            format!("the {name} header holds control characters"),
        )
        .into_response();
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guarded(chunks: &[&[u8]]) -> Vec<u8> {
        let mut guard = HeaderGuard::new(());
        let mut out = Vec::new();
        for chunk in chunks {
            let mut bytes = chunk.to_vec();
            guard.scan(&mut bytes);
            out.extend(bytes);
        }
        out
    }

    #[test]
    fn control_bytes_in_header_values_are_marked_in_every_head_but_not_in_bodies() {
        let first = b"POST /v1/orders HTTP/1.1\r\nIdempotency-Key: a\x7fb\r\nContent-Length: 3\r\n\r\n\x01\x7f\x02";
        let second = b"GET /x HTTP/1.1\r\nX: \x00\r\n\r\n";
        let out = guarded(&[&first[..20], &first[20..], &second[..]]);
        let text = String::from_utf8_lossy(&out);
        assert!(text.contains("Idempotency-Key: a\u{FFFD}b"), "{text}");
        assert!(
            out.windows(3).any(|w| w == b"\x01\x7f\x02"),
            "body untouched"
        );
        assert!(out.ends_with(b"X: \xff\r\n\r\n"), "second head marked");
    }

    #[test]
    fn chunked_bodies_upgrades_and_http2_pass_through() {
        let chunked =
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\n\x7f\r\n0\r\n\r\n";
        assert_eq!(guarded(&[chunked]), chunked.to_vec());
        let h2 = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x12\x04";
        assert_eq!(guarded(&[h2]), h2.to_vec());
    }
}
