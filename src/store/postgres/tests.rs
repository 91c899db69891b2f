//! What only PostgreSQL has: its schema's migrations, backups by `pg_dump`, and instances
//! sharing one database.

use std::sync::{Arc, Barrier};
use std::time::Duration;

use super::{PG_DUMP_INSTEAD, PgStore, test_cluster};
use crate::domain::Slug;
use crate::store::{
    Announcement, Appended, MessageKind, MessageRecord, PendingMessage, Reaction, ReaderRecord,
    RoomRecord, Storage,
};

/// How long a test waits for an announcement.
const WAIT: Duration = Duration::from_secs(5);

#[test]
fn instances_starting_at_once_migrate_the_schema_exactly_once() {
    let url = test_cluster::fresh_database();
    let starting: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || PgStore::connect(&url).map(drop))
        })
        .collect();
    for start in starting {
        start.join().unwrap().expect("every instance starts");
    }
    PgStore::connect(&url).expect("and again later, with nothing to do");
    let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let applied: Vec<i32> = client
        .query(
            "SELECT version FROM schema_migrations ORDER BY version",
            &[],
        )
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(applied, vec![1, 2, 3, 4, 5, 6]);
}

#[test]
fn a_backup_of_postgres_data_points_to_pg_dump() {
    let store = PgStore::connect(&test_cluster::fresh_database()).unwrap();
    let error = store.dump(&mut Vec::new()).unwrap_err().to_string();
    assert!(error.contains(PG_DUMP_INSTEAD), "{error}");
}

#[test]
fn a_database_that_is_not_there_is_an_error_not_a_hang() {
    let url = test_cluster::fresh_database().replace("/test_", "/missing_");
    assert!(PgStore::connect(&url).is_err());
}

fn lobby_message(body: &str) -> MessageRecord {
    MessageRecord::new(
        &Slug::lobby(),
        0,
        MessageKind::User,
        "alice".into(),
        "login-alice".into(),
        body.into(),
        1_700_000_000_000,
    )
}

fn resend(body: &str, key: &str) -> PendingMessage {
    PendingMessage {
        record: lobby_message(body),
        dedup_key: Some(key.into()),
        webhooks: Vec::new(),
    }
}

/// Two stores on one database, as two instances have, with the lobby created.
fn two_instances() -> [Arc<PgStore>; 2] {
    let url = test_cluster::fresh_database();
    let stores = [(); 2].map(|_| Arc::new(PgStore::connect(&url).unwrap()));
    let lobby = RoomRecord::new(Slug::lobby(), "lobby".into(), "", 0);
    stores[0].create_room(&lobby).unwrap();
    stores
}

#[test]
fn two_instances_appending_to_one_room_share_one_dense_sequence() {
    const BATCHES: usize = 60;
    let stores = two_instances();
    let start = Arc::new(Barrier::new(stores.len()));
    let writers: Vec<_> = stores
        .iter()
        .enumerate()
        .map(|(writer, store)| {
            let (store, start) = (store.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                let mut ids = Vec::new();
                for n in 0..BATCHES {
                    let batch: Vec<PendingMessage> = (0..=n % 4)
                        .map(|m| lobby_message(&format!("{writer}/{n}/{m}")).into())
                        .collect();
                    let outcome = store.append(&batch).unwrap();
                    let batch_ids: Vec<u64> = outcome.appended.iter().map(|a| a.id()).collect();
                    // One transaction takes its ids together, whatever the other one does.
                    assert!(
                        batch_ids.windows(2).all(|w| w[1] == w[0] + 1),
                        "{batch_ids:?}"
                    );
                    ids.extend(batch_ids);
                }
                ids
            })
        })
        .collect();
    let mut ids: Vec<u64> = writers
        .into_iter()
        .flat_map(|w| w.join().unwrap())
        .collect();
    ids.sort_unstable();
    let total = ids.len() as u64;
    assert_eq!(ids, (1..=total).collect::<Vec<u64>>(), "dense, none twice");

    let stored = stores[1].messages(&Slug::lobby(), 1, total + 10).unwrap();
    assert_eq!(stored.len() as u64, total);
    let mut bodies: Vec<&str> = stored.iter().map(|m| m.body.as_str()).collect();
    bodies.sort_unstable();
    bodies.dedup();
    assert_eq!(bodies.len() as u64, total, "every message stored once");
    let room = stores[0].room(&Slug::lobby()).unwrap().unwrap();
    assert_eq!((room.last_id, room.counted), (total as i64, total as i64));
}

