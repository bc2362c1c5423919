//! Against the real Samba AD DC of the test run (scripts/ad-sandbox.sh): TLS connections,
//! binds and their failure reasons, creating and reading users.

use tether_ad::{connect, create_user, find_user, AdError, BindFailure, LdapTarget, NewUser};
use tether_testkit::{dc, unique};

fn admin() -> LdapTarget {
    dc().admin_target()
}

#[tokio::test]
async fn ldaps_and_starttls_bind_with_verified_certificates() {
    let mut ldap = connect(&admin()).await.expect("LDAPS bind as admin");
    ldap.unbind().await.ok();
    let starttls = LdapTarget { url: format!("ldap://{}:389", dc().host), ..admin() };
    let mut ldap = connect(&starttls).await.expect("StartTLS bind as admin");
    ldap.unbind().await.ok();
    // Other bind names AD accepts.
    let upn = LdapTarget { bind_dn: format!("Administrator@{}", dc().realm), ..admin() };
    connect(&upn).await.expect("user@realm bind");
}

#[tokio::test]
async fn refuses_unencrypted_urls_and_unverified_certificates() {
    let plain = LdapTarget { url: format!("http://{}", dc().host), ..admin() };
    assert!(matches!(connect(&plain).await, Err(AdError::BadUrl(_))));
    // Without the sandbox CA the DC's certificate is not trusted.
    let untrusted = LdapTarget { ca_file: None, ..admin() };
    match connect(&untrusted).await {
        Err(AdError::Connect { .. }) => {}
        other => panic!("expected a TLS failure, got {other:?}"),
    }
    let insecure = LdapTarget { ca_file: None, insecure_skip_verify: true, ..admin() };
    connect(&insecure).await.expect("explicitly insecure connection works");
}

#[tokio::test]
async fn samba_refuses_simple_binds_over_plain_ldap() {
    // The DC itself, as real AD: this is why Tether never binds without TLS.
    let (conn, mut ldap) = ldap3::LdapConnAsync::new(&format!("ldap://{}:389", dc().host)).await.unwrap();
    ldap3::drive!(conn);
    let r = ldap.simple_bind(&dc().admin_dn, &dc().admin_password).await.unwrap();
    assert_ne!(r.rc, 0, "a plain-LDAP simple bind must be refused");
    assert!(r.text.to_lowercase().contains("encryption") || r.rc == 13, "{r:?}");
}

#[tokio::test]
async fn bind_failures_carry_ad_reasons() {
    let wrong = LdapTarget { bind_password: "not-the-password".into(), ..admin() };
    match connect(&wrong).await {
        Err(AdError::Bind { failure, diagnostic, .. }) => {
            assert_eq!(failure, BindFailure::InvalidCredentials, "{diagnostic}")
        }
        other => panic!("{other:?}"),
    }
    let empty = LdapTarget { bind_password: String::new(), ..admin() };
    assert!(matches!(connect(&empty).await, Err(AdError::Bind { failure: BindFailure::InvalidCredentials, .. })));
}

#[tokio::test]
async fn create_read_and_bind_as_a_new_user() {
    let d = dc();
    let mut ldap = connect(&admin()).await.unwrap();
    let sam = unique("t");
    let mail = format!("{sam}@corp.example.test");
    let container = d.users_container();
    let pw = "Fresh-Passw0rd!";
    let dn = create_user(
        &mut ldap,
        &NewUser {
            container: &container,
            sam_account_name: &sam,
            given_name: "Test",
            sn: &sam,
            mail: &mail,
            password: Some(pw),
        },
    )
    .await
    .expect("create user");
    let u = find_user(&mut ldap, &d.base_dn, &sam).await.unwrap().expect("found");
    assert_eq!(u.dn, dn);
    assert_eq!((u.given_name.as_deref(), u.mail.as_deref()), (Some("Test"), Some(mail.as_str())));
    assert_eq!(u.object_guid.len(), 16);
    assert!(!u.disabled());
    // The new user can bind with its password; a wrong one gives 52e.
    let me = LdapTarget { bind_dn: format!("{sam}@{}", d.realm), bind_password: pw.into(), ..admin() };
    connect(&me).await.expect("the new user binds");
    // Disabled: bind fails with 533.
    ldap.modify(&dn, vec![ldap3::Mod::Replace("userAccountControl", std::collections::HashSet::from(["514"]))])
        .await
        .unwrap()
        .success()
        .unwrap();
    match connect(&me).await {
        Err(AdError::Bind { failure, .. }) => assert_eq!(failure, BindFailure::AccountDisabled),
        other => panic!("{other:?}"),
    }
    // The seeded users exist and bind with the seed password.
    let seeded = LdapTarget {
        bind_dn: format!("{}user0001@{}", d.seed_prefix, d.realm),
        bind_password: d.seed_password.clone(),
        ..admin()
    };
    connect(&seeded).await.expect("seeded user binds");
    assert!(find_user(&mut ldap, &d.base_dn, &unique("nobody")).await.unwrap().is_none());
}

#[tokio::test]
async fn complexity_errors_come_back_from_ad() {
    let d = dc();
    let mut ldap = connect(&admin()).await.unwrap();
    let sam = unique("c");
    let mail = format!("{sam}@corp.example.test");
    let container = d.users_container();
    let err = create_user(
        &mut ldap,
        &NewUser {
            container: &container,
            sam_account_name: &sam,
            given_name: "Weak",
            sn: &sam,
            mail: &mail,
            password: Some("weak"),
        },
    )
    .await
    .unwrap_err();
    match err {
        AdError::Refused { rc, message, .. } => {
            assert_eq!(rc, 19, "constraint violation");
            assert!(message.contains("0000052D"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    // The password goes in the add itself: a refused one leaves no account behind.
    assert_eq!(find_user(&mut ldap, &d.base_dn, &sam).await.unwrap(), None);
}
