//! Posting and changing messages: every write goes through the committer, in order.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::committer::{AppendRequest, ChangeRequest, CommitRequest};
use super::{Hub, Room};
use crate::domain::{ClientId, MessageBody, Nickname};
use crate::identity::CurrentUser;
use crate::store::{Appended, Attachment, MessageKind, StoreError, StoreResult};
use crate::views::RenderedMessage;

/// A message to post, built from parsed input only: a person's or bot's [`Nickname`] and
/// [`MessageBody`], or a line the server writes.
pub struct NewMessage {
    kind: MessageKind,
    /// The nickname, or for a system line the actor it names ("alice (admin)").
    author: String,
    /// The author's login handle; empty for a system line.
    login: String,
    body: String,
    /// `(sender, client_id)`: a resend with the same pair into the same room is stored once.
    dedup: Option<(String, String)>,
    /// The message this one answers; ignored unless it exists in the same room.
    reply_to: Option<u64>,
    /// A file already stored under `files/`; the body is then an optional caption.
    attachment: Option<Attachment>,
}

/// A change to a stored message, on behalf of a person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageChange {
    /// New text; only the author may.
    Edit(String),
    /// Leaves "message deleted" in place; only the author may.
    Delete,
    /// The same deletion by an admin, of anyone's message (the caller checked the right).
    DeleteAsAdmin,
    /// Adds or takes back the person's reaction with this emoji.
    React(String),
}

#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    #[error("there is no such message")]
    NotFound,
    #[error("only its author can change a message")]
    Forbidden,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl NewMessage {
    /// What a logged-in person wrote.
    pub fn said(by: &CurrentUser, body: MessageBody) -> NewMessage {
        NewMessage::by_person(&by.nickname, by.handle(), body.into_string(), None)
    }

    /// What a bot wrote, under its name, from its own handle.
    pub fn said_by_bot(name: &Nickname, handle: &str, body: MessageBody) -> NewMessage {
        NewMessage::by_person(name, handle, body.into_string(), None)
    }

    /// A file someone attached, with the caption they typed, if any.
    pub fn attached(
        by: &CurrentUser,
        attachment: Attachment,
        caption: Option<MessageBody>,
    ) -> NewMessage {
        let caption = caption.map(MessageBody::into_string).unwrap_or_default();
        NewMessage::by_person(&by.nickname, by.handle(), caption, Some(attachment))
    }

    fn by_person(
        author: &Nickname,
        login: &str,
        body: String,
        attachment: Option<Attachment>,
    ) -> NewMessage {
        NewMessage {
            kind: MessageKind::User,
            author: author.as_str().to_owned(),
            login: login.to_owned(),
            body,
            dedup: None,
            reply_to: None,
            attachment,
        }
    }

    /// Stored once however often `sender` (a login, or a bot's key) resends it with this
    /// `client_id`.
    pub fn with_client_id(mut self, sender: &str, client_id: Option<&ClientId>) -> NewMessage {
        self.dedup = client_id.map(|c| (sender.to_owned(), c.as_str().to_owned()));
        self
    }

    /// The message answers message `id` (ignored unless it exists in the same room).
    pub fn answering(mut self, id: Option<u64>) -> NewMessage {
        self.reply_to = id;
        self
    }

    /// A line in the stream such as "alice joined"; `actor` is kept as the author.
    pub fn system(actor: &str, body: String) -> NewMessage {
        NewMessage {
            kind: MessageKind::System,
            author: actor.to_owned(),
            login: String::new(),
            body,
            dedup: None,
            reply_to: None,
            attachment: None,
        }
    }
}

impl Hub {
    /// Queues a message for the committer; the receiver resolves once it is durable and
    /// broadcast, or with the storage error.
    pub fn submit(
        &self,
        room: &Arc<Room>,
        message: NewMessage,
    ) -> oneshot::Receiver<StoreResult<Appended>> {
        self.queue_append(room, message, false)
    }

