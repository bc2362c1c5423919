//! The `Store` methods whose SQL and binds are the same on both backends, written once.
//!
//! `store_impl!` writes the whole `impl Store` (the `async_trait` attribute must see every
//! method expanded): the shared methods, then the backend's own. Helper functions named in
//! the shared bodies (`link_edge`, `unlink_edge`, `replace_doc`, `conflict`) are each
//! backend's, resolved where the macro is invoked; `$read` and `$write` name the pools reads
//! and writes go to (SQLite keeps one writer connection and a pool of readers).

/// The statements shared by single writes and batches, on any executor (pool or
/// transaction) of a backend: `$exec` is its executor trait, `$insert` and `$update` its SQL
/// (placeholders and JSON casts differ; `{}` stands for the table, then in `$update` for the
/// version's increment and its condition, `$version` being the condition's placeholder) and
/// `$feed` its feed append.
macro_rules! store_statements {
    ($exec:ident, insert = $insert:literal, update = $update:literal, version = $version:literal, feed = $feed:literal) => {
        /// Appends one feed entry; answers its `seq`.
        async fn insert_feed<'e>(e: impl $exec<'e>, entry: NewFeedEntry<'_>) -> Result<i64> {
            let NewFeedEntry { domain, kind, object, body, secret, created } = entry;
            Ok(sqlx::query_scalar($feed)
                .bind(domain)
                .bind(kind)
                .bind(object)
                .bind(body.to_string())
                .bind(secret)
                .bind(created)
                .fetch_one(e)
                .await?)
        }

        async fn insert_doc<'e>(e: impl $exec<'e>, c: Collection, doc: &Doc) -> Result<()> {
            sqlx::query(&format!($insert, c.table()))
                .bind(&doc.id)
                .bind(lower(&doc.key1))
                .bind(lower(&doc.key2))
                .bind($crate::sql::body_text(&doc.body))
                .execute(e)
                .await
                .map_err(|err| conflict(c, err))?;
            Ok(())
        }

        /// Replaces a document; on a versioned table the version moves on, and with
        /// `doc.version` only if it is still the stored one (else `Stale`: changed or deleted
        /// since it was read).
        async fn replace_doc<'e>(e: impl $exec<'e>, c: Collection, doc: &Doc) -> Result<bool> {
            let versioned = $crate::sql::VERSIONED.contains(&c.table());
            let expected = doc.version.filter(|_| versioned);
            let bump = if versioned { ", version = version + 1" } else { "" };
            let cond = if expected.is_some() { format!(" AND version = {}", $version) } else { String::new() };
            let text = format!($update, c.table(), bump, cond);
            let mut q = sqlx::query(&text)
                .bind(lower(&doc.key1))
                .bind(lower(&doc.key2))
                .bind($crate::sql::body_text(&doc.body))
                .bind(&doc.id);
            if let Some(v) = expected {
                q = q.bind(v);
            }
            let r = q.execute(e).await.map_err(|err| conflict(c, err))?;
            if r.rows_affected() == 0 && expected.is_some() {
                return Err(StoreError::Stale { collection: $crate::sql::singular(c) });
            }
            Ok(r.rows_affected() == 1)
        }

        async fn link_edge<'e>(e: impl $exec<'e>, kind: Edge, from: &str, to: &str) -> Result<bool> {
            let r = sqlx::query(stmt::LINK).bind(kind.name()).bind(from).bind(to).execute(e).await?;
            Ok(r.rows_affected() == 1)
        }

        async fn unlink_edge<'e>(e: impl $exec<'e>, kind: Edge, from: &str, to: &str) -> Result<bool> {
            let r = sqlx::query(stmt::UNLINK).bind(kind.name()).bind(from).bind(to).execute(e).await?;
            Ok(r.rows_affected() == 1)
        }
    };
}

