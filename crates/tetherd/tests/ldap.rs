//! The LDAP front end, driven by OpenLDAP's own clients (`ldapwhoami`, `ldapsearch` from
//! Debian's ldap-utils) against an in-process tetherd: TLS before any bind, who is in LDAP,
//! who may read what, paging, and refusals that take effect at once.

use serde_json::{json, Value};
use tether_testkit::{pki, TestServer};

/// Runs an OpenLDAP client trusting the test CA only; (exit code, stdout, stderr).
async fn client(tool: &str, args: &[&str]) -> (i32, String, String) {
    let out = tether_testkit::ldap_tool(tool)
        .args(args)
        .output()
        .await
        .unwrap_or_else(|e| panic!("{tool} (Debian's ldap-utils) cannot run: {e}"));
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code().unwrap_or(-1), text(&out.stdout), text(&out.stderr))
}

fn dn(user: &str) -> String {
    format!("uid={user},ou=Users,o=tether")
}

/// `ldapwhoami` as `user` over `url` (StartTLS with `-ZZ` when `starttls`).
async fn whoami(url: &str, starttls: bool, user: &str, password: &str) -> (i32, String, String) {
    let d = dn(user);
    let mut args = vec!["-x", "-H", url, "-D", &d, "-w", password];
    if starttls {
        args.push("-ZZ");
    }
    client("ldapwhoami", &args).await
}

/// `ldapsearch -ZZ` as `user` under `o=tether`: the DNs found, and the whole LDIF.
/// `opts` are ldapsearch options (they replace `-b o=tether` when they give `-b`), `attrs`
/// the attributes asked for.
async fn search(s: &TestServer, user: &str, opts: &[&str], filter: &str, attrs: &[&str]) -> (i32, Vec<String>, String) {
    let d = dn(user);
    let mut args = vec!["-x", "-ZZ", "-LLL", "-H", &s.ldap, "-D", &d, "-w", "Ldap-Passw0rd!"];
    if !opts.contains(&"-b") {
        args.extend_from_slice(&["-b", "o=tether"]);
    }
    args.extend_from_slice(opts);
    args.push(filter);
    args.extend_from_slice(attrs);
    let (code, out, err) = client("ldapsearch", &args).await;
    // LDIF folds long lines with a leading space.
    let ldif = out.replace("\n ", "");
    let dns = ldif.lines().filter_map(|l| l.strip_prefix("dn: ")).map(str::to_string).collect();
    (code, dns, format!("{ldif}{err}"))
}

async fn user(s: &TestServer, name: &str, more: Value) -> String {
    let mut body = json!({"username": name, "email": format!("{name}@example.test"), "firstname": "L",
                          "lastname": name, "password": "Ldap-Passw0rd!"});
    body.as_object_mut().unwrap().extend(more.as_object().cloned().unwrap_or_default());
    s.user(body).await
}

async fn ldap_server(s: &TestServer) -> String {
    let r = s.call("GET", "/api/v2/ldapservers", None).await;
    assert_eq!((r.status.as_u16(), r.total()), (200, Some(1)), "{:?}", r.body);
    r.body[0]["id"].as_str().unwrap().to_string()
}

async fn associate(s: &TestServer, server: &str, kind: &str, id: &str, op: &str) {
    let path = format!("/api/v2/ldapservers/{server}/associations");
    let r = s.call("POST", &path, Some(json!({"op": op, "type": kind, "id": id}))).await;
    assert_eq!(r.status, 204, "{:?}", r.body);
}

