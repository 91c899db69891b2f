//! What every `Storage` must do, checked on both backends: records come back as stored,
//! through a restart, and commits that must be one commit are.

use std::collections::BTreeMap;

use super::test_backends::{Backend, TestStore, on_both_backends};
use super::{
    AppendBatch, BotRecord, ClaimRecord, DedupRecord, DirectMember, FileRecord, ImageInfo,
    MentionMark, MessageKind, MessageRecord, Reaction, ReaderRecord, ReplyPreview, RoomHead,
    RoomRecord, SessionRecord,
};
use crate::domain::Slug;

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

fn head(room: &str, last_id: i64, counted: i64) -> RoomHead {
    RoomHead {
        slug: slug(room),
        last_id,
        counted,
        last_activity: AT + last_id,
        mentions: vec![MentionMark {
            key: "bob".into(),
            id: last_id,
        }],
    }
}

on_both_backends!(
    rooms_keep_every_field_and_a_taken_slug_is_not_created_again,
    an_append_stores_messages_resends_and_room_heads_in_one_commit,
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

fn an_append_stores_messages_resends_and_room_heads_in_one_commit(backend: Backend) {
    let store = TestStore::open(backend);
    for name in ["lobby", "other"] {
        store
            .create_room(&RoomRecord::new(slug(name), name.into(), "", AT))
            .unwrap();
    }
    let mut first = said("lobby", 1, "hello");
    first.client_id = Some("c1".into());
    let resend = DedupRecord {
        key: "login-alice/c1".into(),
        room: slug("lobby"),
        id: 1,
    };
    let batch = AppendBatch {
        messages: vec![
            first.clone(),
            said("lobby", 2, "again"),
            said("other", 1, "elsewhere"),
        ],
        dedup: vec![resend.clone()],
        room_heads: vec![head("lobby", 2, 2), head("other", 1, 1)],
    };
    store.append(&batch).unwrap();

    let lobby = store.messages(&slug("lobby"), 0, 10).unwrap();
    assert_eq!(lobby, batch.messages[..2]);
    assert_eq!(
        store.messages(&slug("lobby"), 2, 2).unwrap(),
        batch.messages[1..2]
    );
    assert_eq!(
        store.dedup_lookup(&resend.key).unwrap(),
        Some(resend.clone())
    );
    assert_eq!(store.dedup_lookup("login-alice/c2").unwrap(), None);

    // A batch that fails stores nothing of itself: the same resend key twice.
    let failing = AppendBatch {
        messages: vec![said("lobby", 3, "lost")],
        dedup: vec![resend.clone()],
        room_heads: vec![head("lobby", 3, 3)],
    };
    assert!(store.append(&failing).is_err());

    let store = store.reopen();
    assert_eq!(
        store.messages(&slug("lobby"), 1, 10).unwrap(),
        batch.messages[..2]
    );
    assert_eq!(store.dedup_records().unwrap(), vec![resend]);
    let rooms: BTreeMap<String, RoomRecord> = store
        .rooms()
        .unwrap()
        .into_iter()
        .map(|r| (r.slug.to_string(), r))
        .collect();
    let lobby = &rooms["lobby"];
    assert_eq!(
        (lobby.last_id, lobby.counted, lobby.last_activity),
        (2, 2, AT + 2)
    );
    assert_eq!(lobby.mentions, head("lobby", 2, 2).mentions);
    assert_eq!(rooms["other"].last_id, 1);
}

fn edits_and_rewrites_replace_a_message_in_place(backend: Backend) {
    let store = TestStore::open(backend);
    store
        .create_room(&RoomRecord::new(slug("lobby"), "lobby".into(), "", AT))
        .unwrap();
    let original = said("lobby", 1, "first words");
    store
        .append(&AppendBatch {
            messages: vec![original.clone(), said("lobby", 2, "second")],
            dedup: Vec::new(),
            room_heads: vec![head("lobby", 2, 2)],
        })
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
    store.delete_login_sessions("login-a").unwrap();
    assert_eq!(store.session("s1").unwrap(), None);
    assert_eq!(store.session("s2").unwrap(), None);
    store.delete_session("s4").unwrap();
    assert_eq!(store.delete_expired_sessions(i64::MAX).unwrap(), 0);
}