macro_rules! store_impl {
    (
        $ty:ty,
        db = $db:ty,
        json_cast = $cast:literal,
        text_cast = $text:literal,
        read = $read:ident,
        write = $write:ident,
        { $($own:tt)* }
    ) => {
        #[async_trait::async_trait]
        impl $crate::Store for $ty {
            async fn put_secret(&self, owner: &str, purpose: $crate::Secret, hash: Option<&str>) -> $crate::Result<()> {
                self.writing()
                    .run(async move {
                        use $crate::sql::stmt;
                        match hash {
                            Some(h) => {
                                sqlx::query(stmt::PUT_SECRET).bind(owner).bind(purpose.name()).bind(h).execute(&self.$write).await?
                            }
                            None => sqlx::query(stmt::DELETE_SECRET).bind(owner).bind(purpose.name()).execute(&self.$write).await?,
                        };
                        Ok(())
                    })
                    .await
            }

            async fn secret(&self, owner: &str, purpose: $crate::Secret) -> $crate::Result<Option<String>> {
                Ok(sqlx::query_scalar($crate::sql::stmt::SECRET)
                    .bind(owner)
                    .bind(purpose.name())
                    .fetch_optional(&self.$read)
                    .await?)
            }

            async fn secret_owner(&self, purpose: $crate::Secret, hash: &str) -> $crate::Result<Option<String>> {
                Ok(sqlx::query_scalar($crate::sql::stmt::SECRET_OWNER)
                    .bind(purpose.name())
                    .bind(hash)
                    .fetch_optional(&self.$read)
                    .await?)
            }

            async fn link(&self, e: $crate::Edge, from: &str, to: &str) -> $crate::Result<bool> {
                self.writing()
                    .run(async move {
                        link_edge(&self.$write, e, from, to).await
                    })
                    .await
            }

            async fn unlink(&self, e: $crate::Edge, from: &str, to: &str) -> $crate::Result<bool> {
                self.writing()
                    .run(async move {
                        unlink_edge(&self.$write, e, from, to).await
                    })
                    .await
            }

            async fn project(
                &self,
                c: $crate::Collection,
                filter: &tether_core::query::Filter,
                fields: &[&str],
            ) -> $crate::Result<Vec<Vec<Option<String>>>> {
                use sqlx::Row;
                let (text, binds) = $crate::sql::project_sql::<$db>(c.table(), filter, fields);
                let rows = $crate::sql::bind_all(sqlx::query(&text), &binds).fetch_all(&self.$read).await?;
                let mut out = Vec::with_capacity(rows.len());
                for r in rows {
                    out.push((0..fields.len()).map(|i| r.try_get::<Option<String>, _>(i)).collect::<Result<_, _>>()?);
                }
                Ok(out)
            }

            async fn targets(&self, e: $crate::Edge, from: &str) -> $crate::Result<Vec<String>> {
                Ok(sqlx::query_scalar($crate::sql::stmt::TARGETS).bind(e.name()).bind(from).fetch_all(&self.$read).await?)
            }

            async fn sources(&self, e: $crate::Edge, to: &str) -> $crate::Result<Vec<String>> {
                Ok(sqlx::query_scalar($crate::sql::stmt::SOURCES).bind(e.name()).bind(to).fetch_all(&self.$read).await?)
            }

            async fn users_with_groups(
                &self,
                keys: &[(&str, $crate::UserKey)],
                from: &str,
                direct: $crate::Edge,
                via: $crate::Edge,
            ) -> $crate::Result<Vec<Option<$crate::UserWithGroups>>> {
                if keys.is_empty() {
                    return Ok(Vec::new());
                }
                // Documents without their versions: answers for reading, not for a write
                // back (the version costs SQLite a rewrite of each document's JSON).
                let (user_doc, group_doc) = (<$db as $crate::sql::Dialect>::DOC, <$db as $crate::sql::Dialect>::DOC);
                // Per key k (parameter $(4+k)), rows tagged k (the key's column unqualified:
                // `edges` has none of `users`' columns, and a field's expression must read
                // as its index does): the user (o = -1), the direct
                // link (o = 0, no document), its groups (o = the membership's seq). Each part
                // starts from the user's row and its few memberships, each checked for the
                // link (SQLite's planner otherwise walked every group linked to `from`, or
                // every membership, for a `dst = (subquery)`: 1–2 ms at 10,000 users).
                let mut parts = Vec::new();
                for (k, (_, by)) in keys.iter().enumerate() {
                    let p = 4 + k;
                    let (col, param) = match by {
                        $crate::UserKey::Id => ("id".to_string(), format!("${p}")),
                        $crate::UserKey::Username => ("key1".to_string(), format!("${p}")),
                        $crate::UserKey::UnixUid => (
                            <$db as $crate::sql::Dialect>::field("unix_uid"),
                            <$db as $crate::sql::Dialect>::number(&format!("${p}")),
                        ),
                    };
                    parts.push(format!(
                        "SELECT CAST({k} AS BIGINT) AS k, -1 AS o, {user_doc} AS d FROM users WHERE {col} = {param} \
                         UNION ALL \
                         SELECT {k} AS k, 0 AS o, NULL AS d FROM users u \
                         JOIN edges e ON e.kind = $3 AND e.src = $2 AND e.dst = u.id WHERE {col} = {param} \
                         UNION ALL \
                         SELECT {k} AS k, x.o AS o, {group_doc} AS d FROM \
                         (SELECT m.seq AS o, m.src AS gid FROM users u \
                          JOIN edges m ON m.kind = 'member' AND m.dst = u.id WHERE {col} = {param} \
                          AND EXISTS (SELECT 1 FROM edges l WHERE l.kind = $1 AND l.src = $2 AND l.dst = m.src)) x \
                         JOIN groups ON groups.id = x.gid"
                    ));
                }
                let sql = format!("{} ORDER BY k, o", parts.join(" UNION ALL "));
                let mut q = sqlx::query_as(&sql).bind(via.name()).bind(from).bind(direct.name());
                for (key, by) in keys {
                    q = match by {
                        $crate::UserKey::Id => q.bind(key.to_string()),
                        $crate::UserKey::Username => q.bind(key.to_lowercase()),
                        // Not a number: no user (uids are never negative).
                        $crate::UserKey::UnixUid => q.bind(key.trim().parse::<i64>().unwrap_or(-1)),
                    };
                }
                let rows: Vec<(i64, i64, Option<String>)> = q.fetch_all(&self.$read).await?;
                let mut out: Vec<Option<$crate::UserWithGroups>> = vec![None; keys.len()];
                for (k, o, d) in rows {
                    let Some(slot) = out.get_mut(k as usize) else { continue };
                    match (o, d, slot.as_mut()) {
                        (-1, Some(u), _) => *slot = Some(($crate::sql::parse(&u)?, false, Vec::new())),
                        (0, None, Some(found)) => found.1 = true,
                        (_, Some(g), Some(found)) => found.2.push($crate::sql::parse(&g)?),
                        _ => {}
                    }
                }
                Ok(out)
            }

            async fn replace_with_secret(
                &self,
                c: $crate::Collection,
                doc: &$crate::Doc,
                purpose: $crate::Secret,
                hash: &str,
            ) -> $crate::Result<bool> {
                self.writing()
                    .run(async move {
                        let mut tx = self.$write.begin().await?;
                        let found = replace_doc(&mut *tx, c, doc).await?;
                        if found {
                            sqlx::query($crate::sql::stmt::PUT_SECRET)
                                .bind(&doc.id)
                                .bind(purpose.name())
                                .bind(hash)
                                .execute(&mut *tx)
                                .await?;
                        }
                        tx.commit().await?;
                        Ok(found)
                    })
                    .await
            }

            async fn write_batch(&self, ops: &[$crate::WriteOp]) -> $crate::Result<()> {
                self.writing()
                    .run(async move {
                        use $crate::sql::{self, lower};
                        let plan = sql::plan_batch(ops);
                        if !plan.inserts.is_empty() {
                            self.rows_changing();
                        }
                        let mut tx = self.$write.begin().await?;
                        for (c, docs) in &plan.inserts {
                            let text = sql::insert_rows::<$db>(c.table(), docs.len(), $cast);
                            let mut q = sqlx::query(&text);
                            for d in docs {
                                q = q.bind(&d.id).bind(lower(&d.key1)).bind(lower(&d.key2)).bind(sql::body_text(&d.body));
                            }
                            q.execute(&mut *tx).await.map_err(|err| conflict(*c, err))?;
                        }
                        for (c, doc) in &plan.replaces {
                            replace_doc(&mut *tx, *c, doc).await?;
                        }
                        for edges in &plan.links {
                            let text = sql::link_rows::<$db>(edges.len());
                            let mut q = sqlx::query(&text);
                            for (e, from, to) in edges {
                                q = q.bind(e.name()).bind(*from).bind(*to);
                            }
                            q.execute(&mut *tx).await?;
                        }
                        for (e, from, to) in &plan.unlinks {
                            unlink_edge(&mut *tx, *e, from, to).await?;
                        }
                        tx.commit().await?;
                        if !plan.inserts.is_empty() {
                            self.counts_changed().await;
                        }
                        Ok(())
                    })
                    .await
            }

            async fn get(&self, c: $crate::Collection, id: &str) -> $crate::Result<Option<serde_json::Value>> {
                let doc = $crate::sql::doc_select::<$db>(c.table());
                let sql = format!("SELECT {doc} FROM {} WHERE id = $1", c.table());
                let row: Option<String> = sqlx::query_scalar(&sql).bind(id).fetch_optional(&self.$read).await?;
                row.as_deref().map($crate::sql::parse).transpose()
            }

            async fn get_by_key(&self, c: $crate::Collection, key1: &str) -> $crate::Result<Option<serde_json::Value>> {
                let doc = $crate::sql::doc_select::<$db>(c.table());
                let sql = format!("SELECT {doc} FROM {} WHERE key1 = $1", c.table());
                let row: Option<String> =
                    sqlx::query_scalar(&sql).bind(key1.to_lowercase()).fetch_optional(&self.$read).await?;
                row.as_deref().map($crate::sql::parse).transpose()
            }

            async fn get_by_keys(
                &self,
                c: $crate::Collection,
                key2: bool,
                keys: &[&str],
            ) -> $crate::Result<Vec<serde_json::Value>> {
                let mut out = Vec::new();
                for chunk in keys.chunks(500) {
                    let text = $crate::sql::by_keys::<$db>(c.table(), key2, chunk.len());
                    let mut q = sqlx::query_scalar::<_, String>(&text);
                    for k in chunk {
                        q = q.bind(k.to_lowercase());
                    }
                    for row in q.fetch_all(&self.$read).await? {
                        out.push($crate::sql::parse(&row)?);
                    }
                }
                Ok(out)
            }

            async fn delete(&self, c: $crate::Collection, id: &str) -> $crate::Result<bool> {
                self.writing()
                    .run(async move {
                        use $crate::sql::stmt;
                        self.rows_changing();
                        let mut tx = self.$write.begin().await?;
                        let r =
                            sqlx::query(&format!("DELETE FROM {} WHERE id = $1", c.table())).bind(id).execute(&mut *tx).await?;
                        sqlx::query(stmt::DELETE_EDGES_OF).bind(id).execute(&mut *tx).await?;
                        sqlx::query(stmt::DELETE_SECRETS_OF).bind(id).execute(&mut *tx).await?;
                        tx.commit().await?;
                        self.counts_changed().await;
                        Ok(r.rows_affected() == 1)
                    })
                    .await
            }

            async fn read_feed(&self, domain: &str, after: i64, limit: usize) -> $crate::Result<Vec<$crate::FeedEntry>> {
                use sqlx::Row;
                let rows = sqlx::query(concat!(
                    "SELECT seq, kind, object_id, body",
                    $text,
                    ", secret, created FROM feed WHERE domain_id = $1 AND seq > $2 ORDER BY seq LIMIT $3"
                ))
                .bind(domain)
                .bind(after)
                .bind(i64::try_from(limit).unwrap_or(i64::MAX))
                .fetch_all(&self.$read)
                .await?;
                rows.iter()
                    .map(|r| {
                        Ok($crate::FeedEntry {
                            seq: r.get(0),
                            kind: r.get(1),
                            object_id: r.get(2),
                            body: $crate::sql::parse(r.get::<&str, _>(3))?,
                            secret: r.get(4),
                            created: r.get(5),
                        })
                    })
                    .collect()
            }

            async fn expire_feed_secrets(&self, before: &str) -> $crate::Result<Vec<(String, String)>> {
                let rows: Vec<(String, String)> =
                    sqlx::query_as($crate::sql::stmt::EXPIRE_FEED_SECRETS).bind(before).fetch_all(&self.$write).await?;
                Ok(rows)
            }

            async fn count_feed(&self, domain: &str, after: i64) -> $crate::Result<u64> {
                let n: i64 = sqlx::query_scalar($crate::sql::stmt::COUNT_FEED)
                    .bind(domain)
                    .bind(after)
                    .fetch_one(&self.$read)
                    .await?;
                Ok(n as u64)
            }

            async fn clear_feed_secrets(&self, domain: &str, upto: i64) -> $crate::Result<()> {
                sqlx::query($crate::sql::stmt::CLEAR_FEED_SECRETS).bind(domain).bind(upto).execute(&self.$write).await?;
                Ok(())
            }

            async fn setting(&self, key: &str) -> $crate::Result<Option<serde_json::Value>> {
                let v: Option<String> = sqlx::query_scalar(concat!("SELECT value", $text, " FROM settings WHERE key = $1"))
                    .bind(key)
                    .fetch_optional(&self.$read)
                    .await?;
                v.as_deref().map($crate::sql::parse).transpose()
            }

            async fn put_shared(&self, key: &str, value: &serde_json::Value, expires: i64) -> $crate::Result<()> {
                sqlx::query(
                    "INSERT INTO shared (key, value, expires) VALUES ($1, $2, $3) \
                     ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires = excluded.expires",
                )
                .bind(key)
                .bind(value.to_string())
                .bind(expires)
                .execute(&self.$write)
                .await?;
                Ok(())
            }

            async fn shared(&self, key: &str, now: i64) -> $crate::Result<Option<serde_json::Value>> {
                let v: Option<String> = sqlx::query_scalar("SELECT value FROM shared WHERE key = $1 AND expires > $2")
                    .bind(key)
                    .bind(now)
                    .fetch_optional(&self.$read)
                    .await?;
                v.as_deref().map($crate::sql::parse).transpose()
            }

            async fn take_shared(&self, prefix: &str, now: i64) -> $crate::Result<Vec<(String, serde_json::Value)>> {
                let rows: Vec<(String, String)> =
                    sqlx::query_as("DELETE FROM shared WHERE key LIKE $1 AND expires > $2 RETURNING key, value")
                        .bind(format!("{prefix}%"))
                        .bind(now)
                        .fetch_all(&self.$write)
                        .await?;
                rows.into_iter().map(|(k, v)| Ok((k, $crate::sql::parse(&v)?))).collect()
            }

            async fn delete_shared(&self, key: &str) -> $crate::Result<()> {
                sqlx::query("DELETE FROM shared WHERE key = $1").bind(key).execute(&self.$write).await?;
                Ok(())
            }

            async fn expire_shared(&self, now: i64) -> $crate::Result<()> {
                sqlx::query("DELETE FROM shared WHERE expires <= $1").bind(now).execute(&self.$write).await?;
                Ok(())
            }

            async fn count_attempt(&self, key: &str, a: $crate::Attempt) -> $crate::Result<$crate::Counted> {
                let until: i64 = sqlx::query_scalar($crate::sql::stmt::COUNT_ATTEMPT)
                    .bind(key)
                    .bind(a.now)
                    .bind(a.window_start)
                    .bind(a.max)
                    .bind(a.lock_until)
                    .fetch_one(&self.$write)
                    .await?;
                Ok(match until {
                    -1 => $crate::Counted::Full,
                    t if t > a.now => $crate::Counted::Locked(t),
                    _ => $crate::Counted::Counted,
                })
            }

            async fn attempt_failed(&self, key: &str, a: $crate::Attempt) -> $crate::Result<()> {
                sqlx::query($crate::sql::stmt::ATTEMPT_FAILED)
                    .bind(key)
                    .bind(a.now)
                    .bind(a.max)
                    .bind(a.lock_until)
                    .execute(&self.$write)
                    .await?;
                // Keys neither locked nor counting in the current window are forgotten.
                sqlx::query("DELETE FROM login_attempts WHERE since < $1 AND locked_until <= $2")
                    .bind(a.window_start)
                    .bind(a.now)
                    .execute(&self.$write)
                    .await?;
                Ok(())
            }

            async fn take_numbers(&self, name: &str, count: i64, floor: i64) -> $crate::Result<i64> {
                let last: i64 = sqlx::query_scalar($crate::sql::stmt::TAKE_NUMBERS)
                    .bind(name)
                    .bind(count)
                    .bind(floor)
                    .fetch_one(&self.$write)
                    .await?;
                Ok(last - count + 1)
            }

            async fn raise_counter(&self, name: &str, to: i64) -> $crate::Result<bool> {
                let r = sqlx::query(
                    "INSERT INTO counters (name, n) VALUES ($1, $2) \
                     ON CONFLICT (name) DO UPDATE SET n = excluded.n WHERE counters.n < excluded.n",
                )
                .bind(name)
                .bind(to)
                .execute(&self.$write)
                .await?;
                Ok(r.rows_affected() == 1)
            }

            async fn attempt_succeeded(&self, key: &str, shared_key: bool) -> $crate::Result<()> {
                let sql = if shared_key {
                    "UPDATE login_attempts SET n = CASE WHEN n > 0 THEN n - 1 ELSE 0 END WHERE key = $1"
                } else {
                    "DELETE FROM login_attempts WHERE key = $1"
                };
                sqlx::query(sql).bind(key).execute(&self.$write).await?;
                Ok(())
            }

            async fn put_setting(&self, key: &str, value: &serde_json::Value) -> $crate::Result<()> {
                self.writing()
                    .run(async move {
                        sqlx::query(concat!(
                            "INSERT INTO settings (key, value) VALUES ($1, $2",
                            $cast,
                            ") ON CONFLICT (key) DO UPDATE SET value = excluded.value"
                        ))
                        .bind(key)
                        .bind(value.to_string())
                        .execute(&self.$write)
                        .await?;
                        Ok(())
                    })
                    .await
            }

            $($own)*
        }
    };
}
