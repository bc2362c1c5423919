//! What the store's test files share: a database of either backend, opened as one or
//! several `tetherd` processes would, and a macro running a test body on both.

#![allow(dead_code)] // each test file uses its part

use std::sync::Arc;

use tether_core::user::User;
use tether_store::postgres::PgStore;
use tether_store::sqlite::SqliteStore;
use tether_store::{Repo, Store};
use tether_testkit::PgDatabase;

#[derive(Clone, Copy, Debug)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// One empty database of a backend. Each [`Db::open`] opens another store on it, as
/// another `tetherd` process (or a restart) would.
pub struct Db {
    pub backend: Backend,
    pub dir: tempfile::TempDir,
    pub pg: Option<PgDatabase>,
}

impl Db {
    pub async fn new(backend: Backend) -> Db {
        let pg = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => Some(tether_testkit::postgres_db().await),
        };
        Db { backend, dir: tempfile::tempdir().unwrap(), pg }
    }

    pub async fn open(&self) -> Arc<dyn Store> {
        match self.backend {
            Backend::Sqlite => Arc::new(SqliteStore::open(self.dir.path()).await.unwrap()),
            Backend::Postgres => Arc::new(PgStore::connect(&self.pg.as_ref().unwrap().url).await.unwrap()),
        }
    }
}

pub async fn repo(b: Backend) -> (Db, Repo) {
    let db = Db::new(b).await;
    let store = db.open().await;
    (db, Repo::new(store))
}

/// Runs each named `async fn(Backend)` as a test on each backend.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name(super::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name(super::Backend::Postgres).await
                }
            )*
        }
    };
}

pub fn user(i: usize, first: &str, suspended: bool) -> User {
    User {
        id: format!("{i:024x}"),
        username: format!("user{i}"),
        email: format!("user{i}@example.com"),
        firstname: first.into(),
        suspended,
        ..User::default()
    }
}
