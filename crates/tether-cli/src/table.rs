//! Plain text tables for humans.

use serde_json::Value;

fn cell(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Renders `rows` as aligned columns named `cols` (`a.b` names a nested field).
pub fn render(rows: &[Value], cols: &[&str]) -> String {
    let field = |r: &Value, c: &str| r.pointer(&format!("/{}", c.replace('.', "/"))).map(cell).unwrap_or("-".into());
    let grid: Vec<Vec<String>> = rows.iter().map(|r| cols.iter().map(|c| field(r, c)).collect()).collect();
    let widths: Vec<usize> = cols
        .iter()
        .enumerate()
        .map(|(i, c)| grid.iter().map(|r| r[i].chars().count()).chain([c.len()]).max().unwrap_or(0))
        .collect();
    let line = |cells: Vec<String>| {
        let parts: Vec<String> = cells.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        parts.join("  ").trim_end().to_string() + "\n"
    };
    let mut out = line(cols.iter().map(|c| c.to_uppercase()).collect());
    for r in grid {
        out.push_str(&line(r));
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn aligns_columns() {
        let rows = [serde_json::json!({"a": "x", "b": true}), serde_json::json!({"a": "longer", "b": null})];
        assert_eq!(super::render(&rows, &["a", "b"]), "A       B\nx       true\nlonger  -\n");
        let nested = [serde_json::json!({"ad": {"ok": false}}), serde_json::json!({})];
        assert_eq!(super::render(&nested, &["ad.ok"]), "AD.OK\nfalse\n-\n");
    }
}