#[tokio::test]
async fn binds_need_tls_and_users_see_what_ldap_holds() {
    let s = TestServer::start().await;
    let server = ldap_server(&s).await;
    // ann: in LDAP directly, may search. bob: through the group ops. carl: not in LDAP.
    let ann = user(&s, "ann", json!({"ldap_binding_user": true})).await;
    let bob = user(&s, "bob", json!({})).await;
    user(&s, "carl", json!({})).await;
    let ops = s.create("/api/v2/usergroups", json!({"name": "ops"})).await;
    s.add_member(&ops, &bob).await;
    associate(&s, &server, "user", &ann, "add").await;
    associate(&s, &server, "user_group", &ops, "add").await;

    // A bind in the clear is refused before the password is looked at.
    let (code, _, err) = whoami(&s.ldap, false, "ann", "Ldap-Passw0rd!").await;
    assert!(code != 0 && err.contains("Confidentiality required"), "{code} {err}");
    // StartTLS, and LDAPS.
    let (code, out, err) = whoami(&s.ldap, true, "ann", "Ldap-Passw0rd!").await;
    assert_eq!((code, out.trim()), (0, "dn:uid=ann,ou=Users,o=tether"), "{err}");
    let (code, out, err) = whoami(&s.ldaps, false, "bob", "Ldap-Passw0rd!").await;
    assert_eq!((code, out.trim()), (0, "dn:uid=bob,ou=Users,o=tether"), "{err}");
    // Wrong password, a user not in LDAP, a name outside the tree: the same answer.
    for (who, pw) in [("ann", "wrong-password"), ("carl", "Ldap-Passw0rd!"), ("nobody", "Ldap-Passw0rd!")] {
        let (code, _, err) = whoami(&s.ldaps, false, who, pw).await;
        assert!(code == 49 && err.contains("Invalid credentials"), "{who}: {code} {err}");
    }

    // The root DSE, anonymously; nothing else.
    let (code, out, err) = client("ldapsearch", &["-x", "-LLL", "-H", &s.ldap, "-b", "", "-s", "base", "+", "*"]).await;
    assert!(code == 0 && out.contains("namingContexts: o=tether"), "{code} {out} {err}");
    let (code, _, err) = client("ldapsearch", &["-x", "-LLL", "-H", &s.ldap, "-b", "o=tether", "(uid=*)"]).await;
    assert_eq!(code, 50, "anonymous: {err}");

    // A binding user reads everything in LDAP: users with their groups, the group with its
    // members in LDAP, not carl.
    let (code, dns, ldif) = search(&s, "ann", &[], "(objectClass=*)", &[]).await;
    assert_eq!(code, 0, "{ldif}");
    for want in
        ["o=tether", "ou=Users,o=tether", "ou=Groups,o=tether", &dn("ann"), &dn("bob"), "cn=ops,ou=Groups,o=tether"]
    {
        assert!(dns.iter().any(|d| d == want), "{want} in {dns:?}");
    }
    assert!(!dns.contains(&dn("carl")), "{dns:?}");
    let (_, dns, ldif) = search(&s, "ann", &[], "(&(objectClass=inetOrgPerson)(uid=BOB))", &["memberOf", "mail"]).await;
    assert_eq!(dns, [dn("bob")]);
    assert!(ldif.contains("memberOf: cn=ops,ou=Groups,o=tether") && ldif.contains("mail: bob@example.test"), "{ldif}");
    let (_, _, ldif) = search(&s, "ann", &[], "(cn=ops)", &[]).await;
    assert!(ldif.contains("member: uid=bob,ou=Users,o=tether") && ldif.contains("memberUid: bob"), "{ldif}");
    assert!(!ldif.contains("ann,ou"), "ann is in LDAP but not in ops: {ldif}");
    // Group lookups as SSSD and nslcd send them (answered from those groups alone), the same
    // entries as the general search gives.
    let hr = s.create("/api/v2/usergroups", json!({"name": "hr"})).await;
    s.add_member(&hr, &bob).await;
    for filter in [
        "(&(objectClass=posixGroup)(memberUid=BOB))",
        "(&(objectClass=groupOfNames)(member=uid=bob,ou=Users,o=tether))",
        "(&(objectClass=groupOfNames)(cn=OPS))",
    ] {
        let (code, dns, ldif) = search(&s, "ann", &[], filter, &["memberUid", "member"]).await;
        assert_eq!(
            (code, dns),
            (0, vec!["cn=ops,ou=Groups,o=tether".to_string()]),
            "{filter}: hr is not in LDAP: {ldif}"
        );
        assert!(ldif.contains("memberUid: bob") && ldif.contains("member: uid=bob,ou=Users,o=tether"), "{ldif}");
    }
    for filter in [
        "(&(objectClass=groupOfNames)(cn=hr))",
        "(&(objectClass=posixGroup)(memberUid=carl))",
        "(&(objectClass=posixGroup)(memberUid=ann))",
    ] {
        let (code, dns, ldif) = search(&s, "ann", &[], filter, &[]).await;
        assert_eq!((code, dns), (0, Vec::<String>::new()), "{filter}: {ldif}");
    }
    let (code, _, ldif) =
        search(&s, "ann", &["-s", "base", "-b", "uid=zed,ou=Users,o=tether"], "(objectClass=*)", &[]).await;
    assert_eq!(code, 32, "no such object: {ldif}");

    // Any other user reads its own entry only.
    let (code, dns, ldif) = search(&s, "bob", &[], "(objectClass=*)", &[]).await;
    assert_eq!((code, dns), (0, vec![dn("bob")]), "{ldif}");

    // Out of LDAP, suspended: refused at once, on open connections' next search too.
    let r = s
        .call(
            "POST",
            &format!("/api/v2/usergroups/{ops}/members"),
            Some(json!({"op": "remove", "type": "user", "id": bob})),
        )
        .await;
    assert_eq!(r.status, 204, "{:?}", r.body);
    let (_, dns, _) = search(&s, "ann", &[], "(uid=*)", &[]).await;
    assert_eq!(dns, [dn("ann")], "bob left LDAP with the group");
    let (code, _, _) = whoami(&s.ldaps, false, "bob", "Ldap-Passw0rd!").await;
    assert_eq!(code, 49);
    let r = s.call("PUT", &format!("/api/systemusers/{ann}"), Some(json!({"suspended": true}))).await;
    assert_eq!(r.status, 200);
    let (code, _, _) = whoami(&s.ldaps, false, "ann", "Ldap-Passw0rd!").await;
    assert_eq!(code, 49, "suspended");
}

