//! The list and search filters of the REST API (`tether_core::query`), reached the way the
//! server reaches them:
//! - each line of the input as a `filter=` parameter (v1 `field:$op:value`, v2
//!   `field:op:value`) and as a `sort=` parameter, against every catalogue;
//! - the input as a raw query string through the server's `QueryPairs` extractor and its
//!   `list_query` (limit, skip, repeated filter, sort) and `fields`;
//! - the input as the JSON body of `POST /api/search/systemusers` (`filter`, `searchFilter`,
//!   `limit`, `skip`, `sort`), and a structured body built from the input's bytes.
//!
//! Properties: nothing panics; errors say something; every parsed filter names only fields
//! of its catalogue and satisfies what the store assumes of it (a regex value is text); a
//! parsed filter rendered back into the syntax it came from parses to the same AST, and one
//! parameter filter means the same as a JSON search filter.

#![no_main]

use arbitrary::Unstructured;
use axum::extract::FromRequestParts;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use tether_core::query::{
    parse_filter_param, parse_filter_params, parse_search_filter, parse_search_term, parse_sort, Field, Filter, Op,
    Scalar, DOMAIN_FIELDS, GROUP_FIELDS, HISTORY_FIELDS, NOTIFICATION_FIELDS, USER_FIELDS,
};
use tether_fuzz::{block_on, fields_of, json, render_param, render_search, string, Vocabulary};
use tether_server::extract::{parse_window, QueryPairs};

const CATALOGUES: [&[Field]; 5] = [USER_FIELDS, GROUP_FIELDS, NOTIFICATION_FIELDS, HISTORY_FIELDS, DOMAIN_FIELDS];

/// What the store's SQL translation (`to_sql` in `tether-store/src/sql.rs`) and the server
/// assume of every filter the parsers return.
fn check_filter(cat: &[Field], f: &Filter) {
    let mut names = Vec::new();
    fields_of(f, &mut names);
    for n in names {
        assert!(cat.iter().any(|(c, _)| *c == n), "field `{n}` is not in the catalogue: {f:?}");
    }
    match f {
        Filter::Cmp { op: Op::Regex, value, .. } => {
            // tether-store's to_sql: `unreachable!("regex values are text")`, a panic. (The
            // parsers compile the pattern themselves: compiling it again here costs throughput.)
            assert!(
                matches!(value, Scalar::Text(_)),
                "a regex comparison with a non-text value reaches the store: {f:?}"
            );
        }
        Filter::Cmp { .. } | Filter::In { .. } => {}
        Filter::And(parts) | Filter::Or(parts) => parts.iter().for_each(|p| check_filter(cat, p)),
    }
}

fn check_error(e: &impl std::fmt::Display) {
    assert!(!e.to_string().trim().is_empty(), "an error without a message");
}

/// One `filter=` parameter.
fn param(cat: &[Field], s: &str) {
    match parse_filter_param(cat, s) {
        Ok(f) => {
            check_filter(cat, &f);
            for v1 in [false, true] {
                let again = render_param(&f, v1).expect("one condition");
                assert_eq!(parse_filter_param(cat, &again).as_ref(), Ok(&f), "`{s}` rendered as `{again}`");
            }
            if let Some(j) = render_search(&f) {
                let same = parse_search_filter(cat, &j);
                assert_eq!(same, Ok(Some(f.clone())), "`{s}` as a search filter {j}");
            }
        }
        Err(e) => check_error(&e),
    }
    match parse_sort(cat, s) {
        Ok(Some((name, desc))) => {
            assert!(cat.iter().any(|(c, _)| *c == name));
            let again = format!("{}{name}", if desc { "-" } else { "" });
            assert_eq!(parse_sort(cat, &again), Ok(Some((name, desc))), "sort `{s}` rendered as `{again}`");
        }
        Ok(None) => assert!(s.trim().is_empty()),
        Err(e) => check_error(&e),
    }
}

/// A raw query string, as `GET /api/systemusers?...` and the v2 lists receive it.
fn query_string(q: &str) {
    let Ok(req) = axum::http::Request::builder().uri(format!("/api/systemusers?{q}")).body(()) else {
        return; // not a request line the HTTP layer would pass on
    };
    let (mut parts, ()) = req.into_parts();
    let Ok(pairs) = block_on(QueryPairs::from_request_parts(&mut parts, &())) else {
        panic!("the query extractor refused `{q}`");
    };
    for (cat, max) in CATALOGUES.iter().zip([100, 100, 100, 100, 1000]) {
        match pairs.list_query(cat, max) {
            Ok(lq) => {
                assert!(lq.limit <= max);
                if let Some(f) = &lq.filter {
                    check_filter(cat, f);
                }
                if let Some((name, _)) = lq.sort {
                    assert!(cat.iter().any(|(c, _)| *c == name));
                }
            }
            Err(e) => assert!(!e.message.is_empty()),
        }
    }
    let _ = pairs.fields();
}

