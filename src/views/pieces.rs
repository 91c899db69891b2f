//! A response body of shared pieces: a page whose middle is bytes many responses share is sent
//! without copying them into a buffer of its own.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes, HttpBody};
use http_body::{Frame, SizeHint};

/// The pieces, sent in order, with their total length known (a `Content-Length`, not chunks).
pub struct Pieces(VecDeque<Bytes>);

impl Pieces {
    pub fn body(pieces: impl IntoIterator<Item = Bytes>) -> Body {
        Body::new(Pieces(pieces.into_iter().collect()))
    }
}

impl HttpBody for Pieces {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.0.pop_front().map(|piece| Ok(Frame::data(piece))))
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.0.iter().map(|piece| piece.len() as u64).sum())
    }
}