#[tokio::test]
async fn a_large_search_is_paged_and_bounded() {
    let s = TestServer::start().await;
    let server = ldap_server(&s).await;
    let reader = user(&s, "reader", json!({"ldap_binding_user": true})).await;
    associate(&s, &server, "user", &reader, "add").await;
    let many = s.create("/api/v2/usergroups", json!({"name": "many"})).await;
    for i in 0..45 {
        let id = user(&s, &format!("p{i:03}"), json!({})).await;
        s.add_member(&many, &id).await;
    }
    associate(&s, &server, "user_group", &many, "add").await;
    // Pages of 10 with real cookies: every user once.
    let (code, dns, ldif) = search(&s, "reader", &["-E", "pr=10/noprompt"], "(uid=p*)", &["1.1"]).await;
    assert_eq!(code, 0, "{ldif}");
    let mut unique = dns.clone();
    unique.sort();
    unique.dedup();
    assert_eq!((dns.len(), unique.len()), (45, 45), "{ldif}");
    assert_eq!(ldif.matches("pagedresults: cookie=").count(), 5, "five pages of at most ten: {ldif}");
    // A size limit below the matches: those entries and sizeLimitExceeded (4).
    let (code, dns, ldif) = search(&s, "reader", &["-z", "7"], "(uid=p*)", &["1.1"]).await;
    assert_eq!((code, dns.len()), (4, 7), "{ldif}");
}

