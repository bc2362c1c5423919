//! The import agent's watermark is a USN of one DC. A saved state stamped with another DC
//! (a failover, a name that resolves to several DCs), or with a USN the DC has not reached
//! (a DC restored from a backup), says nothing of what changed: the next cycle that finds
//! AD's USN moved reads everything. The idle tick reads `highestCommittedUSN` alone, so the
//! DC is told apart only then (`import.rs`).

use serde_json::{json, Value};
use tether_ad::connect;
use tether_agent::import::{cycle, ReadKind};

use crate::import_samba::fixture;

#[tokio::test]
async fn a_watermark_of_another_dc_or_one_ahead_of_the_dc_brings_a_complete_read() {
    let mut fx = fixture("ADASAUTHORITY", json!({})).await;
    let adi = fx.adi.clone();
    fx.user("wm", Some("Ann"), &[&adi]).await;
    assert_eq!(fx.run().await["created"], 1);
    let path = fx.cfg.state_dir().join("import.json");
    let mut conn = connect(&fx.cfg.ldap_target()).await.unwrap();
    let tamper = |key: &str, value: Value| {
        let mut state: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert!(state.get(key).is_some(), "{key} is in the saved state");
        state[key] = value;
        std::fs::write(&path, state.to_string()).unwrap();
    };

    // An ordinary change first: read incrementally.
    fx.user("wm", Some("Bob"), &[&adi]).await;
    let st = cycle(&fx.cfg, &mut conn, &fx.session, false).await.unwrap();
    assert!(matches!(st.read, ReadKind::Exact | ReadKind::Scan), "{st:?}");

    // Stamped with another DC: at the next change, everything is read.
    tamper("server", json!("CN=NTDS Settings,CN=ELSEWHERE,CN=Servers,CN=Default-First-Site-Name,CN=Sites"));
    fx.user("wm", Some("Cid"), &[&adi]).await;
    let st = cycle(&fx.cfg, &mut conn, &fx.session, false).await.unwrap();
    assert_eq!(st.read, ReadKind::Complete, "{st:?}");
    let st = cycle(&fx.cfg, &mut conn, &fx.session, false).await.unwrap();
    assert_ne!(st.read, ReadKind::Complete, "the state is this DC's again: {st:?}");

    // A watermark the DC has not reached (restored from a backup): everything is read.
    tamper("usn", json!(u64::MAX / 2));
    let st = cycle(&fx.cfg, &mut conn, &fx.session, false).await.unwrap();
    assert_eq!(st.read, ReadKind::Complete, "{st:?}");
}
