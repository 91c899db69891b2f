//! What every `Storage` must do, checked on both backends: records come back as stored,
//! through a restart, and commits that must be one commit are.

use std::collections::BTreeMap;

use super::test_backends::{Backend, TestStore, on_both_backends};
use super::{
    Appended, BotRecord, ClaimRecord, DedupRecord, DirectMember, FileRecord, ImageInfo,
    MentionMark, MessageKind, MessageRecord, PendingMessage, Reaction, ReaderRecord, ReplyPreview,
    RoomHead, RoomRecord, SessionRecord,
};
use crate::domain::Slug;
use crate::identity::LoginEnd;

const AT: i64 = 1_700_000_000_000;

fn slug(text: &str) -> Slug {
    Slug::parse(text).unwrap()
}

fn said(room: &str, id: u64, body: &str) -> MessageRecord {
    MessageRecord::new(
        &slug(room),
        id,
        MessageKind::User,
        "alice".into(),
        "login-alice".into(),
        body.into(),
        AT + id as i64,
    )
}

/// A room after its message `last_id`, sent at `AT + last_id` (as `said` makes it).
fn head(room: &str, last_id: i64, counted: i64, mentions: Vec<MentionMark>) -> RoomHead {
    RoomHead {
        slug: slug(room),
        last_id,
        counted,
        last_activity: AT + last_id,
        mentions,
    }
}

on_both_backends!(
    rooms_keep_every_field_and_a_taken_slug_is_not_created_again,
    an_append_gives_each_room_its_next_ids_and_stores_a_resend_once,
    changing_a_room_record_keeps_its_ids_going,
    edits_and_rewrites_replace_a_message_in_place,
    readers_keep_their_marks_mutes_and_left_rooms,
    small_records_round_trip,
    a_bot_and_its_name_are_stored_and_deleted_together,
    sessions_tell_which_logins_are_live_and_expire,
);

fn rooms_keep_every_field_and_a_taken_slug_is_not_created_again(backend: Backend) {
    let store = TestStore::open(backend);
    let mut room = RoomRecord::new(slug("dm-ab"), "ab".into(), "login-a", AT);
    assert!(store.create_room(&room).unwrap());
    let mut other = room.clone();
    other.name = "someone else's".into();
    assert!(!store.create_room(&other).unwrap(), "the slug is taken");

    store.set_topic(&room.slug, "plans").unwrap();
    store.rename_room(&room.slug, "A and B").unwrap();
    store.set_archived(&room.slug, true).unwrap();
    let members = vec![
        DirectMember {
            login: "handle-a".into(),
            name: "a".into(),
            former: false,
        },
        DirectMember {
            login: "handle-b".into(),
            name: "b".into(),
            former: true,
        },
    ];
    store.set_members(&room.slug, &members).unwrap();
    room.topic = "plans".into();
    room.name = "A and B".into();
    room.archived = true;
    room.members = members;

    let store = store.reopen();
    assert_eq!(store.rooms().unwrap(), vec![room]);
}

fn an_append_gives_each_room_its_next_ids_and_stores_a_resend_once(backend: Backend) {
    let store = TestStore::open(backend);
    for name in ["lobby", "other"] {
        store
            .create_room(&RoomRecord::new(slug(name), name.into(), "", AT))
            .unwrap();
    }
    let mut first = said("lobby", 1, "hello");
    first.client_id = Some("c1".into());
    first.mentioned = vec!["handle-bob".into()];
    let resent = |record: &MessageRecord| PendingMessage {
        record: record.clone(),
        dedup_key: Some("login-alice/c1".into()),
        webhooks: Vec::new(),
    };
    let batch = vec![
        resent(&first),
        said("lobby", 2, "again").into(),
        said("other", 1, "elsewhere").into(),
        // The same send again, in the same batch.
        resent(&first),
    ];
    let outcome = store.append(&batch).unwrap();
    assert_eq!(
        outcome.appended,
        [
            Appended::Stored(1),
            Appended::Stored(2),
            Appended::Stored(1),
            Appended::Duplicate(1)
        ]
    );
    let mention = MentionMark {
        key: "handle-bob".into(),
        id: 1,
    };
    assert_eq!(
        outcome.heads,
        [
            head("lobby", 2, 2, vec![mention.clone()]),
            head("other", 1, 1, Vec::new())
        ]
    );
    let stored = vec![first.clone(), said("lobby", 2, "again")];
    assert_eq!(store.messages(&slug("lobby"), 0, 10).unwrap(), stored);
    assert_eq!(store.messages(&slug("lobby"), 2, 2).unwrap(), stored[1..]);
    let resend = DedupRecord {
        key: "login-alice/c1".into(),
        room: slug("lobby"),
        id: 1,
    };
    assert_eq!(store.dedup_records().unwrap(), vec![resend.clone()]);

    // A later resend is stored once too; ids go on from the room's record.
    let later = store
        .append(&[resent(&first), said("lobby", 3, "third").into()])
        .unwrap();
    assert_eq!(
        later.appended,
        [Appended::Duplicate(1), Appended::Stored(3)]
    );

    // A batch that fails stores nothing of itself: here lobby's next id is taken already.
    store.rewrite(&[said("lobby", 4, "planted")], &[]).unwrap();
    let failing = [
        said("other", 2, "lost").into(),
        said("lobby", 4, "lost").into(),
    ];
    assert!(store.append(&failing).is_err());
    let nowhere = [said("absent", 1, "lost").into()];
    assert!(store.append(&nowhere).is_err(), "no such room");

    let store = store.reopen();
    assert_eq!(store.messages(&slug("other"), 1, 10).unwrap().len(), 1);
    assert_eq!(store.dedup_records().unwrap(), vec![resend]);
    let lobby = store.room(&slug("lobby")).unwrap().unwrap();
    assert_eq!(RoomHead::from(&lobby), head("lobby", 3, 3, vec![mention]));
    assert_eq!(store.room(&slug("other")).unwrap().unwrap().last_id, 1);
    assert_eq!(store.room(&slug("absent")).unwrap(), None);
}

