//! Translation of a core [`Filter`] into an SQLite `WHERE` clause over JSON documents.
//! Field names come only from the core's static catalogues, so they are safe to inline;
//! every value is a bound parameter.

use tether_core::query::{Filter, Op, Scalar};

/// A bound parameter.
#[derive(Clone, Debug)]
pub enum Bind {
    Text(String),
    Int(i64),
}

/// The SQL expression reading `field` from a document row.
pub fn column(field: &str) -> String {
    if field == "id" {
        "id".to_string()
    } else {
        debug_assert!(field.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
        format!("json_extract(doc, '$.{field}')")
    }
}

fn bind(v: &Scalar) -> Bind {
    match v {
        Scalar::Text(s) => Bind::Text(s.clone()),
        Scalar::Bool(b) => Bind::Int(i64::from(*b)),
    }
}

/// Appends the SQL of `f` to `sql` and its parameters to `binds`.
pub fn to_sql(f: &Filter, sql: &mut String, binds: &mut Vec<Bind>) {
    match f {
        Filter::Cmp { field, op, value } => {
            let col = column(field);
            let (expr, v) = match op {
                Op::Eq => (format!("{col} = ?"), bind(value)),
                Op::Ne => (format!("{col} IS NOT ?"), bind(value)),
                Op::Gt => (format!("{col} > ?"), bind(value)),
                Op::Ge => (format!("{col} >= ?"), bind(value)),
                Op::Lt => (format!("{col} < ?"), bind(value)),
                Op::Le => (format!("{col} <= ?"), bind(value)),
                Op::Search => (format!("instr(lower(coalesce({col}, '')), lower(?)) > 0"), bind(value)),
                Op::Regex => {
                    let Scalar::Text(p) = value else { unreachable!("regex values are text") };
                    (format!("coalesce({col}, '') REGEXP ?"), Bind::Text(format!("(?i){p}")))
                }
            };
            sql.push_str(&expr);
            binds.push(v);
        }
        Filter::In { field, values } => {
            if values.is_empty() {
                sql.push('0');
                return;
            }
            sql.push_str(&column(field));
            sql.push_str(" IN (");
            sql.push_str(&vec!["?"; values.len()].join(", "));
            sql.push(')');
            binds.extend(values.iter().map(bind));
        }
        Filter::And(parts) | Filter::Or(parts) => {
            if parts.is_empty() {
                sql.push_str(if matches!(f, Filter::And(_)) { "1" } else { "0" });
                return;
            }
            let joiner = if matches!(f, Filter::And(_)) { " AND " } else { " OR " };
            sql.push('(');
            for (i, p) in parts.iter().enumerate() {
                if i > 0 {
                    sql.push_str(joiner);
                }
                to_sql(p, sql, binds);
            }
            sql.push(')');
        }
    }
}