#[tokio::test]
async fn users_change_their_password_and_guesses_are_limited() {
    let s = TestServer::start().await;
    let server = ldap_server(&s).await;
    let eve = user(&s, "eve", json!({})).await;
    let fay = user(&s, "fay", json!({})).await;
    associate(&s, &server, "user", &eve, "add").await;
    associate(&s, &server, "user", &fay, "add").await;
    let passwd = |who: &'static str, old: &'static str, new: &'static str, target: Option<&'static str>| {
        let url = s.ldap.clone();
        async move {
            let d = dn(who);
            let mut args = vec!["-x", "-ZZ", "-H", &url, "-D", &d, "-w", old, "-a", old, "-s", new];
            let t;
            if let Some(other) = target {
                t = dn(other);
                args.push(&t);
            }
            client("ldappasswd", &args).await
        }
    };
    // Under the directory's policy: a too-short password is refused with the reason.
    // (ldappasswd exits 1 on any refusal and prints the result code.)
    let (code, out, err) = passwd("eve", "Ldap-Passw0rd!", "short", None).await;
    assert!(code != 0 && format!("{out}{err}").contains("Constraint violation (19)"), "{code} {out} {err}");
    // Only one's own.
    let (code, out, err) = passwd("eve", "Ldap-Passw0rd!", "An0ther-Passw0rd!", Some("fay")).await;
    assert!(code != 0 && format!("{out}{err}").contains("Insufficient access (50)"), "{code} {out} {err}");
    let (code, out, err) = passwd("eve", "Ldap-Passw0rd!", "An0ther-Passw0rd!", None).await;
    assert_eq!(code, 0, "{out} {err}");
    assert_eq!(whoami(&s.ldaps, false, "eve", "An0ther-Passw0rd!").await.0, 0);
    assert_eq!(whoami(&s.ldaps, false, "eve", "Ldap-Passw0rd!").await.0, 49);
    let history = s.call("GET", &format!("/api/v2/users/{eve}/history"), None).await;
    assert!(history.body.to_string().contains("password"), "recorded: {}", history.body);

    // Every bind is a login attempt: past the limit even the right password is refused
    // (without being checked), and the API sees the same count.
    for _ in 0..10 {
        assert_eq!(whoami(&s.ldaps, false, "fay", "a-wrong-guess").await.0, 49);
    }
    assert_eq!(whoami(&s.ldaps, false, "fay", "Ldap-Passw0rd!").await.0, 49, "locked out");
    let r = s.call("POST", "/api/v2/auth/verify", Some(json!({"username": "fay", "password": "Ldap-Passw0rd!"}))).await;
    assert_ne!(r.status, 200, "{:?}", r.body);
    let m = s.client.get(format!("{}/metrics", s.url)).send().await.unwrap().text().await.unwrap();
    assert!(m.contains("tether_ldap_operation_seconds_count{op=\"bind\",outcome=\"InvalidCredentials\"} 12"), "{m}");
}

/// The value of counter `tether_<name>_total{outcome=...}`.
async fn counter(s: &TestServer, name: &str, outcome: &str) -> u64 {
    s.metric(&format!("tether_{name}_total{{outcome=\"{outcome}\"}}")).await.map_or(0, |v| v as u64)
}

async fn cache_count(s: &TestServer, outcome: &str) -> u64 {
    counter(s, "credential_cache", outcome).await
}

/// Users a search names are answered from memory while the directory is unchanged; every
/// change (an edit, a group joining LDAP, leaving LDAP with a group, a suspension) is seen
/// by the next search, with the old answer still held.
#[tokio::test]
async fn remembered_users_follow_every_change() {
    let s = TestServer::start().await;
    let server = ldap_server(&s).await;
    let ann = user(&s, "ann", json!({"ldap_binding_user": true})).await;
    let dee = user(&s, "dee", json!({})).await;
    let ops = s.create("/api/v2/usergroups", json!({"name": "ops"})).await;
    let dev = s.create("/api/v2/usergroups", json!({"name": "dev"})).await;
    s.add_member(&ops, &dee).await;
    s.add_member(&dev, &dee).await;
    associate(&s, &server, "user", &ann, "add").await;
    associate(&s, &server, "user_group", &ops, "add").await;
    let find = || search(&s, "ann", &[], "(uid=dee)", &["mail", "memberOf"]);
    let hits = || counter(&s, "ldap_user_memory", "hit");

    let (code, dns, ldif) = find().await;
    assert_eq!((code, dns), (0, vec![dn("dee")]), "{ldif}");
    assert!(ldif.contains("memberOf: cn=ops,ou=Groups,o=tether") && !ldif.contains("cn=dev"), "{ldif}");
    let before = hits().await;
    let (_, dns, _) = find().await;
    assert_eq!(dns, [dn("dee")]);
    assert!(hits().await > before, "an unchanged directory is answered from memory");

    let r = s.call("PUT", &format!("/api/systemusers/{dee}"), Some(json!({"email": "dee2@example.test"}))).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let (_, _, ldif) = find().await;
    assert!(ldif.contains("mail: dee2@example.test"), "the edit: {ldif}");

    associate(&s, &server, "user_group", &dev, "add").await;
    let (_, _, ldif) = find().await;
    assert!(ldif.contains("memberOf: cn=dev,ou=Groups,o=tether"), "a group joined LDAP: {ldif}");

    for g in [&ops, &dev] {
        let path = format!("/api/v2/usergroups/{g}/members");
        let r = s.call("POST", &path, Some(json!({"op": "remove", "type": "user", "id": dee}))).await;
        assert_eq!(r.status, 204, "{:?}", r.body);
    }
    let (code, dns, ldif) = find().await;
    assert_eq!((code, dns), (0, Vec::<String>::new()), "dee left LDAP with its groups: {ldif}");

    let r = s.call("PUT", &format!("/api/systemusers/{ann}"), Some(json!({"suspended": true}))).await;
    assert_eq!(r.status, 200);
    let (code, _, _) = find().await;
    assert_eq!(code, 49, "ann is suspended");
}

