//! When a running restore is over (§6.2, session protocol step 4): every host reported a final `stats[]`
//! entry, or the session deadline passed. Pure functions of the status the agent wrote and the clock.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use stash_api::phase::HostRestorePhase;
use stash_api::v1beta1::RestoreSession;
use stash_api::validation::duration;

/// How many hosts restore and how many have finished.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HostCounts {
    pub total: i32,
    pub succeeded: i32,
    pub failed: i32,
}

impl HostCounts {
    /// Counts the final `stats[]` entries of `rs` against `total`.
    #[must_use]
    pub fn of(rs: &RestoreSession, total: i32) -> Self {
        let stats = rs
            .status
            .as_ref()
            .and_then(|s| s.stats.as_deref())
            .unwrap_or_default();
        let count = |phase| {
            i32::try_from(stats.iter().filter(|h| h.phase == Some(phase)).count())
                .unwrap_or(i32::MAX)
        };
        Self {
            total,
            succeeded: count(HostRestorePhase::Succeeded),
            failed: count(HostRestorePhase::Failed),
        }
    }

    /// The counts once the executor failed: every host without a final entry never will have one.
    #[must_use]
    pub fn unreported_failed(self) -> Self {
        Self {
            failed: self.total.saturating_sub(self.succeeded).max(self.failed),
            ..self
        }
    }

    /// Every host has a final entry (a session with no host to wait for is never done by itself).
    #[must_use]
    pub fn all_done(self) -> bool {
        self.total > 0 && self.succeeded.saturating_add(self.failed) >= self.total
    }
}

/// Why a restore is over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Completion {
    /// Every host reported.
    AllHostsDone,
    /// The deadline passed first.
    DeadlineExceeded,
    /// The restore Job failed before every host was recorded: nothing will record them.
    JobFailed,
}

/// Whether the restore is over at `now`: all hosts done wins over a failed Job (whose hosts' own
/// entries say more) and over a deadline passed at the same time.
#[must_use]
pub fn completion(
    hosts: HostCounts,
    deadline: Option<Timestamp>,
    job_failed: bool,
    now: Timestamp,
) -> Option<Completion> {
    if hosts.all_done() {
        Some(Completion::AllHostsDone)
    } else if job_failed {
        Some(Completion::JobFailed)
    } else if deadline.is_some_and(|d| d <= now) {
        Some(Completion::DeadlineExceeded)
    } else {
        None
    }
}

/// `creationTimestamp + spec.timeOut`, if `timeOut` is set and parses (validation reports it otherwise).
#[must_use]
pub fn deadline(rs: &RestoreSession) -> Option<Timestamp> {
    let timeout = rs
        .spec
        .time_out
        .as_deref()
        .filter(|t| !t.trim().is_empty())?;
    let nanos = i64::try_from(duration::parse(timeout.trim()).ok()?).ok()?;
    let created = rs.metadata.creation_timestamp.as_ref()?.0;
    created.checked_add(SignedDuration::from_nanos(nanos)).ok()
}

/// The time since the RestoreSession was created (`sessionDuration`), zero for a clock behind it.
#[must_use]
pub fn elapsed(rs: &RestoreSession, now: Timestamp) -> Duration {
    rs.metadata
        .creation_timestamp
        .as_ref()
        .and_then(|t| Duration::try_from(now.duration_since(t.0)).ok())
        .unwrap_or_default()
}

/// The `error` of each failed host, `host: error`, for the Failed event.
#[must_use]
pub fn host_errors(rs: &RestoreSession) -> Vec<String> {
    rs.status
        .as_ref()
        .and_then(|s| s.stats.as_deref())
        .unwrap_or_default()
        .iter()
        .filter(|h| h.phase == Some(HostRestorePhase::Failed))
        .map(|h| {
            format!(
                "{}: {}",
                h.hostname.as_deref().unwrap_or("?"),
                h.error.as_deref().unwrap_or("no error given")
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(yaml_status: &str) -> RestoreSession {
        serde_yaml::from_str(&format!(
            "apiVersion: stash.appscode.com/v1beta1\nkind: RestoreSession\nmetadata:\n  name: r\n  namespace: demo\n  creationTimestamp: \"2026-01-01T00:00:00Z\"\nspec:\n  timeOut: 2m\n{yaml_status}"
        ))
        .unwrap()
    }

    #[test]
    fn running_entries_do_not_count_and_final_ones_do() {
        let rs = session(
            "status:\n  stats:\n  - hostname: host-0\n    phase: Succeeded\n  - hostname: host-1\n    phase: Running\n  - hostname: host-2\n    phase: Failed\n",
        );
        let hosts = HostCounts::of(&rs, 3);
        assert_eq!((hosts.succeeded, hosts.failed), (1, 1));
        assert!(!hosts.all_done());
        assert!(HostCounts::of(&rs, 2).all_done());
    }

    #[test]
    fn a_session_without_hosts_to_wait_for_is_not_done() {
        assert!(!HostCounts::default().all_done());
    }

    #[test]
    fn the_deadline_is_the_creation_time_plus_the_timeout() {
        let rs = session("");
        let deadline = deadline(&rs).unwrap();
        assert_eq!(deadline.to_string(), "2026-01-01T00:02:00Z");
        let hosts = HostCounts {
            total: 1,
            ..HostCounts::default()
        };
        let before: Timestamp = "2026-01-01T00:01:59Z".parse().unwrap();
        let after: Timestamp = "2026-01-01T00:02:00Z".parse().unwrap();
        assert_eq!(completion(hosts, Some(deadline), false, before), None);
        assert_eq!(
            completion(hosts, Some(deadline), false, after),
            Some(Completion::DeadlineExceeded)
        );
        let done = HostCounts {
            succeeded: 1,
            ..hosts
        };
        assert_eq!(
            completion(done, Some(deadline), false, after),
            Some(Completion::AllHostsDone)
        );
    }

    #[test]
    fn a_failed_job_ends_the_restore_at_once_unless_its_host_was_recorded() {
        let hosts = HostCounts {
            total: 1,
            ..HostCounts::default()
        };
        let now: Timestamp = "2026-01-01T00:00:10Z".parse().unwrap();
        assert_eq!(
            completion(hosts, None, true, now),
            Some(Completion::JobFailed)
        );
        assert_eq!(hosts.unreported_failed().failed, 1);
        let recorded = HostCounts {
            succeeded: 1,
            ..hosts
        };
        assert_eq!(
            completion(recorded, None, true, now),
            Some(Completion::AllHostsDone)
        );
        assert_eq!(recorded.unreported_failed().failed, 0);
    }

    #[test]
    fn the_session_duration_counts_from_creation() {
        let rs = session("");
        let now: Timestamp = "2026-01-01T00:02:40Z".parse().unwrap();
        assert_eq!(
            stash_api::units::format_go_duration(elapsed(&rs, now)),
            "2m40s"
        );
    }
}
