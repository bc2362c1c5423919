//! Schema migrations, applied in order at open and recorded in `PRAGMA user_version`.
//! Append new steps; never edit a released one.

pub const MIGRATIONS: &[&str] = &[
    // 1: documents, secrets, edges, settings.
    r#"
    CREATE TABLE users (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE,
                        key1 TEXT UNIQUE, key2 TEXT UNIQUE, doc TEXT NOT NULL);
    CREATE TABLE groups (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE,
                         key1 TEXT UNIQUE, key2 TEXT UNIQUE, doc TEXT NOT NULL);
    CREATE TABLE domains (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE,
                          key1 TEXT UNIQUE, key2 TEXT UNIQUE, doc TEXT NOT NULL);
    CREATE TABLE agents (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE,
                         key1 TEXT UNIQUE, key2 TEXT UNIQUE, doc TEXT NOT NULL);
    CREATE TABLE api_keys (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE,
                           key1 TEXT UNIQUE, key2 TEXT UNIQUE, doc TEXT NOT NULL);
    CREATE TABLE secrets (owner TEXT NOT NULL, purpose TEXT NOT NULL, hash TEXT NOT NULL,
                          PRIMARY KEY (owner, purpose));
    CREATE INDEX secrets_by_hash ON secrets (purpose, hash);
    CREATE TABLE edges (seq INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL,
                        src TEXT NOT NULL, dst TEXT NOT NULL, UNIQUE (kind, src, dst));
    CREATE INDEX edges_by_dst ON edges (kind, dst);
    CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    "#,
    // 2: the change feed to the sync agents (ordered by seq; secrets cleared once acknowledged).
    r#"
    CREATE TABLE feed (seq INTEGER PRIMARY KEY AUTOINCREMENT, domain_id TEXT NOT NULL, kind TEXT NOT NULL,
                       object_id TEXT NOT NULL, body TEXT NOT NULL, secret TEXT, created TEXT NOT NULL);
    CREATE INDEX feed_by_domain ON feed (domain_id, seq);
    "#,
    // 3: the notifications outbox.
    r#"
    CREATE TABLE notifications (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE,
                                key1 TEXT UNIQUE, key2 TEXT UNIQUE, doc TEXT NOT NULL);
    "#,
    // 4: per-object history (append-only), looked up by object id.
    r#"
    CREATE TABLE history (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE,
                          key1 TEXT UNIQUE, key2 TEXT UNIQUE, doc TEXT NOT NULL);
    CREATE INDEX history_by_object ON history (json_extract(doc, '$.objectId'), seq);
    "#,
    // 5: lookups by AD link (objectGUID, domain) without scanning every document.
    r#"
    CREATE INDEX users_by_ad_guid ON users (json_extract(doc, '$._adGuid'));
    CREATE INDEX users_by_ad_domain ON users (json_extract(doc, '$._adDomain'));
    CREATE INDEX groups_by_ad_guid ON groups (json_extract(doc, '$._adGuid'));
    CREATE INDEX groups_by_ad_domain ON groups (json_extract(doc, '$._adDomain'));
    CREATE INDEX agents_by_domain ON agents (json_extract(doc, '$.domainId'));
    "#,
    // 6: the user lookups and sort admins' scripts use most — by username or email, and pages
    // sorted by username — without scanning every user.
    r#"
    CREATE INDEX users_by_username ON users (json_extract(doc, '$.username'));
    CREATE INDEX users_by_email ON users (json_extract(doc, '$.email'));
    CREATE INDEX users_sorted_by_username ON users (json_extract(doc, '$.username') COLLATE NOCASE, seq);
    "#,
    // 7: a version per document two writers may change at once (optimistic concurrency).
    r#"
    ALTER TABLE users ADD COLUMN version INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE groups ADD COLUMN version INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE domains ADD COLUMN version INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE agents ADD COLUMN version INTEGER NOT NULL DEFAULT 0;
    "#,
    // 8: short-lived state every tetherd shares (console sessions, bulk job results).
    r#"
    CREATE TABLE shared (key TEXT PRIMARY KEY, value TEXT NOT NULL, expires INTEGER NOT NULL);
    CREATE INDEX shared_by_expiry ON shared (expires);
    "#,
    // 9: login attempts, counted where every tetherd counts them.
    r#"
    CREATE TABLE login_attempts (key TEXT PRIMARY KEY, n INTEGER NOT NULL, since INTEGER NOT NULL,
                                 locked_until INTEGER NOT NULL);
    CREATE INDEX login_attempts_by_since ON login_attempts (since);
    "#,
    // 10: numbers handed out once (the unix ids of users and groups), and the users' unix
    // ids unique.
    r#"
    CREATE TABLE counters (name TEXT PRIMARY KEY, n INTEGER NOT NULL);
    CREATE UNIQUE INDEX users_by_unix_uid ON users (json_extract(doc, '$.unix_uid'));
    CREATE UNIQUE INDEX users_by_unix_guid ON users (json_extract(doc, '$.unix_guid'));
    "#,
    // 11: users may share a primary group (AD's gidNumber, e.g. every user in 10000): only
    // the uid stays unique.
    r#"
    DROP INDEX users_by_unix_guid;
    "#,
    // 12: RADIUS servers, one per network source address.
    r#"
    CREATE TABLE radius_servers (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE,
                                 key1 TEXT UNIQUE, key2 TEXT UNIQUE, doc TEXT NOT NULL);
    "#,
    // 13: substring search by trigrams over the four fields `searchTerm` covers by default,
    // kept by triggers; contentless (the text stays in `doc`), rows by the users' `seq`.
    r#"
    CREATE VIRTUAL TABLE users_text USING fts5(username, email, firstname, lastname,
        tokenize = 'trigram', content = '', contentless_delete = 1);
    INSERT INTO users_text (rowid, username, email, firstname, lastname)
        SELECT seq, json_extract(doc, '$.username'), json_extract(doc, '$.email'),
               json_extract(doc, '$.firstname'), json_extract(doc, '$.lastname') FROM users;
    CREATE TRIGGER users_text_insert AFTER INSERT ON users BEGIN
        INSERT INTO users_text (rowid, username, email, firstname, lastname)
        VALUES (new.seq, json_extract(new.doc, '$.username'), json_extract(new.doc, '$.email'),
                json_extract(new.doc, '$.firstname'), json_extract(new.doc, '$.lastname'));
    END;
    CREATE TRIGGER users_text_delete AFTER DELETE ON users BEGIN
        DELETE FROM users_text WHERE rowid = old.seq;
    END;
    CREATE TRIGGER users_text_update AFTER UPDATE OF doc ON users
    WHEN json_extract(old.doc, '$.username') IS NOT json_extract(new.doc, '$.username')
      OR json_extract(old.doc, '$.email') IS NOT json_extract(new.doc, '$.email')
      OR json_extract(old.doc, '$.firstname') IS NOT json_extract(new.doc, '$.firstname')
      OR json_extract(old.doc, '$.lastname') IS NOT json_extract(new.doc, '$.lastname')
    BEGIN
        DELETE FROM users_text WHERE rowid = old.seq;
        INSERT INTO users_text (rowid, username, email, firstname, lastname)
        VALUES (new.seq, json_extract(new.doc, '$.username'), json_extract(new.doc, '$.email'),
                json_extract(new.doc, '$.firstname'), json_extract(new.doc, '$.lastname'));
    END;
    "#,
    // 14: the users' insertion order in an index of its own. The rows themselves are the
    // `seq` b-tree, so a page at an offset in insertion order walked every document before
    // it (~1.2 KB each: p99 609 ms at 1,000,000 users); this index holds `seq` alone, and
    // the walk reads it instead (the planner takes it as a covering index; ~40 ms there).
    r#"
    CREATE INDEX users_by_seq ON users (seq);
    "#,
    // 15: the users' write generation (`marks.rs`), moved by every user inserted or deleted
    // and every change of a username, in the writing transaction itself: a reader sees the
    // generation of the rows it sees. Not by other updates, which move no row of a list.
    r#"
    CREATE TABLE users_writes (n INTEGER NOT NULL);
    INSERT INTO users_writes (n) VALUES (0);
    CREATE TRIGGER users_writes_insert AFTER INSERT ON users BEGIN
        UPDATE users_writes SET n = n + 1;
    END;
    CREATE TRIGGER users_writes_delete AFTER DELETE ON users BEGIN
        UPDATE users_writes SET n = n + 1;
    END;
    CREATE TRIGGER users_writes_rename AFTER UPDATE OF doc ON users
    WHEN json_extract(old.doc, '$.username') IS NOT json_extract(new.doc, '$.username')
    BEGIN
        UPDATE users_writes SET n = n + 1;
    END;
    "#,
    // 16: the moves of the users' lists (`moves.rs`): every row that came in or left, by its
    // `seq` and sort key, numbered by the generation it brought (which now moves once per
    // move: twice for a rename), so a page finds the moves since its marks' generation.
    // Pruned a thousand at a time, keeping at least the last two thousand.
    r#"
    CREATE TABLE users_moves (n INTEGER PRIMARY KEY, seq INTEGER NOT NULL, username TEXT, delta INTEGER NOT NULL);
    DROP TRIGGER users_writes_insert;
    DROP TRIGGER users_writes_delete;
    DROP TRIGGER users_writes_rename;
    CREATE TRIGGER users_writes_insert AFTER INSERT ON users BEGIN
        UPDATE users_writes SET n = n + 1;
        INSERT INTO users_moves SELECT n, new.seq, json_extract(new.doc, '$.username'), 1 FROM users_writes;
    END;
    CREATE TRIGGER users_writes_delete AFTER DELETE ON users BEGIN
        UPDATE users_writes SET n = n + 1;
        INSERT INTO users_moves SELECT n, old.seq, json_extract(old.doc, '$.username'), -1 FROM users_writes;
    END;
    CREATE TRIGGER users_writes_rename AFTER UPDATE OF doc ON users
    WHEN json_extract(old.doc, '$.username') IS NOT json_extract(new.doc, '$.username')
    BEGIN
        UPDATE users_writes SET n = n + 1;
        INSERT INTO users_moves SELECT n, old.seq, json_extract(old.doc, '$.username'), -1 FROM users_writes;
        UPDATE users_writes SET n = n + 1;
        INSERT INTO users_moves SELECT n, new.seq, json_extract(new.doc, '$.username'), 1 FROM users_writes;
    END;
    CREATE TRIGGER users_moves_pruned AFTER INSERT ON users_moves WHEN new.n % 1024 = 0 BEGIN
        DELETE FROM users_moves WHERE n <= new.n - 2048;
    END;
    "#,
    // 17: the users counted by the values of their closed-valued fields (`tally.rs`): one
    // row per combination of them (`k`, the JSON array of the values: `json_extract` of
    // several paths), the values again as columns by the fields' names (read as a filter
    // reads them from a document), and its number of users. Rows whose number falls to zero
    // stay (a few dozen combinations). A decrement is an upsert too: were a key ever spelled
    // otherwise than when it was counted up, the sum over the columns would stay exact.
    r#"
    CREATE TABLE users_tally (k TEXT PRIMARY KEY, n INTEGER NOT NULL,
        state AS (json_extract(k, '$[0]')),
        suspended AS (json_extract(k, '$[1]')),
        activated AS (json_extract(k, '$[2]')),
        account_locked AS (json_extract(k, '$[3]')),
        password_expired AS (json_extract(k, '$[4]')),
        password_never_expires AS (json_extract(k, '$[5]')),
        externally_managed AS (json_extract(k, '$[6]')),
        sudo AS (json_extract(k, '$[7]')),
        ldap_binding_user AS (json_extract(k, '$[8]')));
    INSERT INTO users_tally (k, n)
        SELECT json_extract(doc, '$.state', '$.suspended', '$.activated', '$.account_locked',
                                 '$.password_expired', '$.password_never_expires', '$.externally_managed',
                                 '$.sudo', '$.ldap_binding_user'), count(*)
        FROM users GROUP BY 1;
    CREATE TRIGGER users_tally_insert AFTER INSERT ON users BEGIN
        INSERT INTO users_tally (k, n)
            VALUES (json_extract(new.doc, '$.state', '$.suspended', '$.activated', '$.account_locked',
                                          '$.password_expired', '$.password_never_expires', '$.externally_managed',
                                          '$.sudo', '$.ldap_binding_user'), 1)
            ON CONFLICT (k) DO UPDATE SET n = n + 1;
    END;
    CREATE TRIGGER users_tally_delete AFTER DELETE ON users BEGIN
        INSERT INTO users_tally (k, n)
            VALUES (json_extract(old.doc, '$.state', '$.suspended', '$.activated', '$.account_locked',
                                          '$.password_expired', '$.password_never_expires', '$.externally_managed',
                                          '$.sudo', '$.ldap_binding_user'), -1)
            ON CONFLICT (k) DO UPDATE SET n = n - 1;
    END;
    CREATE TRIGGER users_tally_update AFTER UPDATE OF doc ON users
    WHEN json_extract(old.doc, '$.state', '$.suspended', '$.activated', '$.account_locked',
                               '$.password_expired', '$.password_never_expires', '$.externally_managed',
                               '$.sudo', '$.ldap_binding_user')
      IS NOT json_extract(new.doc, '$.state', '$.suspended', '$.activated', '$.account_locked',
                                  '$.password_expired', '$.password_never_expires', '$.externally_managed',
                                  '$.sudo', '$.ldap_binding_user')
    BEGIN
        INSERT INTO users_tally (k, n)
            VALUES (json_extract(old.doc, '$.state', '$.suspended', '$.activated', '$.account_locked',
                                          '$.password_expired', '$.password_never_expires', '$.externally_managed',
                                          '$.sudo', '$.ldap_binding_user'), -1)
            ON CONFLICT (k) DO UPDATE SET n = n - 1;
        INSERT INTO users_tally (k, n)
            VALUES (json_extract(new.doc, '$.state', '$.suspended', '$.activated', '$.account_locked',
                                          '$.password_expired', '$.password_never_expires', '$.externally_managed',
                                          '$.sudo', '$.ldap_binding_user'), 1)
            ON CONFLICT (k) DO UPDATE SET n = n + 1;
    END;
    "#,
    // 18: the users by each free-text field that lists are filtered by (`filter=department:
    // $eq:IT`, JumpCloud's own example), so such a list's total and page read the users that
    // match instead of every user (`indexed.rs`). After the value comes the username's sort
    // key (the console's and scripts' order: SQLite keeps no statistics, takes the index
    // for any value, and would otherwise read and sort every match), then the row's `seq`.
    // SQLite answers a count from an index on an expression without reading the rows.
    r#"
    CREATE INDEX users_by_department ON users (json_extract(doc, '$.department'),
        json_extract(doc, '$.username') COLLATE NOCASE);
    CREATE INDEX users_by_company ON users (json_extract(doc, '$.company'),
        json_extract(doc, '$.username') COLLATE NOCASE);
    CREATE INDEX users_by_location ON users (json_extract(doc, '$.location'),
        json_extract(doc, '$.username') COLLATE NOCASE);
    CREATE INDEX users_by_job_title ON users (json_extract(doc, '$.jobTitle'),
        json_extract(doc, '$.username') COLLATE NOCASE);
    CREATE INDEX users_by_employee_type ON users (json_extract(doc, '$.employeeType'),
        json_extract(doc, '$.username') COLLATE NOCASE);
    CREATE INDEX users_by_employee_identifier ON users (json_extract(doc, '$.employeeIdentifier'),
        json_extract(doc, '$.username') COLLATE NOCASE);
    CREATE INDEX users_by_manager ON users (json_extract(doc, '$.manager'),
        json_extract(doc, '$.username') COLLATE NOCASE);
    "#,
    // 19: the users who are not simply active (`unusual.rs`), by username and by insertion
    // order, in partial indexes of them alone; their condition is `filter::UNUSUAL`'s.
    r#"
    CREATE INDEX users_unusual_by_username ON users (json_extract(doc, '$.username') COLLATE NOCASE)
        WHERE (json_extract(doc, '$.state') IS NOT 'ACTIVATED' OR json_extract(doc, '$.suspended') = 1
               OR json_extract(doc, '$.account_locked') = 1 OR json_extract(doc, '$.password_expired') = 1);
    CREATE INDEX users_unusual_by_seq ON users (seq)
        WHERE (json_extract(doc, '$.state') IS NOT 'ACTIVATED' OR json_extract(doc, '$.suspended') = 1
               OR json_extract(doc, '$.account_locked') = 1 OR json_extract(doc, '$.password_expired') = 1);
    "#,
    // 20: the users granted sudo or LDAP binding, whose password never expires, or who
    // were never activated (`flagged.rs`), by username and by insertion order, in partial
    // indexes of each flag's users alone; their condition is `Sqlite::flagged`'s.
    r#"
    CREATE INDEX users_sudo_by_username ON users (json_extract(doc, '$.username') COLLATE NOCASE)
        WHERE json_extract(doc, '$.sudo') = 1;
    CREATE INDEX users_sudo_by_seq ON users (seq) WHERE json_extract(doc, '$.sudo') = 1;
    CREATE INDEX users_ldap_binding_user_by_username ON users (json_extract(doc, '$.username') COLLATE NOCASE)
        WHERE json_extract(doc, '$.ldap_binding_user') = 1;
    CREATE INDEX users_ldap_binding_user_by_seq ON users (seq) WHERE json_extract(doc, '$.ldap_binding_user') = 1;
    CREATE INDEX users_password_never_expires_by_username ON users (json_extract(doc, '$.username') COLLATE NOCASE)
        WHERE json_extract(doc, '$.password_never_expires') = 1;
    CREATE INDEX users_password_never_expires_by_seq ON users (seq)
        WHERE json_extract(doc, '$.password_never_expires') = 1;
    CREATE INDEX users_not_activated_by_username ON users (json_extract(doc, '$.username') COLLATE NOCASE)
        WHERE json_extract(doc, '$.activated') = 0;
    CREATE INDEX users_not_activated_by_seq ON users (seq) WHERE json_extract(doc, '$.activated') = 0;
    "#,
    // 21: the users by their source, AD or Tether (`externally_managed`, the console's
    // source filter; `flagged.rs`): either value may be the rare one. Then the username's
    // sort key, and in a second index the rowid (`seq`), so that a page of the common value
    // is read in its order, not sorted from every match (SQLite keeps no statistics and takes
    // an index for any value).
    r#"
    CREATE INDEX users_by_source ON users (json_extract(doc, '$.externally_managed'),
        json_extract(doc, '$.username') COLLATE NOCASE);
    CREATE INDEX users_by_source_in_order ON users (json_extract(doc, '$.externally_managed'));
    "#,
];
