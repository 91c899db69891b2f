//! A long text as continuation frames.

use axum::body::Bytes;
use tungstenite::Message;
use tungstenite::protocol::frame::Frame;
use tungstenite::protocol::frame::coding::{Data, OpCode};

use super::outbox::Outgoing;

/// Longer text goes out as continuation frames of at most this many bytes, which bounds
/// tungstenite's write buffer. Most single messages fit in one.
pub(super) const TEXT_PIECE: usize = 1024;

/// One outgoing message as WebSocket frames: text longer than `TEXT_PIECE` as a text frame
/// and continuation frames, cut between characters.
pub(super) struct Pieces {
    rest: Option<Bytes>,
    ping: bool,
    started: bool,
}

impl Pieces {
    pub(super) fn new(outgoing: Outgoing) -> Pieces {
        match outgoing {
            Outgoing::Text(text) => Pieces {
                rest: Some(text),
                ping: false,
                started: false,
            },
            Outgoing::Ping => Pieces {
                rest: None,
                ping: true,
                started: false,
            },
        }
    }

    pub(super) fn next(&mut self) -> Option<Message> {
        if std::mem::take(&mut self.ping) {
            return Some(Message::Ping(Bytes::new()));
        }
        let rest = self.rest.as_mut()?;
        let mut cut = rest.len().min(TEXT_PIECE);
        // Not inside a UTF-8 sequence: continuation bytes are 0b10xx_xxxx.
        while cut > 0 && cut < rest.len() && rest[cut] & 0xC0 == 0x80 {
            cut -= 1;
        }
        let piece = rest.split_to(cut);
        let last = rest.is_empty();
        if last {
            self.rest = None;
        }
        let opcode = if std::mem::replace(&mut self.started, true) {
            OpCode::Data(Data::Continue)
        } else {
            OpCode::Data(Data::Text)
        };
        Some(Message::Frame(Frame::message(piece, opcode, last)))
    }
}