fn changing_a_room_record_keeps_its_ids_going(backend: Backend) {
    let store = TestStore::open(backend);
    let lobby = slug("lobby");
    store
        .create_room(&RoomRecord::new(lobby.clone(), "lobby".into(), "", AT))
        .unwrap();
    for expected in 1..=8 {
        match expected % 4 {
            0 => store
                .rename_room(&lobby, &format!("lobby {expected}"))
                .unwrap(),
            1 => store
                .set_topic(&lobby, &format!("topic {expected}"))
                .unwrap(),
            2 => store.set_archived(&lobby, expected % 3 == 0).unwrap(),
            _ => store.set_members(&lobby, &[]).unwrap(),
        }
        let outcome = store.append(&[said("lobby", 0, "next").into()]).unwrap();
        assert_eq!(outcome.appended, [Appended::Stored(expected)]);
    }
}

fn edits_and_rewrites_replace_a_message_in_place(backend: Backend) {
    let store = TestStore::open(backend);
    store
        .create_room(&RoomRecord::new(slug("lobby"), "lobby".into(), "", AT))
        .unwrap();
    let original = said("lobby", 1, "first words");
    store
        .append(&[original.clone().into(), said("lobby", 2, "second").into()])
        .unwrap();
    let mut edited = original.clone();
    edited.body = "better words".into();
    edited.edited_at = Some(AT + 50);
    edited.reactions = vec![Reaction {
        emoji: "🎉".into(),
        by: vec!["bob".into()],
    }];
    edited.reply_to = Some(ReplyPreview {
        id: 2,
        author: "bob".into(),
        excerpt: "second".into(),
    });
    edited.mentioned = vec!["handle-bob".into()];
    store.update_message(&edited).unwrap();

    let mut rewritten = said("lobby", 2, "second");
    rewritten.login = "handle-former".into();
    let mut room = store.rooms().unwrap().remove(0);
    room.counted = 1;
    store
        .rewrite(&[rewritten.clone()], &[room.clone()])
        .unwrap();

    let store = store.reopen();
    assert_eq!(
        store.messages(&slug("lobby"), 1, 2).unwrap(),
        vec![edited, rewritten]
    );
    assert_eq!(store.rooms().unwrap(), vec![room]);
}

fn readers_keep_their_marks_mutes_and_left_rooms(backend: Backend) {
    let store = TestStore::open(backend);
    let mut reader = ReaderRecord {
        login_id: "login-a".into(),
        last_read: BTreeMap::from([("lobby".into(), 7), ("dev".into(), 3)]),
        // A count may outlive its mark, as after leaving.
        read_counted: BTreeMap::from([("lobby".into(), 5), ("gone".into(), 2)]),
        muted: vec!["dev".into()],
        left: vec!["gone".into()],
    };
    store.save_reader(&reader).unwrap();
    let other = ReaderRecord {
        login_id: "login-b".into(),
        ..ReaderRecord::default()
    };
    store.save_reader(&other).unwrap();
    assert_eq!(store.reader("login-a").unwrap(), Some(reader.clone()));

    // Saving replaces the record whole: a mark not in it is gone.
    reader.last_read.remove("dev");
    reader.muted.clear();
    store.save_reader(&reader).unwrap();

    let store = store.reopen();
    assert_eq!(store.reader("login-a").unwrap(), Some(reader.clone()));
    assert_eq!(store.reader("login-c").unwrap(), None);
    let mut all = store.readers().unwrap();
    all.sort_by(|a, b| a.login_id.cmp(&b.login_id));
    assert_eq!(all, vec![reader, other]);
}

