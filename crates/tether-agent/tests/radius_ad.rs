//! An AD user on Wi-Fi and VPN through Tether's RADIUS front end: imported from the Samba DC
//! with AD as its password authority (delegated authentication through the import agent),
//! it gets in with its AD password by PAP (`radtest`, Debian's freeradius-utils) and by
//! EAP-TTLS (`eapol_test`, Debian's eapoltest); disabled in AD, it is refused after one
//! import cycle.

use std::path::Path;

use serde_json::json;
use tether_ad::{connect, create_group, create_user, replace_attrs, set_member, NewUser};
use tether_agent::config::ImportConfig;
use tether_agent::import::cycle;
use tether_agent::session::Session;
use tether_testkit::radius::{eapol_test, radtest};
use tether_testkit::{dc, unique, with_keys, TestServer};

const SECRET: &str = "office-radius-s3cret";
const AD_PASSWORD: &str = "Imp0rt-Test-Pw!";

#[tokio::test]
async fn an_ad_user_gets_in_with_its_ad_password_until_disabled_in_ad() {
    let s = TestServer::start().await;
    let domain = s.domain(&dc().base_dn, "ADASAUTHORITY").await;
    let key = s.connect_key(&domain, "IMPORT").await;
    let mut ldap = connect(&dc().admin_target()).await.unwrap();
    let adi = create_group(&mut ldap, &dc().users_container(), &unique("adi")).await.unwrap();
    let sam = unique("wifi");
    let mail = format!("{sam}@corp.example.test");
    let nu = NewUser {
        container: &dc().users_container(),
        sam_account_name: &sam,
        given_name: "Wi",
        sn: &sam,
        mail: &mail,
        password: Some(AD_PASSWORD),
    };
    let dn = create_user(&mut ldap, &nu).await.unwrap();
    set_member(&mut ldap, &adi, &dn, true).await.unwrap();
    // A member server's agent: no password is captured, AD answers every check.
    let state = tempfile::tempdir().unwrap();
    let v = with_keys(
        dc().import_agent_config(&s.url, &key, state.path(), &dc().users_container(), &adi),
        json!({"InstalledOn": "member_server"}),
    );
    let cfg = ImportConfig::from_str(Path::new("i.json"), &v.to_string()).unwrap();
    let session = Session::establish(&cfg.server, &cfg.state_dir(), "member_server").await.unwrap();
    let mut conn = connect(&cfg.ldap_target()).await.unwrap();
    cycle(&cfg, &mut conn, &session, true).await.unwrap();
    let u = s.call("GET", &format!("/api/systemusers?filter=username:$eq:{sam}"), None).await.body;
    let id = u["results"][0]["id"].as_str().expect("imported").to_string();
    assert_eq!(u["results"][0]["passwordStatus"], "delegated", "AD is the password authority: {u}");
    let worker = tokio::spawn(tether_agent::delegation::serve(session.clone(), cfg.ldap_target()));

    let r = s
        .call(
            "POST",
            "/api/radiusservers",
            Some(json!({"name": "office wifi", "networkSourceIp": "127.0.0.1", "sharedSecret": SECRET})),
        )
        .await;
    let server = r.body["id"].as_str().unwrap_or_else(|| panic!("{:?}", r.body)).to_string();
    let r = s
        .call(
            "POST",
            &format!("/api/v2/radiusservers/{server}/associations"),
            Some(json!({"op": "add", "type": "user", "id": id})),
        )
        .await;
    assert_eq!(r.status, 204);

    let out = radtest(&s.radius, SECRET, &sam, AD_PASSWORD).await;
    assert!(out.contains("Received Access-Accept"), "the AD password by PAP: {out}");
    let out = radtest(&s.radius, SECRET, &sam, "Not-The-AD-Passw0rd").await;
    assert!(out.contains("Received Access-Reject"), "{out}");
    let (ok, out) = eapol_test(&s.radius, SECRET, &sam, AD_PASSWORD).await;
    assert!(ok, "the AD password by EAP-TTLS (Wi-Fi): {out}");
    let accepted_by_ad = s.metric(r#"tether_delegated_auth_seconds_count{outcome="accepted"}"#).await.unwrap_or(0.0);
    assert!(accepted_by_ad >= 2.0, "AD answered both logins: {accepted_by_ad}");

    // Disabled in AD: one import cycle later, refused.
    replace_attrs(&mut ldap, &dn, &[("userAccountControl", "514")]).await.unwrap();
    cycle(&cfg, &mut conn, &session, true).await.unwrap();
    let u = s.call("GET", &format!("/api/systemusers/{id}"), None).await.body;
    assert_ne!(u["state"], "ACTIVATED", "{u}");
    let out = radtest(&s.radius, SECRET, &sam, AD_PASSWORD).await;
    assert!(out.contains("Received Access-Reject"), "disabled in AD: {out}");
    let (ok, out) = eapol_test(&s.radius, SECRET, &sam, AD_PASSWORD).await;
    assert!(!ok, "disabled in AD, by EAP: {out}");
    worker.abort();
}