#[test]
fn a_resend_through_the_other_instance_is_stored_once() {
    let stores = two_instances();
    let first = stores[0].append(&[resend("hello", "login-alice/lobby/c1")]);
    let again = stores[1].append(&[resend("hello", "login-alice/lobby/c1")]);
    assert_eq!(first.unwrap().appended, [Appended::Stored(1)]);
    assert_eq!(again.unwrap().appended, [Appended::Duplicate(1)]);

    // Both at the same moment: one stores it, the other finds it.
    let start = Arc::new(Barrier::new(2));
    let racing: Vec<_> = stores
        .iter()
        .map(|store| {
            let (store, start) = (store.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                store
                    .append(&[resend("again", "login-alice/lobby/c2")])
                    .unwrap()
                    .appended[0]
            })
        })
        .collect();
    let mut raced: Vec<Appended> = racing.into_iter().map(|r| r.join().unwrap()).collect();
    raced.sort_by_key(|a| matches!(a, Appended::Duplicate(_)));
    assert_eq!(raced, [Appended::Stored(2), Appended::Duplicate(2)]);
    assert_eq!(stores[0].messages(&Slug::lobby(), 1, 10).unwrap().len(), 2);
}

#[test]
fn an_instance_hears_what_the_others_commit_but_not_its_own_changes() {
    let [a, b] = two_instances();
    let mut heard_by_b = b.announcements().unwrap().expect("PostgreSQL announces");
    assert_eq!(
        heard_by_b.next(WAIT),
        [Announcement::Missed],
        "first, a catch-up"
    );

    a.append(&[lobby_message("one").into(), lobby_message("two").into()])
        .unwrap();
    let mut edited = a.messages(&Slug::lobby(), 1, 1).unwrap().remove(0);
    edited.body = "one, edited".into();
    a.update_message(&edited).unwrap();
    b.update_message(&edited).unwrap();
    a.set_topic(&Slug::lobby(), "plans").unwrap();

    let mut heard = Vec::new();
    while heard.len() < 3 {
        let more = heard_by_b.next(WAIT);
        assert!(!more.is_empty(), "heard only {heard:?}");
        heard.extend(more);
    }
    let lobby = Slug::lobby();
    assert_eq!(
        heard,
        [
            Announcement::Appended {
                room: lobby.clone(),
                last_id: 2
            },
            Announcement::Changed {
                room: lobby.clone(),
                id: 1
            },
            Announcement::Room { room: lobby },
        ]
    );
}

#[test]
fn appends_announced_inside_their_commit_are_heard_the_same() {
    let [a, b] = two_instances();
    let a = Arc::into_inner(a).unwrap().notifying_in_commit(true);
    let mut heard_by_b = b.announcements().unwrap().unwrap();
    assert_eq!(heard_by_b.next(WAIT), [Announcement::Missed]);
    a.append(&[lobby_message("one").into()]).unwrap();
    assert_eq!(
        heard_by_b.next(WAIT),
        [Announcement::Appended {
            room: Slug::lobby(),
            last_id: 1
        }]
    );
}

#[test]
fn changes_to_one_message_from_two_instances_at_once_are_all_kept() {
    const CHANGES: usize = 25;
    let stores = two_instances();
    stores[0]
        .append(&[lobby_message("popular").into()])
        .unwrap();
    let start = Arc::new(Barrier::new(stores.len()));
    let changing: Vec<_> = stores
        .iter()
        .enumerate()
        .map(|(writer, store)| {
            let (store, start) = (store.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                for n in 0..CHANGES {
                    let mut react = |stored: Option<MessageRecord>| {
                        let mut message = stored?;
                        message.reactions.push(Reaction {
                            emoji: format!("{writer}-{n}"),
                            by: vec![format!("person {writer}")],
                        });
                        Some(message)
                    };
                    store.change_message(&Slug::lobby(), 1, &mut react).unwrap();
                }
            })
        })
        .collect();
    for thread in changing {
        thread.join().unwrap();
    }
    let message = stores[1].messages(&Slug::lobby(), 1, 1).unwrap().remove(0);
    assert_eq!(message.reactions.len(), 2 * CHANGES, "no change lost");
}

#[test]
fn one_logins_marks_changed_from_two_instances_at_once_are_all_kept() {
    const CHANGES: usize = 25;
    let stores = two_instances();
    let start = Arc::new(Barrier::new(stores.len()));
    let changing: Vec<_> = stores
        .iter()
        .enumerate()
        .map(|(writer, store)| {
            let (store, start) = (store.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                for n in 0..CHANGES {
                    let room = format!("room-{writer}-{n}");
                    let read = move |reader: &mut ReaderRecord| {
                        reader.last_read.insert(room, n as i64 + 1);
                    };
                    store.change_reader("login-a", Box::new(read)).unwrap();
                }
            })
        })
        .collect();
    for thread in changing {
        thread.join().unwrap();
    }
    let reader = stores[1].reader("login-a").unwrap().expect("stored");
    assert_eq!(reader.last_read.len(), 2 * CHANGES, "no mark lost");
}
