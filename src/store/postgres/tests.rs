//! What only PostgreSQL has: its schema's migrations, and backups by `pg_dump`.

use super::{PG_DUMP_INSTEAD, PgStore, test_cluster};
use crate::store::Storage;

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
    assert_eq!(applied, vec![1]);
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