    /// Persists and broadcasts a bot's message (shown with a "bot" badge), waiting for the
    /// commit.
    pub async fn post_as_bot(
        &self,
        room: &Arc<Room>,
        message: NewMessage,
    ) -> StoreResult<Appended> {
        committed(self.queue_append(room, message, true)).await
    }

    fn queue_append(
        &self,
        room: &Arc<Room>,
        message: NewMessage,
        bot: bool,
    ) -> oneshot::Receiver<StoreResult<Appended>> {
        let (reply, answer) = oneshot::channel();
        let dedup_key = message
            .dedup
            .as_ref()
            .map(|(login, client)| format!("{login}/{}/{client}", room.slug));
        let request = AppendRequest {
            room: room.clone(),
            kind: message.kind,
            author: message.author,
            login: message.login,
            body: message.body,
            client_id: message.dedup.map(|(_, client)| client),
            dedup_key,
            reply_to: message.reply_to,
            bot,
            attachment: message.attachment,
            reply,
            queued_at: std::time::Instant::now(),
        };
        if let Err(refused) = self.committer.try_send(CommitRequest::Append(request))
            && let CommitRequest::Append(request) = refused_request(refused)
        {
            let _ = request.reply.send(Err(StoreError::Busy));
        }
        answer
    }

    /// Edits, deletes or reacts to message `id` on behalf of `by` (an edit or deletion must
    /// come from the author's login), through the committer so it is ordered with new
    /// messages; everyone in the room gets the new rendering.
    pub async fn change_message(
        &self,
        room: &Arc<Room>,
        id: u64,
        by: &CurrentUser,
        change: MessageChange,
    ) -> Result<Arc<RenderedMessage>, ChangeError> {
        self.queue_change(room, id, by.nickname.as_str(), by.handle(), change)
            .await
    }

    /// `by` is the name a reaction shows, `login` the handle "own" is checked against.
    async fn queue_change(
        &self,
        room: &Arc<Room>,
        id: u64,
        by: &str,
        login: &str,
        change: MessageChange,
    ) -> Result<Arc<RenderedMessage>, ChangeError> {
        let (reply, answer) = oneshot::channel();
        let request = ChangeRequest {
            room: room.clone(),
            id,
            by: by.to_owned(),
            login: login.to_owned(),
            change,
            reply,
        };
        if let Err(refused) = self.committer.try_send(CommitRequest::Change(request)) {
            drop(refused_request(refused));
            return Err(StoreError::Busy.into());
        }
        committed(answer).await
    }

    /// An admin deleted someone else's message: the same "message deleted" marker, and a
    /// line in the stream that says who did it to whose message.
    pub async fn delete_as_admin(
        &self,
        room: &Arc<Room>,
        id: u64,
        by: &str,
    ) -> Result<Arc<RenderedMessage>, ChangeError> {
        let deleted = self
            .queue_change(room, id, by, "", MessageChange::DeleteAsAdmin)
            .await?;
        let line = format!("{by} deleted a message by {}", deleted.author);
        self.post(room, NewMessage::system(by, line)).await?;
        Ok(deleted)
    }

    /// Persists and broadcasts a message, waiting for the commit.
    pub async fn post(&self, room: &Arc<Room>, message: NewMessage) -> StoreResult<Appended> {
        committed(self.submit(room, message)).await
    }
}

/// The committer's answer to a request; a reply dropped unanswered means it stopped.
pub async fn committed<T, E: From<StoreError>>(
    answer: oneshot::Receiver<Result<T, E>>,
) -> Result<T, E> {
    answer
        .await
        .unwrap_or_else(|_| Err(StoreError::CommitterStopped.into()))
}

fn refused_request(refused: mpsc::error::TrySendError<CommitRequest>) -> CommitRequest {
    match refused {
        mpsc::error::TrySendError::Full(r) | mpsc::error::TrySendError::Closed(r) => r,
    }
}
