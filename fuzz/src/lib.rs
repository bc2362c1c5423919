//! Helpers shared by the fuzz targets: structured JSON from the fuzzer's bytes, a tiny
//! executor for the server's extractors (their futures never wait on I/O), and renderers
//! that turn a parsed filter back into the syntaxes clients write, for round-trip checks.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use arbitrary::{Result, Unstructured};
use serde_json::{Map, Number, Value};
use tether_core::query::{Filter, Op, Scalar};

/// Runs a future that completes without waiting on anything outside it (an extractor reading
/// an in-memory body). Panics if it would block: that would itself be a finding.
pub fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..1_000 {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
    panic!("an in-memory extractor did not complete");
}

/// Words the JSON generator prefers for keys and strings, so that it reaches the parsers'
/// branches (field names, operators) rather than only their "unknown key" errors.
pub struct Vocabulary<'a> {
    pub keys: &'a [&'a str],
    pub strings: &'a [&'a str],
}

/// A JSON value built from the fuzzer's bytes, at most `depth` levels deep.
pub fn json(u: &mut Unstructured, voc: &Vocabulary, depth: u32) -> Result<Value> {
    let kinds = if depth == 0 { 5 } else { 7 };
    Ok(match u.choose_index(kinds)? {
        0 => Value::Null,
        1 => Value::Bool(u.arbitrary()?),
        2 => Value::Number(match u.choose_index(3)? {
            0 => Number::from(u.arbitrary::<i64>()?),
            1 => Number::from(u.arbitrary::<u64>()?),
            _ => Number::from_f64(u.arbitrary()?).unwrap_or_else(|| Number::from(0)),
        }),
        3 | 4 => Value::String(string(u, voc.strings)?),
        5 => {
            let n = u.int_in_range(0..=4)?;
            Value::Array((0..n).map(|_| json(u, voc, depth - 1)).collect::<Result<_>>()?)
        }
        _ => {
            let n = u.int_in_range(0..=4)?;
            let mut m = Map::new();
            for _ in 0..n {
                m.insert(string(u, voc.keys)?, json(u, voc, depth - 1)?);
            }
            Value::Object(m)
        }
    })
}

/// A word of `words` (most of the time) or any string.
pub fn string(u: &mut Unstructured, words: &[&str]) -> Result<String> {
    if !words.is_empty() && u.ratio(7, 8)? {
        Ok(u.choose(words)?.to_string())
    } else {
        u.arbitrary()
    }
}

fn op_name(op: Op) -> &'static str {
    match op {
        Op::Eq => "eq",
        Op::Ne => "ne",
        Op::Gt => "gt",
        Op::Ge => "gte",
        Op::Lt => "lt",
        Op::Le => "lte",
        Op::Search => "search",
        Op::Regex => "regex",
    }
}

fn scalar_text(s: &Scalar) -> String {
    match s {
        Scalar::Text(t) => t.clone(),
        Scalar::Bool(b) => b.to_string(),
    }
}

fn scalar_json(s: &Scalar) -> Value {
    match s {
        Scalar::Text(t) => Value::String(t.clone()),
        Scalar::Bool(b) => Value::Bool(*b),
    }
}

/// The `filter=` query parameter (v2 spelling, or v1 with `$` operators) of a single
/// condition; `None` for what that syntax cannot say (AND/OR).
pub fn render_param(f: &Filter, v1: bool) -> Option<String> {
    let dollar = if v1 { "$" } else { "" };
    match f {
        Filter::Cmp { field, op, value } => Some(format!("{field}:{dollar}{}:{}", op_name(*op), scalar_text(value))),
        Filter::In { field, values } => {
            Some(format!("{field}:{dollar}in:{}", values.iter().map(scalar_text).collect::<Vec<_>>().join("|")))
        }
        Filter::And(_) | Filter::Or(_) => None,
    }
}

/// The JSON `filter` of `POST /api/search/systemusers`; `None` for what it cannot say (the
/// substring search, which only `searchFilter` makes).
pub fn render_search(f: &Filter) -> Option<Value> {
    let one = |k: &str, v: Value| Value::Object(Map::from_iter([(k.to_string(), v)]));
    Some(match f {
        Filter::Cmp { op: Op::Search, .. } => return None,
        Filter::Cmp { field, op, value } => one(field, one(&format!("${}", op_name(*op)), scalar_json(value))),
        Filter::In { field, values } => one(field, one("$in", Value::Array(values.iter().map(scalar_json).collect()))),
        Filter::And(parts) => one("and", Value::Array(parts.iter().map(render_search).collect::<Option<_>>()?)),
        Filter::Or(parts) => one("or", Value::Array(parts.iter().map(render_search).collect::<Option<_>>()?)),
    })
}

/// Every field a filter names.
pub fn fields_of(f: &Filter, out: &mut Vec<&'static str>) {
    match f {
        Filter::Cmp { field, .. } | Filter::In { field, .. } => out.push(field),
        Filter::And(parts) | Filter::Or(parts) => parts.iter().for_each(|p| fields_of(p, out)),
    }
}

/// Edits a realistic document: up to `max` times, in an object at one of `sections` (dotted
/// paths; a number indexes an array, "" is the top), sets a key to a generated value or
/// removes it. Reaches what a parser does after the shape is right far sooner than bytes do.
pub fn edit(u: &mut Unstructured, doc: &mut Value, sections: &[&str], voc: &Vocabulary, max: u32) -> Result<()> {
    for _ in 0..u.int_in_range(1..=max)? {
        let section = *u.choose(sections)?;
        let mut obj = &mut *doc;
        for part in section.split('.').filter(|p| !p.is_empty()) {
            if let Ok(i) = part.parse::<usize>() {
                if obj.get(i).is_some() {
                    obj = &mut obj[i];
                    continue;
                }
            }
            if !obj.is_object() {
                *obj = Value::Object(Map::new());
            }
            let map = obj.as_object_mut().expect("an object");
            obj = map.entry(part).or_insert_with(|| Value::Object(Map::new()));
        }
        let Some(map) = obj.as_object_mut() else { continue };
        let key = string(u, voc.keys)?;
        if u.ratio(1, 6)? {
            map.remove(&key);
        } else {
            map.insert(key, json(u, voc, 2)?);
        }
    }
    Ok(())
}
