//! Change notifications: AD and Samba push a change to a client that holds a search open
//! with the change-notification control (1.2.840.113556.1.4.528), so the import agent learns
//! of an edit, a disable or a group change the moment it is written instead of at its next
//! poll.
//!
//! One notification search per agent, on a connection of its own: subtree at the domain's
//! naming-context root (the one place AD allows a subtree notification; it covers the whole
//! scope, wherever its containers are). A notification only wakes the main loop, which runs
//! the import cycle at once; the cycle decides what to read, as after a poll. Several
//! notifications arriving during a cycle wake one more cycle, not one each.
//!
//! What notifications do not cover, the poll does: a deletion and the silent `member` change
//! it makes send no notification to a least-privileged account (AD-FACTS), so the main loop
//! still reads rootDSE `highestCommittedUSN` at its tick. A search that ends or fails (a DC
//! restarting, a failover) is opened again with backoff, and the reopening wakes a cycle: what
//! changed while it was down is caught up by `uSNChanged` from the watermark. A search with
//! nothing to say for [`REARM`] is opened again, so a connection the network dropped silently
//! does not leave the agent deaf.

use std::sync::Arc;
use std::time::Duration;

use tether_ad::ldap3::controls::RawControl;
use tether_ad::ldap3::Scope;
use tether_ad::LdapTarget;
use tokio::sync::Notify;

use crate::metrics::AgentMetrics;

/// The change-notification control (LDAP_SERVER_NOTIFICATION_OID).
pub const CHANGE_NOTIFICATION: &str = "1.2.840.113556.1.4.528";
/// A search silent this long is closed and opened again.
pub const REARM: Duration = Duration::from_secs(300);

/// Holds a notification search open on `target`'s domain and wakes `wake` at each
/// notification and at each (re)opening, until the task is aborted.
pub async fn watch(target: LdapTarget, wake: Arc<Notify>, metrics: Arc<AgentMetrics>) {
    let mut failures = 0u32;
    loop {
        match watch_once(&target, &wake, &metrics).await {
            Ok(()) => failures = 0,
            Err(e) => {
                failures += 1;
                tracing::debug!(error = %e, "change notifications interrupted; the poll goes on");
            }
        }
        metrics.notifications_open(false);
        tokio::time::sleep(crate::retry::backoff(failures)).await;
    }
}

/// One notification search, until it ends, fails or stays silent for [`REARM`].
async fn watch_once(target: &LdapTarget, wake: &Notify, metrics: &AgentMetrics) -> Result<(), tether_ad::AdError> {
    let mut ldap = tether_ad::connect(target).await?;
    let nc = tether_ad::read::root_dse(&mut ldap).await?.default_naming_context;
    let control = RawControl { ctype: CHANGE_NOTIFICATION.into(), crit: true, val: None };
    // AD accepts only `(objectClass=*)` with this control; the DN is all the wake needs.
    let mut stream = ldap
        .with_controls(control)
        .streaming_search(&nc, Scope::Subtree, "(objectClass=*)", vec!["1.1"])
        .await
        .map_err(tether_ad::AdError::from)?;
    metrics.notifications_open(true);
    // Whatever changed while no search was open is caught up by the cycle this wakes.
    wake.notify_one();
    loop {
        match tokio::time::timeout(REARM, stream.next()).await {
            Err(_) => return Ok(()),
            Ok(Ok(Some(_))) => {
                metrics.notification();
                wake.notify_one();
            }
            Ok(Ok(None)) => {
                // Ended by the server: its result says why (a refused control, a restart).
                let r = stream.finish().await;
                return match r.success() {
                    Ok(_) => Ok(()),
                    Err(e) => Err(e.into()),
                };
            }
            Ok(Err(e)) => return Err(e.into()),
        }
    }
}
