//! The module graph of `tether-server` and `tether-agent`, read from their `use` lines and
//! paths: no module reaches, directly or through others, back to itself, and the console
//! never calls the REST routes (both front ends call the operations layer).
//!
//! A module is a file (`routes/ad.rs` is `routes::ad`; `routes/mod.rs` is `routes`). An edge
//! is any `crate::`, `super::` or `self::` path naming another module, or a parent naming a
//! child as `child::`; comment lines and a file's `#[cfg(test)] mod` tail are not read.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

type Module = Vec<String>;

fn modules(src: &Path) -> BTreeMap<Module, String> {
    let mut out = BTreeMap::new();
    let mut dirs = vec![src.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
                continue;
            }
            if p.extension().is_none_or(|x| x != "rs") {
                continue;
            }
            let rel = p.strip_prefix(src).unwrap().with_extension("");
            let mut m: Module = rel.iter().map(|s| s.to_string_lossy().into_owned()).collect();
            if matches!(m.last().map(String::as_str), Some("mod" | "lib" | "main")) {
                m.pop();
            }
            let text = std::fs::read_to_string(&p).unwrap();
            // The test module at the end of a file (a lone `#[cfg(test)]` item is still read).
            let code = text.split("#[cfg(test)]\nmod ").next().unwrap_or_default();
            let code: Vec<&str> = code.lines().filter(|l| !l.trim_start().starts_with("//")).collect();
            out.insert(m, code.join("\n"));
        }
    }
    out
}

fn ident(s: &str) -> usize {
    s.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(s.len())
}

/// The paths written after `prefix::` at the start of `s` (`a::b`, `{a, b::{c, d}}`).
fn paths(s: &str, prefix: Module, out: &mut Vec<Module>) -> usize {
    let t = s.trim_start();
    let mut used = s.len() - t.len();
    if let Some(rest) = t.strip_prefix('{') {
        used += 1;
        let mut rest = rest;
        loop {
            let r = rest.trim_start();
            used += rest.len() - r.len();
            if let Some(after) = r.strip_prefix('}') {
                return used + 1 + (r.len() - 1 - after.len());
            }
            if let Some(after) = r.strip_prefix(',') {
                used += 1;
                rest = after;
                continue;
            }
            if r.is_empty() {
                return used;
            }
            let n = paths(r, prefix.clone(), out);
            if n == 0 {
                return used;
            }
            used += n;
            rest = &r[n..];
        }
    }
    let n = ident(t);
    if n == 0 {
        out.push(prefix);
        return used;
    }
    let mut next = prefix;
    next.push(t[..n].to_string());
    used += n;
    match t[n..].strip_prefix("::") {
        Some(rest) => used + 2 + paths(rest, next, out),
        None => {
            out.push(next);
            used
        }
    }
}

fn graph(src: &Path) -> BTreeMap<Module, BTreeSet<Module>> {
    let mods = modules(src);
    let mut edges = BTreeMap::new();
    for (m, code) in &mods {
        let mut found = Vec::new();
        let parent: Module = m[..m.len().saturating_sub(1)].to_vec();
        for (kw, base) in [("crate::", vec![]), ("super::", parent), ("self::", m.clone())] {
            for (i, _) in code.match_indices(kw) {
                let before = code[..i].chars().last();
                if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':') {
                    continue;
                }
                paths(&code[i + kw.len()..], base.clone(), &mut found);
            }
        }
        for child in mods.keys().filter(|k| k.len() == m.len() + 1 && k.starts_with(m)) {
            let name = format!("{}::", child.last().unwrap());
            let named = code.match_indices(&name).any(|(i, _)| {
                !code[..i].chars().last().is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
            });
            if named {
                found.push(child.clone());
            }
        }
        let mut targets = BTreeSet::new();
        for p in found {
            // The longest prefix that is a module; the crate root is not a module of its own.
            if let Some(t) = (1..=p.len()).rev().map(|k| p[..k].to_vec()).find(|k| mods.contains_key(k)) {
                if &t != m {
                    targets.insert(t);
                }
            }
        }
        edges.insert(m.clone(), targets);
    }
    edges
}

/// A cycle through `start`, if any (depth-first search).
fn cycle_from(edges: &BTreeMap<Module, BTreeSet<Module>>, start: &Module) -> Option<Vec<Module>> {
    let mut stack = vec![(start.clone(), vec![start.clone()])];
    let mut seen = BTreeSet::new();
    while let Some((m, path)) = stack.pop() {
        for n in edges.get(&m).into_iter().flatten() {
            if n == start {
                let mut p = path.clone();
                p.push(n.clone());
                return Some(p);
            }
            if seen.insert(n.clone()) {
                let mut p = path.clone();
                p.push(n.clone());
                stack.push((n.clone(), p));
            }
        }
    }
    None
}