/// Binds of a user whose password was verified a moment ago skip the hash; a password
/// change, a wrong password and a suspension are never answered from that memory.
#[tokio::test]
async fn a_verified_password_is_not_hashed_again_until_it_changes() {
    let s = TestServer::start().await;
    let server = ldap_server(&s).await;
    let gil = user(&s, "gil", json!({})).await;
    associate(&s, &server, "user", &gil, "add").await;
    let counts = || async { (cache_count(&s, "hit").await, cache_count(&s, "miss").await) };
    assert_eq!(whoami(&s.ldaps, false, "gil", "Ldap-Passw0rd!").await.0, 0);
    assert_eq!(counts().await, (0, 1), "the first bind is hashed");
    assert_eq!(whoami(&s.ldaps, false, "gil", "Ldap-Passw0rd!").await.0, 0);
    assert_eq!(whoami(&s.ldap, true, "gil", "Ldap-Passw0rd!").await.0, 0);
    assert_eq!(counts().await, (2, 1), "the next ones are not");
    assert_eq!(whoami(&s.ldaps, false, "gil", "Ldap-Passw0rd!x").await.0, 49);
    assert_eq!(counts().await, (2, 2), "a wrong password is hashed");
    // A new password: the old one is hashed again (and refused) at once.
    let r = s.call("PUT", &format!("/api/systemusers/{gil}"), Some(json!({"password": "Fresh-Passw0rd!"}))).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(whoami(&s.ldaps, false, "gil", "Ldap-Passw0rd!").await.0, 49);
    assert_eq!(whoami(&s.ldaps, false, "gil", "Fresh-Passw0rd!").await.0, 0);
    assert_eq!(whoami(&s.ldaps, false, "gil", "Fresh-Passw0rd!").await.0, 0);
    assert_eq!(counts().await, (3, 4));
    // Suspended: refused although the password is remembered.
    let r = s.call("PUT", &format!("/api/systemusers/{gil}"), Some(json!({"suspended": true}))).await;
    assert_eq!(r.status, 200);
    assert_eq!(whoami(&s.ldaps, false, "gil", "Fresh-Passw0rd!").await.0, 49);
}

/// Many connections binding one account at once (an application's pool) all get in; many
/// wrong guesses at once get no more password checks than the limit, and lock the account.
#[tokio::test]
async fn parallel_binds_of_one_account() {
    let s = TestServer::start().await;
    let server = ldap_server(&s).await;
    for name in ["pool", "target"] {
        let id = user(&s, name, json!({})).await;
        associate(&s, &server, "user", &id, "add").await;
    }
    let codes = |who: &'static str, pw: &'static str| {
        let url = s.ldaps.clone();
        async move {
            let mut all = tokio::task::JoinSet::new();
            for _ in 0..32 {
                let url = url.clone();
                all.spawn(async move { whoami(&url, false, who, pw).await.0 });
            }
            all.join_all().await
        }
    };
    assert_eq!(codes("pool", "Ldap-Passw0rd!").await, vec![0; 32], "every bind of the pool gets in");
    let hashed_before = cache_count(&s, "miss").await;
    let guesses = codes("target", "a-wrong-guess").await;
    assert!(guesses.iter().all(|c| *c == 49), "{guesses:?}");
    let hashed = cache_count(&s, "miss").await - hashed_before;
    assert!((1..=10).contains(&hashed), "32 guesses at once, {hashed} checked");
    assert_eq!(whoami(&s.ldaps, false, "target", "Ldap-Passw0rd!").await.0, 49, "locked out");
}