/// The JSON body of `POST /api/search/systemusers`, read as the handler reads it.
fn search_body(body: &Value) {
    let cat = USER_FIELDS;
    match parse_search_filter(cat, body.get("filter").unwrap_or(&Value::Null)) {
        Ok(Some(f)) => {
            check_filter(cat, &f);
            if let Some(j) = render_search(&f) {
                assert_eq!(parse_search_filter(cat, &j), Ok(Some(f.clone())), "{body} rendered as {j}");
            }
        }
        Ok(None) => {}
        Err(e) => check_error(&e),
    }
    if let Some(sf) = body.get("searchFilter") {
        match parse_search_term(cat, sf) {
            Ok(Some(f)) => {
                check_filter(cat, &f);
                assert!(matches!(f, Filter::Or(_)));
            }
            Ok(None) => {}
            Err(e) => check_error(&e),
        }
    }
    for k in ["limit", "skip"] {
        let raw = match body.get(k) {
            Some(Value::Number(n)) => Some(n.to_string()),
            Some(Value::String(s)) => Some(s.clone()),
            _ => None,
        };
        if let Err(e) = parse_window(k, raw.as_deref(), 10) {
            assert!(e.message.contains(k), "{}", e.message);
        }
    }
    if let Some(s) = body.get("sort").and_then(Value::as_str) {
        let _ = parse_sort(cat, s);
    }
}

const KEYS: &[&str] = &[
    "filter",
    "searchFilter",
    "searchTerm",
    "fields",
    "limit",
    "skip",
    "sort",
    "and",
    "or",
    "$and",
    "$or",
    "$eq",
    "$ne",
    "$gt",
    "$gte",
    "$lt",
    "$lte",
    "$regex",
    "$in",
    "$like",
    "_id",
    "id",
    "username",
    "email",
    "firstname",
    "lastname",
    "state",
    "suspended",
    "activated",
    "sudo",
    "created",
    "name",
    "type",
    "status",
    "domain",
    "nope",
];
const STRINGS: &[&str] = &[
    "",
    "jdoe",
    "true",
    "false",
    "yes",
    "ACTIVATED",
    "^jo",
    "(",
    "a|b",
    "[",
    "\\",
    "*",
    "1",
    "-1",
    "100",
    "101",
    "username",
    "-email",
    "username email",
    "a:b",
];

const OPS: &[&str] = &[
    "eq", "$eq", "ne", "$ne", "gt", "$gt", "gte", "$gte", "ge", "lt", "$lt", "lte", "$lte", "le", "in", "$in",
    "search", "$search", "regex", "$regex", "like", "",
];

/// `filter=field:op:value` parameters built from the catalogue's names and the operators, so
/// every (field type, operator) pair is reached, not only those that mutations stumble on.
fn structured_params(u: &mut Unstructured, cat: &[Field]) -> arbitrary::Result<Vec<String>> {
    let mut out = Vec::new();
    for _ in 0..u.int_in_range(1..=3)? {
        let name = if u.ratio(7, 8)? { u.choose(cat)?.0.to_string() } else { string(u, &["_id", "nope", ""])? };
        let op = u.choose(OPS)?;
        let mut value = string(u, STRINGS)?;
        for _ in 0..u.int_in_range(0..=2)? {
            value = format!("{value}|{}", string(u, STRINGS)?);
        }
        out.push(format!("{name}:{op}:{value}"));
    }
    Ok(out)
}

/// The same parameters in a query string, with the window and sort parameters around them.
fn structured_query(u: &mut Unstructured, params: &[String]) -> arbitrary::Result<String> {
    let mut q = form_urlencoded::Serializer::new(String::new());
    for p in params {
        q.append_pair("filter", p);
    }
    for k in ["limit", "skip", "sort", "fields"] {
        if u.arbitrary()? {
            q.append_pair(k, &string(u, STRINGS)?);
        }
    }
    Ok(q.finish())
}

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let lines: Vec<String> = text.lines().map(str::to_string).collect();
        for cat in CATALOGUES {
            for line in &lines {
                param(cat, line);
            }
            match parse_filter_params(cat, &lines) {
                Ok(Some(f)) => check_filter(cat, &f),
                Ok(None) => assert!(lines.iter().all(String::is_empty)),
                Err(e) => check_error(&e),
            }
        }
        query_string(text);
    }
    if let Ok(body) = serde_json::from_slice::<Value>(data) {
        search_body(&body);
    }
    let mut u = Unstructured::new(data);
    if let Ok(cat) = u.choose(&CATALOGUES) {
        if let Ok(params) = structured_params(&mut u, cat) {
            for p in &params {
                param(cat, p);
            }
            if let Ok(q) = structured_query(&mut u, &params) {
                query_string(&q);
            }
        }
    }
    if let Ok(body) = json(&mut u, &Vocabulary { keys: KEYS, strings: STRINGS }, 5) {
        search_body(&body);
        search_body(&serde_json::json!({ "filter": body }));
    }
});