fn name(m: &Module) -> String {
    if m.is_empty() {
        "crate".into()
    } else {
        m.join("::")
    }
}

fn assert_acyclic(krate: &str) -> BTreeMap<Module, BTreeSet<Module>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(krate).join("src");
    let edges = graph(&src);
    assert!(edges.len() > 5, "{krate}: the modules were read ({})", edges.len());
    for m in edges.keys().filter(|m| !m.is_empty()) {
        if let Some(c) = cycle_from(&edges, m) {
            panic!("{krate}: import circle {}", c.iter().map(name).collect::<Vec<_>>().join(" → "));
        }
    }
    edges
}

#[test]
fn the_server_has_no_import_circle_and_the_console_calls_no_route() {
    let edges = assert_acyclic("tether-server");
    for (m, targets) in &edges {
        let front_end = m.first().is_some_and(|f| f == "console" || f == "ldap");
        for t in targets {
            if front_end {
                assert!(t.first().is_none_or(|f| f != "routes"), "{} uses {}: call crate::ops", name(m), name(t));
            }
            // Below the transports, nothing knows them.
            if m.first().is_some_and(|f| f == "ops" || f == "adi") {
                assert!(
                    t.first().is_none_or(|f| f != "routes" && f != "console" && f != "ldap"),
                    "{} uses the transport {}",
                    name(m),
                    name(t)
                );
            }
        }
    }
    // The check sees the edges it is about.
    let admin_ad: Module = vec!["console".into(), "admin_ad".into()];
    assert!(edges[&admin_ad].contains(&vec!["ops".to_string(), "plans".to_string()]), "{:?}", edges[&admin_ad]);
    let ldap_conn: Module = vec!["ldap".into(), "conn".into()];
    assert!(edges[&ldap_conn].contains(&vec!["ops".to_string(), "ldap".to_string()]), "{:?}", edges[&ldap_conn]);
}

#[test]
fn the_agent_has_no_import_circle() {
    assert_acyclic("tether-agent");
}

#[test]
fn the_graph_reader_finds_grouped_paths_and_circles() {
    let mut out = Vec::new();
    paths("{a::{b, c}, d};", vec![], &mut out);
    assert_eq!(out, [vec!["a", "b"], vec!["a", "c"], vec!["d"]]);
    let m = |s: &str| -> Module { s.split("::").map(str::to_string).collect() };
    let edges = BTreeMap::from([
        (m("a"), BTreeSet::from([m("b")])),
        (m("b"), BTreeSet::from([m("c")])),
        (m("c"), BTreeSet::from([m("a")])),
        (m("d"), BTreeSet::from([m("a")])),
    ]);
    assert_eq!(cycle_from(&edges, &m("a")).map(|c| c.len()), Some(4));
    assert_eq!(cycle_from(&edges, &m("d")), None);
}

/// Each crate's integration tests are modules of one binary (`tests/main.rs`, with
/// `autotests = false`): a file of `tests/` that `main.rs` does not name would never be
/// compiled nor run, silently.
#[test]
fn every_integration_test_file_is_a_module_of_its_crates_test_binary() {
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut checked = 0;
    for e in std::fs::read_dir(&crates).unwrap() {
        let dir = e.unwrap().path();
        let (tests, manifest) = (dir.join("tests"), dir.join("Cargo.toml"));
        if !tests.is_dir() || !manifest.is_file() {
            continue;
        }
        let files: BTreeSet<String> = std::fs::read_dir(&tests)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "rs"))
            .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
            .collect();
        if !files.contains("main") {
            // Cargo's default: every file its own binary.
            let toml = std::fs::read_to_string(&manifest).unwrap();
            assert!(!toml.contains("autotests = false"), "{}: autotests off without tests/main.rs", dir.display());
            continue;
        }
        let main = std::fs::read_to_string(tests.join("main.rs")).unwrap();
        let named: BTreeSet<String> =
            main.lines().filter_map(|l| l.trim().strip_prefix("mod ")?.strip_suffix(';')).map(str::to_owned).collect();
        let unnamed: Vec<&String> = files.iter().filter(|f| *f != "main" && !named.contains(*f)).collect();
        assert!(unnamed.is_empty(), "{}: tests/main.rs does not name {unnamed:?}", dir.display());
        checked += 1;
    }
    assert!(checked >= 5, "only {checked} crates with tests/main.rs found under {}", crates.display());
}
