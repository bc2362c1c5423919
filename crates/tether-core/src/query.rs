//! List queries: the filter languages of the JumpCloud API parsed into one small AST.
//!
//! v1 lists take `filter=field:$op:value`, v2 lists `filter=field:op:value`, and
//! `POST /api/search/systemusers` a JSON body. All three become a [`Filter`] over a fixed
//! catalogue of fields, so storage translates one AST and an unknown field is caught here,
//! before any SQL is written.

use serde_json::Value;

use crate::CoreError;

/// The type of a queryable field, which decides how a textual value is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldType {
    Text,
    Bool,
}

/// A queryable field: the name clients use and its type.
pub type Field = (&'static str, FieldType);

use FieldType::{Bool, Text};

/// Fields of users that filters, searches and sorts may name.
pub const USER_FIELDS: &[Field] = &[
    ("id", Text),
    ("username", Text),
    ("email", Text),
    ("firstname", Text),
    ("middlename", Text),
    ("lastname", Text),
    ("displayname", Text),
    ("description", Text),
    ("jobTitle", Text),
    ("department", Text),
    ("company", Text),
    ("location", Text),
    ("employeeType", Text),
    ("employeeIdentifier", Text),
    ("manager", Text),
    ("state", Text),
    ("suspended", Bool),
    ("activated", Bool),
    ("account_locked", Bool),
    ("password_expired", Bool),
    ("password_never_expires", Bool),
    ("password_expiration_date", Text),
    ("externally_managed", Bool),
    ("external_dn", Text),
    ("external_source_type", Text),
    ("passwordStatus", Text),
    ("sudo", Bool),
    ("ldap_binding_user", Bool),
    ("created", Text),
];

/// Fields of user groups.
pub const GROUP_FIELDS: &[Field] = &[("id", Text), ("name", Text), ("description", Text), ("type", Text)];

/// Fields of notifications.
pub const NOTIFICATION_FIELDS: &[Field] =
    &[("id", Text), ("template", Text), ("recipient", Text), ("status", Text), ("created", Text)];

/// Fields of history entries.
pub const HISTORY_FIELDS: &[Field] = &[("id", Text), ("objectId", Text), ("action", Text), ("at", Text)];

/// Fields of RADIUS servers.
pub const RADIUS_FIELDS: &[Field] = &[("id", Text), ("name", Text), ("networkSourceIp", Text), ("mfa", Text)];

/// Fields of AD domains.
pub const DOMAIN_FIELDS: &[Field] = &[("id", Text), ("domain", Text), ("useCase", Text), ("delegationState", Text)];

/// A scalar compared against a field.
#[derive(Clone, Debug, PartialEq)]
pub enum Scalar {
    Text(String),
    Bool(bool),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
    /// Case-insensitive substring.
    Search,
    /// Case-insensitive regular expression.
    Regex,
}

/// A filter over one object type's fields. `field` is always a catalogue name.
#[derive(Clone, Debug, PartialEq)]
pub enum Filter {
    Cmp { field: &'static str, op: Op, value: Scalar },
    In { field: &'static str, values: Vec<Scalar> },
    And(Vec<Filter>),
    Or(Vec<Filter>),
}

/// A list request: filter, order and window.
#[derive(Clone, Debug, PartialEq)]
pub struct ListQuery {
    pub filter: Option<Filter>,
    /// Field and descending flag.
    pub sort: Option<(&'static str, bool)>,
    pub limit: usize,
    pub skip: usize,
}

impl Default for ListQuery {
    fn default() -> Self {
        ListQuery { filter: None, sort: None, limit: 10, skip: 0 }
    }
}

/// Finds `name` in the catalogue (`_id` is an alias of `id`).
pub fn field(catalogue: &[Field], name: &str) -> Result<Field, CoreError> {
    let name = if name == "_id" { "id" } else { name };
    catalogue.iter().find(|(n, _)| *n == name).copied().ok_or_else(|| CoreError::UnknownField(name.to_string()))
}

fn scalar_from_text(f: Field, raw: &str) -> Result<Scalar, CoreError> {
    match f.1 {
        Text => Ok(Scalar::Text(raw.to_string())),
        Bool => match raw {
            "true" => Ok(Scalar::Bool(true)),
            "false" => Ok(Scalar::Bool(false)),
            _ => Err(CoreError::InvalidFilter(format!("`{}` takes true or false, not `{raw}`", f.0))),
        },
    }
}

fn scalar_from_json(f: Field, v: &Value) -> Result<Scalar, CoreError> {
    match (f.1, v) {
        (Text, Value::String(s)) => Ok(Scalar::Text(s.clone())),
        (Text, Value::Number(n)) => Ok(Scalar::Text(n.to_string())),
        (Bool, Value::Bool(b)) => Ok(Scalar::Bool(*b)),
        (Bool, Value::String(s)) => scalar_from_text(f, s),
        _ => Err(CoreError::InvalidFilter(format!("unsupported value {v} for `{}`", f.0))),
    }
}

fn check_regex(p: &str) -> Result<(), CoreError> {
    regex::Regex::new(p).map(|_| ()).map_err(|e| CoreError::InvalidFilter(format!("bad regular expression: {e}")))
}

/// Parses one `filter` query parameter. v1 spells operators with `$` (`$eq`), v2 without
/// (`eq`, and `in` with `|`-separated values, and `search`); both are accepted by both.
pub fn parse_filter_param(catalogue: &[Field], s: &str) -> Result<Filter, CoreError> {
    let mut parts = s.splitn(3, ':');
    let (name, op, raw) = match (parts.next(), parts.next(), parts.next()) {
        (Some(n), Some(o), Some(v)) => (n, o, v),
        _ => return Err(CoreError::InvalidFilter(format!("`{s}`: expected field:operator:value"))),
    };
    let f = field(catalogue, name)?;
    let op = match op.trim_start_matches('$') {
        "eq" => Op::Eq,
        "ne" => Op::Ne,
        "gt" => Op::Gt,
        "gte" | "ge" => Op::Ge,
        "lt" => Op::Lt,
        "lte" | "le" => Op::Le,
        "search" => Op::Search,
        "regex" => Op::Regex,
        "in" => {
            let values = raw.split('|').map(|v| scalar_from_text(f, v)).collect::<Result<_, _>>()?;
            return Ok(Filter::In { field: f.0, values });
        }
        other => return Err(CoreError::InvalidFilter(format!("unknown operator `{other}`"))),
    };
    text_only(f, op)?;
    if op == Op::Regex {
        check_regex(raw)?;
    }
    Ok(Filter::Cmp { field: f.0, op, value: scalar_from_text(f, raw)? })
}

/// Substring and pattern matches apply to text fields only (a boolean field is `true` or
/// `false`: compare it with `eq`). Found by fuzzing: a regex on a boolean field reached the
/// store as a boolean pattern.
fn text_only(f: Field, op: Op) -> Result<(), CoreError> {
    match (op, f.1) {
        (Op::Regex | Op::Search, Bool) => Err(CoreError::InvalidFilter(format!(
            "`{}` is true or false: `{}` applies to text fields; use eq",
            f.0,
            if op == Op::Regex { "regex" } else { "search" }
        ))),
        _ => Ok(()),
    }
}

/// Parses all `filter` parameters of a request; several are combined with AND.
pub fn parse_filter_params(catalogue: &[Field], params: &[String]) -> Result<Option<Filter>, CoreError> {
    let mut all = params
        .iter()
        .filter(|p| !p.is_empty())
        .map(|p| parse_filter_param(catalogue, p))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(match all.len() {
        0 => None,
        1 => all.pop(),
        _ => Some(Filter::And(all)),
    })
}

/// Parses `sort=field` / `sort=-field`.
pub fn parse_sort(catalogue: &[Field], s: &str) -> Result<Option<(&'static str, bool)>, CoreError> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(None);
    }
    let (name, desc) = match s.strip_prefix('-') {
        Some(n) => (n, true),
        None => (s, false),
    };
    Ok(Some((field(catalogue, name)?.0, desc)))
}

/// Parses the `filter` of a search body: an array of objects (AND), or an object with
/// `and`/`or` arrays, or an object of `field: value` pairs where value is a scalar
/// (equality) or an operator object such as `{"$regex": "^jo"}`.
pub fn parse_search_filter(catalogue: &[Field], v: &Value) -> Result<Option<Filter>, CoreError> {
    fn node(catalogue: &[Field], v: &Value) -> Result<Filter, CoreError> {
        match v {
            Value::Array(items) => Ok(Filter::And(items.iter().map(|i| node(catalogue, i)).collect::<Result<_, _>>()?)),
            Value::Object(map) => {
                let mut parts = Vec::new();
                for (k, val) in map {
                    match k.as_str() {
                        "and" | "$and" | "or" | "$or" => {
                            let Value::Array(items) = val else {
                                return Err(CoreError::InvalidFilter(format!("`{k}` takes an array")));
                            };
                            let sub = items.iter().map(|i| node(catalogue, i)).collect::<Result<_, _>>()?;
                            parts.push(if k.ends_with("and") { Filter::And(sub) } else { Filter::Or(sub) });
                        }
                        name => parts.push(field_condition(catalogue, name, val)?),
                    }
                }
                Ok(if parts.len() == 1 { parts.pop().expect("one part") } else { Filter::And(parts) })
            }
            _ => Err(CoreError::InvalidFilter("a filter is an object or an array of objects".into())),
        }
    }
    fn field_condition(catalogue: &[Field], name: &str, val: &Value) -> Result<Filter, CoreError> {
        let f = field(catalogue, name)?;
        let Value::Object(ops) = val else {
            return Ok(Filter::Cmp { field: f.0, op: Op::Eq, value: scalar_from_json(f, val)? });
        };
        let mut parts = Vec::new();
        for (op, arg) in ops {
            let op = match op.as_str() {
                "$eq" => Op::Eq,
                "$ne" => Op::Ne,
                "$gt" => Op::Gt,
                "$gte" => Op::Ge,
                "$lt" => Op::Lt,
                "$lte" => Op::Le,
                "$regex" => Op::Regex,
                "$in" => {
                    let Value::Array(items) = arg else {
                        return Err(CoreError::InvalidFilter("`$in` takes an array".into()));
                    };
                    let values = items.iter().map(|i| scalar_from_json(f, i)).collect::<Result<_, _>>()?;
                    parts.push(Filter::In { field: f.0, values });
                    continue;
                }
                other => return Err(CoreError::InvalidFilter(format!("unknown operator `{other}`"))),
            };
            text_only(f, op)?;
            if op == Op::Regex {
                let Value::String(p) = arg else {
                    return Err(CoreError::InvalidFilter("`$regex` takes a string".into()));
                };
                check_regex(p)?;
                parts.push(Filter::Cmp { field: f.0, op, value: Scalar::Text(p.clone()) });
            } else {
                parts.push(Filter::Cmp { field: f.0, op, value: scalar_from_json(f, arg)? });
            }
        }
        Ok(if parts.len() == 1 { parts.pop().expect("one part") } else { Filter::And(parts) })
    }
    match v {
        Value::Null => Ok(None),
        Value::Array(a) if a.is_empty() => Ok(None),
        _ => node(catalogue, v).map(Some),
    }
}

/// `searchFilter: {"searchTerm": "jo", "fields": ["username", "email"]}`: a substring
/// match on any of the fields.
pub fn parse_search_term(catalogue: &[Field], v: &Value) -> Result<Option<Filter>, CoreError> {
    let Some(term) = v.get("searchTerm").and_then(Value::as_str) else { return Ok(None) };
    let names: Vec<&str> = match v.get("fields") {
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        _ => vec!["username", "email", "firstname", "lastname"],
    };
    let ors = names
        .iter()
        .map(|n| {
            let f = field(catalogue, n)?;
            text_only(f, Op::Search)?;
            Ok(Filter::Cmp { field: f.0, op: Op::Search, value: Scalar::Text(term.to_string()) })
        })
        .collect::<Result<Vec<_>, CoreError>>()?;
    Ok(Some(Filter::Or(ors)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pattern_operators_refuse_boolean_fields() {
        // (parameter filter, JSON search filter) on a boolean field: both refused, never
        // passed on as a boolean pattern (a fuzzing find that crashed the request).
        for name in ["suspended", "activated", "account_locked", "externally_managed", "sudo"] {
            for op in ["regex", "$regex", "search"] {
                let e = parse_filter_param(USER_FIELDS, &format!("{name}:{op}:true")).unwrap_err();
                assert!(e.to_string().contains("applies to text fields"), "{name}:{op}: {e}");
            }
            let e = parse_search_filter(USER_FIELDS, &json!({name: {"$regex": "x"}})).unwrap_err();
            assert!(e.to_string().contains("applies to text fields"), "{name}: {e}");
            let e = parse_search_term(USER_FIELDS, &json!({"searchTerm": "t", "fields": [name]})).unwrap_err();
            assert!(e.to_string().contains("applies to text fields"), "{name}: {e}");
        }
        assert!(parse_filter_param(USER_FIELDS, "suspended:eq:true").is_ok());
        assert!(parse_filter_param(USER_FIELDS, "username:regex:^jo").is_ok());
    }

    #[test]
    fn filter_params_table() {
        // (input, expected ok?, expected filter when ok)
        let t = |s: &str| Scalar::Text(s.into());
        let rows: Vec<(&str, Result<Filter, &str>)> = vec![
            ("username:$eq:jdoe", Ok(Filter::Cmp { field: "username", op: Op::Eq, value: t("jdoe") })),
            ("username:eq:jdoe", Ok(Filter::Cmp { field: "username", op: Op::Eq, value: t("jdoe") })),
            ("email:$ne:a:b@c", Ok(Filter::Cmp { field: "email", op: Op::Ne, value: t("a:b@c") })),
            ("suspended:$eq:true", Ok(Filter::Cmp { field: "suspended", op: Op::Eq, value: Scalar::Bool(true) })),
            ("created:$gte:2026", Ok(Filter::Cmp { field: "created", op: Op::Ge, value: t("2026") })),
            ("created:ge:2026", Ok(Filter::Cmp { field: "created", op: Op::Ge, value: t("2026") })),
            ("state:in:STAGED|SUSPENDED", Ok(Filter::In { field: "state", values: vec![t("STAGED"), t("SUSPENDED")] })),
            ("username:search:jo", Ok(Filter::Cmp { field: "username", op: Op::Search, value: t("jo") })),
            ("_id:$eq:abc", Ok(Filter::Cmp { field: "id", op: Op::Eq, value: t("abc") })),
            ("nosuchfield:$eq:x", Err("unknown field")),
            ("password:$eq:x", Err("unknown field")),
            ("username", Err("expected field:operator:value")),
            ("username:$like:x", Err("unknown operator")),
            ("suspended:$eq:yes", Err("true or false")),
        ];
        for (input, want) in rows {
            let got = parse_filter_param(USER_FIELDS, input);
            match (got, want) {
                (Ok(g), Ok(w)) => assert_eq!(g, w, "{input}"),
                (Err(e), Err(w)) => assert!(e.to_string().contains(w), "{input}: {e}"),
                (g, w) => panic!("{input}: got {g:?}, want {w:?}"),
            }
        }
    }

    #[test]
    fn search_body_shapes() {
        let f = parse_search_filter(USER_FIELDS, &json!([{"firstname": "Ann"}, {"suspended": false}])).unwrap();
        assert!(matches!(f, Some(Filter::And(ref v)) if v.len() == 2));
        let f = parse_search_filter(USER_FIELDS, &json!({"or": [{"username": "a"}, {"username": "b"}]})).unwrap();
        assert!(matches!(f, Some(Filter::Or(ref v)) if v.len() == 2));
        let f = parse_search_filter(USER_FIELDS, &json!({"username": {"$regex": "^jo"}})).unwrap();
        assert_eq!(f, Some(Filter::Cmp { field: "username", op: Op::Regex, value: Scalar::Text("^jo".into()) }));
        assert!(matches!(parse_search_filter(USER_FIELDS, &json!({"nope": 1})), Err(CoreError::UnknownField(_))));
        assert!(matches!(
            parse_search_filter(USER_FIELDS, &json!({"username": {"$regex": "("}})),
            Err(CoreError::InvalidFilter(_))
        ));
        assert_eq!(parse_search_filter(USER_FIELDS, &json!([])).unwrap(), None);
    }

    #[test]
    fn sort_parsing() {
        assert_eq!(parse_sort(USER_FIELDS, "-username").unwrap(), Some(("username", true)));
        assert_eq!(parse_sort(USER_FIELDS, "email").unwrap(), Some(("email", false)));
        assert!(parse_sort(USER_FIELDS, "bogus").is_err());
    }
}
