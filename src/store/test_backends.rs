//! Both storage backends for tests, so a test body written once runs on PoloDB and on
//! PostgreSQL (`on_both_backends!`).

use std::ops::Deref;

use super::{PgStore, PoloStore, Storage};
use crate::store::postgres::test_cluster;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backend {
    PoloDb,
    Postgres,
}

/// A fresh store and what keeps its data alive, reopened on the same data by `reopen`.
pub(crate) enum TestStore {
    /// Without the indexer thread: `index_now` indexes what was appended.
    PoloDb(PoloStore, tempfile::TempDir),
    /// Its own database in the test process's cluster.
    Postgres(PgStore, String),
}

impl TestStore {
    pub(crate) fn open(backend: Backend) -> TestStore {
        match backend {
            Backend::PoloDb => {
                let dir = tempfile::tempdir().unwrap();
                TestStore::PoloDb(PoloStore::open_unindexed(dir.path()).unwrap(), dir)
            }
            Backend::Postgres => {
                let url = test_cluster::fresh_database();
                TestStore::Postgres(PgStore::connect(&url).unwrap(), url)
            }
        }
    }

    /// Closes the store and opens it again on the same data, as a restart does.
    pub(crate) fn reopen(self) -> TestStore {
        match self {
            TestStore::PoloDb(store, dir) => {
                drop(store);
                TestStore::PoloDb(PoloStore::open_unindexed(dir.path()).unwrap(), dir)
            }
            TestStore::Postgres(store, url) => {
                drop(store);
                TestStore::Postgres(PgStore::connect(&url).unwrap(), url)
            }
        }
    }

    /// Makes everything appended so far searchable (PostgreSQL indexes in the commit).
    pub(crate) fn index_now(&self) {
        if let TestStore::PoloDb(store, _) = self {
            store.index_queued_now().unwrap();
        }
    }
}

impl Deref for TestStore {
    type Target = dyn Storage;

    fn deref(&self) -> &(dyn Storage + 'static) {
        match self {
            TestStore::PoloDb(store, _) => store,
            TestStore::Postgres(store, _) => store,
        }
    }
}

/// Turns each `fn name(backend: Backend)` into two tests, `name::polodb` and
/// `name::postgres`.
macro_rules! on_both_backends {
    ($($test:ident),* $(,)?) => {
        $(
            mod $test {
                use crate::store::test_backends::Backend;

                #[test]
                fn polodb() {
                    super::$test(Backend::PoloDb)
                }

                #[test]
                fn postgres() {
                    super::$test(Backend::Postgres)
                }
            }
        )*
    };
}

pub(crate) use on_both_backends;