#[tokio::test]
async fn unix_ids_are_assigned_unique_and_served() {
    let s = TestServer::start().await;
    let server = ldap_server(&s).await;
    let get = |id: String| {
        let s = &s;
        async move { s.call("GET", &format!("/api/systemusers/{id}"), None).await.body }
    };
    let reader = user(&s, "reader", json!({"ldap_binding_user": true})).await;
    let r = get(reader.clone()).await;
    let first = r["unix_uid"].as_u64().expect("assigned");
    assert!(first >= 5000 && r["unix_guid"] == r["unix_uid"], "{r}");
    let given = user(&s, "given", json!({"unix_uid": 7000, "unix_guid": 7100})).await;
    assert_eq!(
        (get(given.clone()).await["unix_uid"].as_u64(), get(given.clone()).await["unix_guid"].as_u64()),
        (Some(7000), Some(7100))
    );
    let after = user(&s, "after", json!({})).await;
    let after_uid = get(after).await["unix_uid"].as_u64().unwrap();
    assert!(after_uid > 7100, "numbers handed out later pass those given");
    let r = s
        .call(
            "POST",
            "/api/systemusers",
            Some(json!({"username": "dup", "email": "dup@example.test", "unix_uid": 7000})),
        )
        .await;
    assert_eq!(r.status, 409, "{:?}", r.body);
    // A primary group is shared (as AD's gidNumber often is); the uid is the user's own.
    let r = s
        .call(
            "POST",
            "/api/systemusers",
            Some(json!({"username": "dup", "email": "dup@example.test", "unix_guid": 7100})),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let r = s.call("PUT", &format!("/api/systemusers/{reader}"), Some(json!({"unix_uid": 7000}))).await;
    assert_eq!(r.status, 409, "{:?}", r.body);
    let ops = s.create("/api/v2/usergroups", json!({"name": "ops"})).await;
    let g = s.call("GET", &format!("/api/v2/usergroups/{ops}"), None).await.body;
    let gid = g["attributes"]["posixGroups"][0]["id"].as_u64().expect("a group gets its gid");
    assert!(gid > 7100, "{g}");
    // A later update keeps it.
    let r = s.call("PUT", &format!("/api/v2/usergroups/{ops}"), Some(json!({"attributes": {}}))).await;
    assert_eq!(r.body["attributes"]["posixGroups"][0]["id"].as_u64(), Some(gid), "{:?}", r.body);
    s.add_member(&ops, &given).await;
    associate(&s, &server, "user", &reader, "add").await;
    associate(&s, &server, "user_group", &ops, "add").await;

    let (code, _, ldif) = search(
        &s,
        "reader",
        &[],
        "(objectClass=posixAccount)",
        &["uidNumber", "gidNumber", "homeDirectory", "loginShell"],
    )
    .await;
    assert_eq!(code, 0, "{ldif}");
    for want in [
        "uidNumber: 7000",
        "gidNumber: 7100",
        "homeDirectory: /home/given",
        "loginShell: /bin/bash",
        &format!("uidNumber: {first}"),
    ] {
        assert!(ldif.contains(want), "{want} in {ldif}");
    }
    let (_, dns, ldif) =
        search(&s, "reader", &[], &format!("(&(objectClass=posixGroup)(gidNumber={gid}))"), &["memberUid"]).await;
    assert_eq!(dns, ["cn=ops,ou=Groups,o=tether"], "{ldif}");
    assert!(ldif.contains("memberUid: given"), "{ldif}");
    // Lookups by number, as `getent passwd 7000`, `getent group GID` and `ls -l` send them
    // (answered from the users or groups they name): in LDAP or not, one entry per user.
    let hr = s.create("/api/v2/usergroups", json!({"name": "hr"})).await;
    let hr_gid = s.call("GET", &format!("/api/v2/usergroups/{hr}"), None).await.body["attributes"]["posixGroups"][0]
        ["id"]
        .as_u64()
        .unwrap();
    let rows: Vec<(String, Vec<String>)> = vec![
        ("(uidNumber=7000)".into(), vec![dn("given")]),
        (format!("(&(objectClass=posixAccount)(uidNumber={first}))"), vec![dn("reader")]),
        ("(|(uid=given)(uidNumber=7000))".into(), vec![dn("given")]),
        (format!("(|(uidNumber={first})(uidNumber=7000))"), vec![dn("given"), dn("reader")]),
        (format!("(uidNumber={after_uid})"), vec![] /* not in LDAP */),
        ("(uidNumber=7100)".into(), vec![] /* a gid, no uid */),
        ("(uidNumber=x)".into(), vec![]),
        (format!("(&(objectClass=posixGroup)(gidNumber={hr_gid}))"), vec![] /* not in LDAP */),
        ("(&(objectClass=posixGroup)(gidNumber=x))".into(), vec![]),
    ];
    for (filter, want) in rows {
        let (code, mut dns, ldif) = search(&s, "reader", &[], &filter, &["uid"]).await;
        dns.sort();
        assert_eq!((code, dns), (0, want), "{filter}: {ldif}");
    }
}

/// A second client library, the Rust `ldap3` crate (StartTLS, its paged results adapter),
/// pages through 5,000 users in LDAP; unpaged, the same search stops at the server's bound.
#[tokio::test]
async fn a_second_client_pages_through_five_thousand_users() {
    let s = TestServer::start().await;
    let server = ldap_server(&s).await;
    let reader = user(&s, "reader", json!({"ldap_binding_user": true})).await;
    associate(&s, &server, "user", &reader, "add").await;
    let all = s.create("/api/v2/usergroups", json!({"name": "everyone"})).await;
    associate(&s, &server, "user_group", &all, "add").await;
    // Seeded in one batch (what is under test is the LDAP side, not 5,000 API calls).
    let names: Vec<String> = (0..5000).map(|i| format!("m{i:04}")).collect();
    let mut batch = Vec::new();
    for (i, n) in names.iter().enumerate() {
        let u = tether_core::user::User {
            id: format!("{:024x}", 0xabc000 + i),
            username: n.clone(),
            email: format!("{n}@example.test"),
            firstname: "M".into(),
            lastname: n.clone(),
            ..Default::default()
        };
        batch.push(tether_store::WriteOp::Insert(tether_store::Collection::Users, tether_store::user_doc(&u)));
        batch.push(tether_store::WriteOp::Link(tether_store::Edge::Member, all.clone(), u.id.clone()));
    }
    s.repo().store().write_batch(&batch).await.expect("seed");
    let target = tether_ad::LdapTarget {
        url: s.ldap.clone(),
        bind_dn: dn("reader"),
        bind_password: "Ldap-Passw0rd!".into(),
        ca_file: Some(pki().ca_file.display().to_string()),
        insecure_skip_verify: false,
    };
    let mut ldap = tether_ad::connect(&target).await.expect("StartTLS and bind with the ldap3 crate");
    let entries = tether_ad::read::paged_search(&mut ldap, "ou=Users,o=tether", "(uid=m*)", &["uid", "uidNumber"])
        .await
        .expect("paged search");
    let mut uids: Vec<String> = entries.iter().filter_map(|e| tether_ad::read::text(e, "uid")).collect();
    uids.sort();
    uids.dedup();
    assert_eq!(uids, names, "every user once");
    let unpaged =
        ldap.search("ou=Users,o=tether", tether_ad::ldap3::Scope::Subtree, "(uid=m*)", vec!["1.1"]).await.unwrap();
    assert_eq!((unpaged.1.rc, unpaged.0.len()), (4, 1000), "unpaged: sizeLimitExceeded past the server's bound");
}
