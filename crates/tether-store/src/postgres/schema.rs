//! Schema migrations, applied in order at connect and recorded in `tether_schema.version`.
//! Append new steps; never edit a released one.
//!
//! The tables are the SQLite ones with PostgreSQL types: documents, feed bodies and settings
//! are `jsonb` (filters read fields with `->>`), every `seq` is an identity column (insertion
//! order; never cached ahead, see the feed in the module above), and the unique constraints
//! on `key2` are named `<table>_key2` so a violation names the key it hit. The expression
//! indexes use the very expression the filter translation writes, `(doc->>'field')`.

pub const MIGRATIONS: &[&str] = &[
    // 1: everything the SQLite schema has after its migration 5.
    r#"
    CREATE TABLE users (seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, id TEXT NOT NULL UNIQUE,
                        key1 TEXT CONSTRAINT users_key1 UNIQUE, key2 TEXT CONSTRAINT users_key2 UNIQUE,
                        doc JSONB NOT NULL);
    CREATE TABLE groups (seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, id TEXT NOT NULL UNIQUE,
                         key1 TEXT CONSTRAINT groups_key1 UNIQUE, key2 TEXT CONSTRAINT groups_key2 UNIQUE,
                         doc JSONB NOT NULL);
    CREATE TABLE domains (seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, id TEXT NOT NULL UNIQUE,
                          key1 TEXT CONSTRAINT domains_key1 UNIQUE, key2 TEXT CONSTRAINT domains_key2 UNIQUE,
                          doc JSONB NOT NULL);
    CREATE TABLE agents (seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, id TEXT NOT NULL UNIQUE,
                         key1 TEXT CONSTRAINT agents_key1 UNIQUE, key2 TEXT CONSTRAINT agents_key2 UNIQUE,
                         doc JSONB NOT NULL);
    CREATE TABLE api_keys (seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, id TEXT NOT NULL UNIQUE,
                           key1 TEXT CONSTRAINT api_keys_key1 UNIQUE, key2 TEXT CONSTRAINT api_keys_key2 UNIQUE,
                           doc JSONB NOT NULL);
    CREATE TABLE notifications (seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, id TEXT NOT NULL UNIQUE,
                                key1 TEXT CONSTRAINT notifications_key1 UNIQUE,
                                key2 TEXT CONSTRAINT notifications_key2 UNIQUE, doc JSONB NOT NULL);
    CREATE TABLE history (seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, id TEXT NOT NULL UNIQUE,
                          key1 TEXT CONSTRAINT history_key1 UNIQUE, key2 TEXT CONSTRAINT history_key2 UNIQUE,
                          doc JSONB NOT NULL);

    CREATE TABLE secrets (owner TEXT NOT NULL, purpose TEXT NOT NULL, hash TEXT NOT NULL,
                          PRIMARY KEY (owner, purpose));
    CREATE INDEX secrets_by_hash ON secrets (purpose, hash);
    CREATE TABLE edges (seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, kind TEXT NOT NULL,
                        src TEXT NOT NULL, dst TEXT NOT NULL, UNIQUE (kind, src, dst));
    CREATE INDEX edges_by_dst ON edges (kind, dst);
    CREATE TABLE settings (key TEXT PRIMARY KEY, value JSONB NOT NULL);

    CREATE TABLE feed (seq BIGINT GENERATED ALWAYS AS IDENTITY (CACHE 1) PRIMARY KEY, domain_id TEXT NOT NULL,
                       kind TEXT NOT NULL, object_id TEXT NOT NULL, body JSONB NOT NULL, secret TEXT,
                       created TEXT NOT NULL);
    CREATE INDEX feed_by_domain ON feed (domain_id, seq);

    CREATE INDEX history_by_object ON history ((doc->>'objectId'), seq);
    CREATE INDEX users_by_ad_guid ON users ((doc->>'_adGuid'));
    CREATE INDEX users_by_ad_domain ON users ((doc->>'_adDomain'));
    CREATE INDEX groups_by_ad_guid ON groups ((doc->>'_adGuid'));
    CREATE INDEX groups_by_ad_domain ON groups ((doc->>'_adDomain'));
    CREATE INDEX agents_by_domain ON agents ((doc->>'domainId'));
    "#,
    // 2 (SQLite's 6): the user lookups and sort admins' scripts use most — by username or
    // email, and pages sorted by username — without scanning every user.
    r#"
    CREATE INDEX users_by_username ON users ((doc->>'username'));
    CREATE INDEX users_by_email ON users ((doc->>'email'));
    CREATE INDEX users_sorted_by_username ON users (lower((doc->>'username') COLLATE "C") ASC NULLS FIRST, seq);
    "#,
    // 3: the username sort key as a stored column, so a deep page (`skip`) walks an index
    // alone: PostgreSQL never answers from an index on an expression of `doc` without
    // reading each row (600 ms for a page past 500,000 users).
    r#"
    ALTER TABLE users ADD COLUMN sort_username text
        GENERATED ALWAYS AS (lower((doc->>'username') COLLATE "C")) STORED;
    CREATE INDEX users_by_sort_username ON users (sort_username COLLATE "C" ASC NULLS FIRST, seq);
    DROP INDEX users_sorted_by_username;
    "#,
    // 4: a version per document two writers may change at once (optimistic concurrency).
    r#"
    ALTER TABLE users ADD COLUMN version BIGINT NOT NULL DEFAULT 0;
    ALTER TABLE groups ADD COLUMN version BIGINT NOT NULL DEFAULT 0;
    ALTER TABLE domains ADD COLUMN version BIGINT NOT NULL DEFAULT 0;
    ALTER TABLE agents ADD COLUMN version BIGINT NOT NULL DEFAULT 0;
    "#,
    // 5: short-lived state every tetherd shares (console sessions, bulk job results).
    r#"
    CREATE TABLE shared (key TEXT PRIMARY KEY, value TEXT NOT NULL, expires BIGINT NOT NULL);
    CREATE INDEX shared_by_expiry ON shared (expires);
    "#,
    // 6: login attempts, counted where every tetherd counts them.
    r#"
    CREATE TABLE login_attempts (key TEXT PRIMARY KEY, n BIGINT NOT NULL, since BIGINT NOT NULL,
                                 locked_until BIGINT NOT NULL);
    CREATE INDEX login_attempts_by_since ON login_attempts (since);
    "#,
    // 7 (SQLite's 10): numbers handed out once (the unix ids of users and groups), and the
    // users' unix ids unique.
    r#"
    CREATE TABLE counters (name TEXT PRIMARY KEY, n BIGINT NOT NULL);
    CREATE UNIQUE INDEX users_by_unix_uid ON users ((doc->>'unix_uid'));
    CREATE UNIQUE INDEX users_by_unix_guid ON users ((doc->>'unix_guid'));
    "#,
    // 8 (SQLite's 11): users may share a primary group (AD's gidNumber): only the uid stays
    // unique.
    r#"
    DROP INDEX users_by_unix_guid;
    "#,
    // 9 (SQLite's 12): RADIUS servers, one per network source address.
    r#"
    CREATE TABLE radius_servers (seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, id TEXT NOT NULL UNIQUE,
                                 key1 TEXT CONSTRAINT radius_servers_key1 UNIQUE,
                                 key2 TEXT CONSTRAINT radius_servers_key2 UNIQUE, doc JSONB NOT NULL);
    "#,
    // 10 (SQLite's 13): substring search by trigrams (contrib's pg_trgm, a trusted extension:
    // the database's owner may create it) over the four fields `searchTerm` covers by default,
    // on the very expression `search` compares.
    r#"
    CREATE EXTENSION IF NOT EXISTS pg_trgm;
    CREATE INDEX users_text_username ON users USING gin (lower(coalesce(doc->>'username', '') COLLATE "C") gin_trgm_ops);
    CREATE INDEX users_text_email ON users USING gin (lower(coalesce(doc->>'email', '') COLLATE "C") gin_trgm_ops);
    CREATE INDEX users_text_firstname ON users USING gin (lower(coalesce(doc->>'firstname', '') COLLATE "C") gin_trgm_ops);
    CREATE INDEX users_text_lastname ON users USING gin (lower(coalesce(doc->>'lastname', '') COLLATE "C") gin_trgm_ops);
    "#,
    // 11: each collection's row count, kept by statement triggers as rows of signed deltas
    // (inserted, never updated: concurrent writers do not wait on one counter row), so a
    // list's total is a sum over a few rows, not a count over the table (~25 ms at 1,000,000
    // users). `FOLD_ROW_COUNTS` (mod.rs) folds each table's deltas into one row. The
    // functions name their schema's table whatever the writer's `search_path`.
    r#"
    CREATE TABLE row_counts (tbl TEXT NOT NULL, delta BIGINT NOT NULL);
    CREATE INDEX row_counts_by_tbl ON row_counts (tbl);
    CREATE FUNCTION tether_rows_inserted() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $f$
    BEGIN
        INSERT INTO row_counts (tbl, delta) SELECT TG_TABLE_NAME, count(*) FROM new_rows HAVING count(*) > 0;
        RETURN NULL;
    END $f$;
    CREATE FUNCTION tether_rows_deleted() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $f$
    BEGIN
        INSERT INTO row_counts (tbl, delta) SELECT TG_TABLE_NAME, -count(*) FROM old_rows HAVING count(*) > 0;
        RETURN NULL;
    END $f$;
    DO $d$
    DECLARE t text;
    BEGIN
        FOREACH t IN ARRAY ARRAY['users', 'groups', 'domains', 'agents', 'api_keys', 'notifications', 'history',
                                 'radius_servers'] LOOP
            -- The triggers first: they lock the table against writers until the migration
            -- commits, so the count below misses nothing and counts nothing twice.
            EXECUTE format('CREATE TRIGGER %I AFTER INSERT ON %I REFERENCING NEW TABLE AS new_rows '
                           'FOR EACH STATEMENT EXECUTE FUNCTION tether_rows_inserted()', t || '_rows_inserted', t);
            EXECUTE format('CREATE TRIGGER %I AFTER DELETE ON %I REFERENCING OLD TABLE AS old_rows '
                           'FOR EACH STATEMENT EXECUTE FUNCTION tether_rows_deleted()', t || '_rows_deleted', t);
            EXECUTE format('INSERT INTO row_counts (tbl, delta) SELECT %L, count(*) FROM %I', t, t);
        END LOOP;
    END $d$;
    "#,
    // 12: the users' write generation (`marks.rs`): a row of `row_counts` (`users_writes`,
    // delta 1) for every statement that inserts, deletes or truncates users, and for every
    // change of a username. Transactional, so a reader sees the generation of the rows it
    // sees; inserted, never updated, so writers never wait on each other (folded with the
    // row counts).
    r#"
    CREATE FUNCTION tether_users_written() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $f$
    BEGIN
        INSERT INTO row_counts (tbl, delta) VALUES ('users_writes', 1);
        RETURN NULL;
    END $f$;
    CREATE TRIGGER users_written AFTER INSERT OR DELETE OR TRUNCATE ON users
        FOR EACH STATEMENT EXECUTE FUNCTION tether_users_written();
    CREATE TRIGGER users_renamed AFTER UPDATE ON users
        FOR EACH ROW WHEN (OLD.sort_username IS DISTINCT FROM NEW.sort_username) EXECUTE FUNCTION tether_users_written();
    "#,
    // 13: the moves of the users' lists (`moves.rs`): every row that came in or left, by its
    // `seq` and sort key, with the transaction that wrote it, so a page finds the moves its
    // marks' snapshot did not see. The generation now moves once per move (twice for a
    // rename; a truncation, not logged, still once). Pruned by `PRUNE_MOVES` (mod.rs).
    r#"
    CREATE TABLE users_moves (xid xid8 NOT NULL DEFAULT pg_current_xact_id(), seq BIGINT NOT NULL,
        username TEXT COLLATE "C", delta BIGINT NOT NULL);
    CREATE INDEX users_moves_by_xid ON users_moves (xid);
    DROP TRIGGER users_written ON users;
    DROP TRIGGER users_renamed ON users;
    CREATE FUNCTION tether_users_came() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $f$
    BEGIN
        INSERT INTO users_moves (seq, username, delta) SELECT seq, sort_username, 1 FROM new_rows;
        INSERT INTO row_counts (tbl, delta) SELECT 'users_writes', count(*) FROM new_rows HAVING count(*) > 0;
        RETURN NULL;
    END $f$;
    CREATE FUNCTION tether_users_left() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $f$
    BEGIN
        INSERT INTO users_moves (seq, username, delta) SELECT seq, sort_username, -1 FROM old_rows;
        INSERT INTO row_counts (tbl, delta) SELECT 'users_writes', count(*) FROM old_rows HAVING count(*) > 0;
        RETURN NULL;
    END $f$;
    CREATE FUNCTION tether_user_renamed() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $f$
    BEGIN
        INSERT INTO users_moves (seq, username, delta) VALUES (OLD.seq, OLD.sort_username, -1),
            (NEW.seq, NEW.sort_username, 1);
        INSERT INTO row_counts (tbl, delta) VALUES ('users_writes', 2);
        RETURN NULL;
    END $f$;
    CREATE TRIGGER users_came AFTER INSERT ON users REFERENCING NEW TABLE AS new_rows
        FOR EACH STATEMENT EXECUTE FUNCTION tether_users_came();
    CREATE TRIGGER users_left AFTER DELETE ON users REFERENCING OLD TABLE AS old_rows
        FOR EACH STATEMENT EXECUTE FUNCTION tether_users_left();
    CREATE TRIGGER users_truncated AFTER TRUNCATE ON users
        FOR EACH STATEMENT EXECUTE FUNCTION tether_users_written();
    CREATE TRIGGER users_renamed AFTER UPDATE ON users
        FOR EACH ROW WHEN (OLD.sort_username IS DISTINCT FROM NEW.sort_username) EXECUTE FUNCTION tether_user_renamed();
    "#,
    // 14: the users counted by the values of their closed-valued fields (`tally.rs`): rows of
    // the values, as a filter reads them from a document (`doc->>'field'`), and a signed
    // delta (inserted, never updated: concurrent writers do not wait on one row), written by
    // the statements that insert or delete users and by each update that changes one of the
    // values. `FOLD_TALLY` (mod.rs) folds them into one row per combination.
    r#"
    CREATE TABLE users_tally (state TEXT, suspended TEXT, activated TEXT, account_locked TEXT,
        password_expired TEXT, password_never_expires TEXT, externally_managed TEXT, sudo TEXT,
        ldap_binding_user TEXT, n BIGINT NOT NULL);
    CREATE FUNCTION tether_user_retallied() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $f$
    BEGIN
        INSERT INTO users_tally VALUES
            (OLD.doc->>'state', OLD.doc->>'suspended', OLD.doc->>'activated', OLD.doc->>'account_locked',
             OLD.doc->>'password_expired', OLD.doc->>'password_never_expires', OLD.doc->>'externally_managed',
             OLD.doc->>'sudo', OLD.doc->>'ldap_binding_user', -1),
            (NEW.doc->>'state', NEW.doc->>'suspended', NEW.doc->>'activated', NEW.doc->>'account_locked',
             NEW.doc->>'password_expired', NEW.doc->>'password_never_expires', NEW.doc->>'externally_managed',
             NEW.doc->>'sudo', NEW.doc->>'ldap_binding_user', 1);
        RETURN NULL;
    END $f$;
    -- First: it locks the table against writers until the migration commits, so the count
    -- below misses nothing and counts nothing twice.
    CREATE TRIGGER users_retallied AFTER UPDATE ON users FOR EACH ROW
        WHEN ((OLD.doc->>'state', OLD.doc->>'suspended', OLD.doc->>'activated', OLD.doc->>'account_locked',
               OLD.doc->>'password_expired', OLD.doc->>'password_never_expires', OLD.doc->>'externally_managed',
               OLD.doc->>'sudo', OLD.doc->>'ldap_binding_user')
              IS DISTINCT FROM
              (NEW.doc->>'state', NEW.doc->>'suspended', NEW.doc->>'activated', NEW.doc->>'account_locked',
               NEW.doc->>'password_expired', NEW.doc->>'password_never_expires', NEW.doc->>'externally_managed',
               NEW.doc->>'sudo', NEW.doc->>'ldap_binding_user'))
        EXECUTE FUNCTION tether_user_retallied();
    CREATE OR REPLACE FUNCTION tether_users_came() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $f$
    BEGIN
        INSERT INTO users_moves (seq, username, delta) SELECT seq, sort_username, 1 FROM new_rows;
        INSERT INTO row_counts (tbl, delta) SELECT 'users_writes', count(*) FROM new_rows HAVING count(*) > 0;
        INSERT INTO users_tally
            SELECT doc->>'state', doc->>'suspended', doc->>'activated', doc->>'account_locked',
                   doc->>'password_expired', doc->>'password_never_expires', doc->>'externally_managed',
                   doc->>'sudo', doc->>'ldap_binding_user', count(*)
            FROM new_rows GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9;
        RETURN NULL;
    END $f$;
    CREATE OR REPLACE FUNCTION tether_users_left() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $f$
    BEGIN
        INSERT INTO users_moves (seq, username, delta) SELECT seq, sort_username, -1 FROM old_rows;
        INSERT INTO row_counts (tbl, delta) SELECT 'users_writes', count(*) FROM old_rows HAVING count(*) > 0;
        INSERT INTO users_tally
            SELECT doc->>'state', doc->>'suspended', doc->>'activated', doc->>'account_locked',
                   doc->>'password_expired', doc->>'password_never_expires', doc->>'externally_managed',
                   doc->>'sudo', doc->>'ldap_binding_user', -count(*)
            FROM old_rows GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9;
        RETURN NULL;
    END $f$;
    CREATE FUNCTION tether_users_untallied() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $f$
    BEGIN
        -- After a fold under way commits: its folded rows, which the delete's snapshot
        -- would not see, go too.
        LOCK TABLE users_tally IN EXCLUSIVE MODE;
        DELETE FROM users_tally;
        RETURN NULL;
    END $f$;
    CREATE TRIGGER users_untallied AFTER TRUNCATE ON users
        FOR EACH STATEMENT EXECUTE FUNCTION tether_users_untallied();
    INSERT INTO users_tally
        SELECT doc->>'state', doc->>'suspended', doc->>'activated', doc->>'account_locked',
               doc->>'password_expired', doc->>'password_never_expires', doc->>'externally_managed',
               doc->>'sudo', doc->>'ldap_binding_user', count(*)
        FROM users GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9;
    "#,
    // 15: the users' change count (`remembered.rs`): a row of `row_counts` (`users_changed`,
    // delta 1) for every statement that writes users, updates included, so a filtered total
    // counted in one snapshot is known to hold in a later one while the sum is the same.
    r#"
    CREATE FUNCTION tether_users_changed() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $f$
    BEGIN
        INSERT INTO row_counts (tbl, delta) VALUES ('users_changed', 1);
        RETURN NULL;
    END $f$;
    CREATE TRIGGER users_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON users
        FOR EACH STATEMENT EXECUTE FUNCTION tether_users_changed();
    "#,
    // 16: the users by each free-text field that lists are filtered by (`indexed.rs`), as
    // stored columns with an index each (as the username's sort key in step 3: only then
    // does a count read the index alone, where one on an expression of `doc` visits every
    // matching row: p50 75 ms for 2 % of 1,000,000 users). `seq` follows the value, so a
    // list without a sort reads its page in the index's order. The columns are filled by
    // rewriting the table once.
    r#"
    ALTER TABLE users
        ADD COLUMN department text GENERATED ALWAYS AS (doc->>'department') STORED,
        ADD COLUMN company text GENERATED ALWAYS AS (doc->>'company') STORED,
        ADD COLUMN location text GENERATED ALWAYS AS (doc->>'location') STORED,
        ADD COLUMN job_title text GENERATED ALWAYS AS (doc->>'jobTitle') STORED,
        ADD COLUMN employee_type text GENERATED ALWAYS AS (doc->>'employeeType') STORED,
        ADD COLUMN employee_identifier text GENERATED ALWAYS AS (doc->>'employeeIdentifier') STORED,
        ADD COLUMN manager text GENERATED ALWAYS AS (doc->>'manager') STORED;
    CREATE INDEX users_by_department ON users (department, seq);
    CREATE INDEX users_by_company ON users (company, seq);
    CREATE INDEX users_by_location ON users (location, seq);
    CREATE INDEX users_by_job_title ON users (job_title, seq);
    CREATE INDEX users_by_employee_type ON users (employee_type, seq);
    CREATE INDEX users_by_employee_identifier ON users (employee_identifier, seq);
    CREATE INDEX users_by_manager ON users (manager, seq);
    "#,
    // 17: the users who are not simply active (`unusual.rs`), by username and by insertion
    // order, in partial indexes of them alone; their condition is `filter::UNUSUAL`'s.
    r#"
    CREATE INDEX users_unusual_by_username ON users (sort_username COLLATE "C" ASC NULLS FIRST, seq)
        WHERE ((doc->>'state') IS DISTINCT FROM 'ACTIVATED' OR (doc->>'suspended') = 'true'
               OR (doc->>'account_locked') = 'true' OR (doc->>'password_expired') = 'true');
    CREATE INDEX users_unusual_by_seq ON users (seq)
        WHERE ((doc->>'state') IS DISTINCT FROM 'ACTIVATED' OR (doc->>'suspended') = 'true'
               OR (doc->>'account_locked') = 'true' OR (doc->>'password_expired') = 'true');
    "#,
    // 18: the users granted sudo or LDAP binding, whose password never expires, or who
    // were never activated (`flagged.rs`), by username and by insertion order, in partial
    // indexes of each flag's users alone; their condition is `Postgres::flagged`'s.
    r#"
    CREATE INDEX users_sudo_by_username ON users (sort_username COLLATE "C" ASC NULLS FIRST, seq)
        WHERE (doc->>'sudo') = 'true';
    CREATE INDEX users_sudo_by_seq ON users (seq) WHERE (doc->>'sudo') = 'true';
    CREATE INDEX users_ldap_binding_user_by_username ON users (sort_username COLLATE "C" ASC NULLS FIRST, seq)
        WHERE (doc->>'ldap_binding_user') = 'true';
    CREATE INDEX users_ldap_binding_user_by_seq ON users (seq) WHERE (doc->>'ldap_binding_user') = 'true';
    CREATE INDEX users_password_never_expires_by_username ON users (sort_username COLLATE "C" ASC NULLS FIRST, seq)
        WHERE (doc->>'password_never_expires') = 'true';
    CREATE INDEX users_password_never_expires_by_seq ON users (seq)
        WHERE (doc->>'password_never_expires') = 'true';
    CREATE INDEX users_not_activated_by_username ON users (sort_username COLLATE "C" ASC NULLS FIRST, seq)
        WHERE (doc->>'activated') = 'false';
    CREATE INDEX users_not_activated_by_seq ON users (seq) WHERE (doc->>'activated') = 'false';
    "#,
    // 19: the users by their source, AD or Tether (`externally_managed`, the console's
    // source filter; `flagged.rs`), then the username's sort key: either value may be the
    // rare one.
    r#"
    CREATE INDEX users_by_source ON users ((doc->>'externally_managed'),
        sort_username COLLATE "C" ASC NULLS FIRST, seq);
    "#,
];
