//! The domain's import sequence number: what makes an incremental import report, which is
//! relative to its agent's last applied report, safe to apply. The number moves before
//! anything of a report or an approved plan is written, the agent keeps the number its
//! report was applied as, and its next incremental report names it as its `base`: if
//! anything else was applied since (an approved plan, another agent's report, a report whose
//! answer was lost, two applies at once), the base is stale, the report is refused (412
//! `STALE_BASE`) and the agent reads everything.

use crate::error::{ApiError, Code};
use crate::state::AppState;
use tether_core::wire::ImportReport;

pub(crate) fn stale_base() -> ApiError {
    ApiError::new(
        Code::StaleBase,
        "something was applied since this agent's last import report (an approved plan, another agent's report, \
         or a report whose answer was lost): read everything and report it whole",
    )
}

/// Takes the domain's next import sequence number, before anything of a report is written
/// (so a report applied in part, or whose answer never reached the agent, has moved it too).
/// With `base` (an incremental report's), only if it is still the current number; with
/// `fencing`, only while that is still the primary import agent's token (it may have lost the
/// role while its report was decided).
pub(crate) async fn next_seq(
    s: &AppState,
    domain_id: &str,
    base: Option<u64>,
    fencing: Option<u64>,
) -> Result<u64, ApiError> {
    crate::ops::retrying(|| async {
        let mut d = crate::ops::domains::load(s, domain_id).await?;
        if base.is_some_and(|b| b != d.import_seq) {
            return Err(stale_base());
        }
        if fencing.is_some_and(|f| f != d.primary_fencing_token) {
            return Err(ApiError::new(Code::Conflict, "this agent is not the primary import agent of the domain"));
        }
        d.import_seq += 1;
        s.repo.save_domain(&d).await?;
        Ok(d.import_seq)
    })
    .await
}

/// After applying as `seq` (done or failed): if another report or plan took a number
/// meanwhile, the two were written at the same time and the other's agent cannot know whose
/// writes came last, so the number moves once more: that agent's next incremental report is
/// refused and it reads everything.
pub(crate) async fn settle_seq(s: &AppState, domain_id: &str, seq: u64) -> Result<(), ApiError> {
    crate::ops::retrying(|| async {
        let mut d = crate::ops::domains::load(s, domain_id).await?;
        if d.import_seq != seq {
            d.import_seq += 1;
            s.repo.save_domain(&d).await?;
        }
        Ok(())
    })
    .await
}

/// The base an incremental report must still be relative to: the one it names. A report
/// without one (an agent older than `base`) is taken as before, unless it sends a group as
/// who joined and who left, which means nothing without a base.
pub(crate) fn base_of(report: &ImportReport) -> Result<Option<u64>, ApiError> {
    if report.complete {
        return Ok(None);
    }
    match report.base {
        None if report.groups_as_changes() > 0 => Err(stale_base()),
        b => Ok(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// Two applies that overlap (an approved plan and an agent's report, or a report still
    /// written when its agent, timed out, sent the next): whoever finished first cannot know
    /// the other's writes came after its own, so the number moves once more and the agents'
    /// next incremental reports are refused as stale.
    #[tokio::test]
    async fn applies_that_overlap_leave_every_base_stale() {
        let dir = tempfile::tempdir().unwrap();
        let store = tether_store::sqlite::SqliteStore::open(dir.path()).await.unwrap();
        let s = AppState::new(tether_store::Repo::new(Arc::new(store)), crate::ServerConfig::default());
        let d = tether_core::ad::new_domain("d1", &serde_json::json!({"domain": "DC=x,DC=test"}), "now").unwrap();
        s.repo.insert_domain(&d).await.unwrap();
        let one = next_seq(&s, "d1", None, None).await.unwrap();
        // Alone: settling leaves the number as taken, and it is the next report's base.
        settle_seq(&s, "d1", one).await.unwrap();
        let two = next_seq(&s, "d1", Some(one), None).await.unwrap();
        let three = next_seq(&s, "d1", None, None).await.unwrap();
        // `two` is still being written when `three` starts, and finishes last: both settle.
        settle_seq(&s, "d1", three).await.unwrap();
        settle_seq(&s, "d1", two).await.unwrap();
        for base in [two, three] {
            let e = next_seq(&s, "d1", Some(base), None).await.unwrap_err();
            assert_eq!(e.code, Code::StaleBase, "base {base}");
        }
        // A report with another fencing token than the domain's is refused as it writes.
        let e = next_seq(&s, "d1", None, Some(d.primary_fencing_token + 1)).await.unwrap_err();
        assert_eq!(e.code, Code::Conflict);
    }
}