fn small_records_round_trip(backend: Backend) {
    let store = TestStore::open(backend);
    store.put_setting("data_version", "1").unwrap();
    store.put_setting("data_version", "2").unwrap();
    let file = FileRecord {
        hash: "ab12".into(),
        size: 3_000_000,
        media_type: "image/png".into(),
        image: Some(ImageInfo {
            width: 300,
            height: 900,
            thumb_width: 160,
            thumb_height: 480,
            thumb_type: "image/webp".into(),
        }),
        created_at: AT,
    };
    store.put_file(&file).unwrap();
    let mut claim = ClaimRecord {
        nickname_key: "alice".into(),
        nickname: "Alice".into(),
        login_id: "login-a".into(),
        released_at: None,
        password_hash: None,
    };
    store.put_claim(&claim).unwrap();
    claim.password_hash = Some("$argon2id$…".into());
    store.put_claim(&claim).unwrap();
    let released = ClaimRecord {
        nickname_key: "bob".into(),
        nickname: "bob".into(),
        login_id: "login-b".into(),
        released_at: Some(AT),
        password_hash: None,
    };
    store.put_claim(&released).unwrap();
    store.delete_claim("bob").unwrap();

    let store = store.reopen();
    assert_eq!(store.setting("data_version").unwrap().as_deref(), Some("2"));
    assert_eq!(store.setting("absent").unwrap(), None);
    assert_eq!(store.file("ab12").unwrap(), Some(file));
    assert_eq!(store.file("cd34").unwrap(), None);
    assert_eq!(store.claim("alice").unwrap(), Some(claim.clone()));
    assert_eq!(store.claim("bob").unwrap(), None);
    assert_eq!(
        store.holder("alice", AT).unwrap(),
        Some(claim),
        "a password keeps the name held with no session"
    );
}

fn a_bot_and_its_name_are_stored_and_deleted_together(backend: Backend) {
    let store = TestStore::open(backend);
    let mut bot = BotRecord {
        id: "b1".into(),
        name: "helper".into(),
        owner_login: "login-a".into(),
        token_hash: Some("hash".into()),
        webhook_url: None,
        origin: "http://127.0.0.1:3000".into(),
        created_at: AT,
    };
    let claim = ClaimRecord {
        nickname_key: "helper".into(),
        nickname: "helper".into(),
        login_id: super::bot_login_id("b1"),
        released_at: None,
        password_hash: None,
    };
    store.create_bot(&bot, &claim).unwrap();
    bot.token_hash = None;
    bot.webhook_url = Some("https://example.com/hook".into());
    store.save_bot(&bot).unwrap();

    let store = store.reopen();
    assert_eq!(store.bots().unwrap(), vec![bot.clone()]);
    assert_eq!(store.holder("helper", AT).unwrap(), Some(claim));
    store.delete_bot(&bot.id, Some("helper")).unwrap();
    assert_eq!(store.bots().unwrap(), vec![]);
    assert_eq!(store.claim("helper").unwrap(), None);
}

fn sessions_tell_which_logins_are_live_and_expire(backend: Backend) {
    let store = TestStore::open(backend);
    let session = |id: &str, login: Option<&str>, expires_at: i64| SessionRecord {
        id: id.into(),
        login_id: login.map(str::to_owned),
        data: format!(r#"{{"id":"{id}"}}"#),
        expires_at,
    };
    let mut phone = session("s1", Some("login-a"), 1000);
    assert!(store.create_session(&phone).unwrap());
    assert!(
        !store.create_session(&session("s1", None, 5)).unwrap(),
        "the id is taken"
    );
    assert!(
        store
            .create_session(&session("s2", Some("login-a"), 500))
            .unwrap()
    );
    assert!(
        store
            .create_session(&session("s3", Some("login-b"), 100))
            .unwrap()
    );
    assert!(store.create_session(&session("s4", None, 100)).unwrap());
    phone.expires_at = 2000;
    store.save_session(&phone).unwrap();

    let store = store.reopen();
    assert_eq!(store.session("s1").unwrap(), Some(phone));
    assert!(store.login_is_live("login-a", 1999).unwrap());
    assert!(
        !store.login_is_live("login-a", 2000).unwrap(),
        "expired at its second"
    );
    assert!(!store.login_is_live("login-c", 0).unwrap());

    assert_eq!(store.delete_expired_sessions(101).unwrap(), 2);
    assert_eq!(store.session("s3").unwrap(), None);
    store
        .delete_login_sessions("login-a", LoginEnd::LoggedOut)
        .unwrap();
    assert_eq!(store.session("s1").unwrap(), None);
    assert_eq!(store.session("s2").unwrap(), None);
    store.delete_session("s4").unwrap();
    assert_eq!(store.delete_expired_sessions(i64::MAX).unwrap(), 0);
}
