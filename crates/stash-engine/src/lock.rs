//! restic-compatible repository locks (`locks/<id>`), so stash-rs, restic and Stash's restic
//! never prune data another process is still writing.
//!
//! A lock is the encrypted JSON restic writes (`time`, `exclusive`, `hostname`, `username`,
//! `pid`, `uid`, `gid`), refreshed every five minutes. A lock is stale when it was not refreshed
//! for 30 minutes, or when it belongs to this host and its process is gone; stale locks never
//! block anybody, and taking an exclusive lock removes them. `rustic_core` has no lock file type,
//! so the files are written next to it through the same backend settings.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use serde::{Deserialize, Serialize};
use sha2::Digest;

use crate::EngineError;

const STALE_AFTER: Duration = Duration::from_mins(30);
const REFRESH_EVERY: Duration = Duration::from_mins(5);
const RETRY_EVERY: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct LockInfo {
    pub time: String,
    pub exclusive: bool,
    pub hostname: String,
    #[serde(default)]
    pub username: String,
    pub pid: u32,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub uid: u32,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub gid: u32,
}

#[allow(clippy::trivially_copy_pass_by_ref)]
fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl LockInfo {
    fn mine(exclusive: bool) -> Self {
        let (uid, gid) = ids();
        Self {
            time: jiff::Timestamp::now().to_string(),
            exclusive,
            hostname: hostname(),
            username: std::env::var("USER").unwrap_or_default(),
            pid: std::process::id(),
            uid,
            gid,
        }
    }

    fn is_stale(&self) -> bool {
        self.is_stale_for(&Observer::this_process())
    }

    /// Stale when not refreshed for 30 minutes, or when it names this host and a process that
    /// cannot be its owner: one that is gone, or this very process if the lock is older than it.
    /// The second case is a restarted container: it has the pod's hostname and PID 1 again, so
    /// "is PID 1 alive" says yes about the dead run's lock, which would block every session for
    /// 30 minutes.
    fn is_stale_for(&self, observer: &Observer) -> bool {
        let written = self.time.parse::<jiff::Timestamp>().ok();
        let age = written
            .and_then(|t| observer.now.duration_since(t).try_into().ok())
            .unwrap_or(Duration::MAX);
        if age > STALE_AFTER {
            return true;
        }
        if self.hostname != observer.hostname {
            return false;
        }
        if self.pid == observer.pid {
            return matches!((written, observer.started), (Some(w), Some(s)) if w < s);
        }
        !(observer.process_exists)(self.pid)
    }

    fn describe(&self) -> String {
        format!(
            "{} lock by PID {} on {} (user {}) since {}",
            if self.exclusive {
                "an exclusive"
            } else {
                "a shared"
            },
            self.pid,
            self.hostname,
            self.username,
            self.time
        )
    }
}

/// What a process knows when it judges a lock.
struct Observer {
    now: jiff::Timestamp,
    hostname: String,
    pid: u32,
    /// When this process started; `None` when /proc does not say.
    started: Option<jiff::Timestamp>,
    process_exists: fn(u32) -> bool,
}

impl Observer {
    fn this_process() -> Self {
        Self {
            now: jiff::Timestamp::now(),
            hostname: hostname(),
            pid: std::process::id(),
            started: process_start(),
            process_exists: |pid| std::path::Path::new(&format!("/proc/{pid}")).exists(),
        }
    }
}

/// This process's start time: `starttime` of /proc/self/stat (clock ticks after boot) plus the
/// boot time `btime` of /proc/stat. Rounded down to a tick, so a lock written in our first tick
/// counts as ours (the safe side).
fn process_start() -> Option<jiff::Timestamp> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name may hold spaces and parentheses; the fields after its last `)` start at
    // field 3 (state), so `starttime` (field 22) is the 20th of them.
    let ticks: i64 = stat
        .rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(19)?
        .parse()
        .ok()?;
    let boot: i64 = std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|line| line.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    let per_second = i64::try_from(rustix::param::clock_ticks_per_second()).ok()?;
    let nanos = boot
        .checked_mul(1_000_000_000)?
        .checked_add(ticks.checked_mul(1_000_000_000)? / per_second)?;
    jiff::Timestamp::from_nanosecond(i128::from(nanos)).ok()
}

fn hostname() -> String {
    gethostname::gethostname().to_string_lossy().into_owned()
}

/// Real uid and gid from /proc, without unsafe libc calls.
fn ids() -> (u32, u32) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    (field("Uid:"), field("Gid:"))
}

/// Lock files are sealed with the repository's master key, as restic writes them.
pub(crate) type Sealer = crate::cipher::RepoCipher;

/// Where lock files live: the `locks/` folder of the repository, on whatever backend it is.
pub(crate) trait LockStore: Send + Sync {
    fn list(&self) -> Result<Vec<String>, String>;
    fn read(&self, name: &str) -> Result<Vec<u8>, String>;
    fn write(&self, name: &str, data: &[u8]) -> Result<(), String>;
    fn remove(&self, name: &str) -> Result<(), String>;
}

struct HeldLock {
    store: Box<dyn LockStore>,
    sealer: Sealer,
    exclusive: bool,
    name: Mutex<Option<String>>,
}

impl HeldLock {
    fn write_new(&self) -> Result<String, String> {
        let json =
            serde_json::to_vec(&LockInfo::mine(self.exclusive)).map_err(|e| e.to_string())?;
        let sealed = self.sealer.seal(&json);
        let name = hex::encode(sha2::Sha256::digest(&sealed));
        self.store.write(&name, &sealed)?;
        Ok(name)
    }

    fn refresh(&self) {
        match self.write_new() {
            Ok(new) => {
                let old = self.name.lock().expect("lock name poisoned").replace(new);
                if let Some(old) = old {
                    let _ = self.store.remove(&old);
                }
            }
            Err(err) => {
                tracing::warn!(error = %err, "failed to refresh the repository lock; it turns stale after 30 minutes");
            }
        }
    }

    fn release(&self) {
        if let Some(name) = self.name.lock().expect("lock name poisoned").take()
            && let Err(err) = self.store.remove(&name)
        {
            tracing::warn!(lock = %name, error = %err, "failed to remove our repository lock; `stash unlock` removes it once stale");
        }
    }
}

/// A held lock; dropping it removes the lock file.
pub(crate) struct LockGuard {
    lock: Arc<HeldLock>,
    stop: Arc<AtomicBool>,
    refresher: Option<std::thread::JoinHandle<()>>,
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(refresher) = self.refresher.take() {
            refresher.thread().unpark();
            let _ = refresher.join();
        }
        self.lock.release();
    }
}

/// Takes a lock, waiting up to `wait` for conflicting locks to go away; a cancelled wait ends
/// at once.
pub(crate) fn acquire(
    store: Box<dyn LockStore>,
    sealer: Sealer,
    exclusive: bool,
    wait: Duration,
    cancel: &CancellationToken,
) -> Result<LockGuard, EngineError> {
    let deadline = std::time::Instant::now() + wait;
    let lock = Arc::new(HeldLock {
        store,
        sealer,
        exclusive,
        name: Mutex::new(None),
    });
    loop {
        match try_acquire(&lock) {
            Ok(()) => break,
            Err(Conflict::Files(reason)) => {
                return Err(EngineError::LockFiles {
                    action: "take a lock",
                    reason,
                });
            }
            Err(Conflict::Held(holder)) if std::time::Instant::now() + RETRY_EVERY <= deadline => {
                tracing::info!(conflict = %holder, "repository is locked; waiting");
                if sleep_unless_cancelled(RETRY_EVERY, cancel) {
                    return Err(EngineError::Cancelled);
                }
            }
            Err(Conflict::Held(holder)) => {
                return Err(EngineError::LockConflict { exclusive, holder });
            }
        }
    }
    let stop = Arc::new(AtomicBool::new(false));
    let refresher = {
        let (lock, stop) = (lock.clone(), stop.clone());
        std::thread::Builder::new()
            .name("lock-refresh".into())
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::park_timeout(REFRESH_EVERY);
                    if !stop.load(Ordering::Relaxed) {
                        lock.refresh();
                    }
                }
            })
            .ok()
    };
    Ok(LockGuard {
        lock,
        stop,
        refresher,
    })
}

/// Why a lock was not taken.
enum Conflict {
    /// Another live process holds a conflicting lock (described).
    Held(String),
    /// The lock files could not be listed or written.
    Files(String),
}

/// True when cancelled during the sleep.
fn sleep_unless_cancelled(duration: Duration, cancel: &CancellationToken) -> bool {
    let until = std::time::Instant::now() + duration;
    while std::time::Instant::now() < until {
        if cancel.is_cancelled() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100).min(until - std::time::Instant::now()));
    }
    cancel.is_cancelled()
}

/// One attempt: check, write ours, check again (another process may have raced us).
fn try_acquire(lock: &HeldLock) -> Result<(), Conflict> {
    check_conflicts(lock, None)?;
    let name = lock
        .write_new()
        .map_err(|e| Conflict::Files(format!("failed to write the lock file: {e}")))?;
    *lock.name.lock().expect("lock name poisoned") = Some(name.clone());
    if let Err(conflict) = check_conflicts(lock, Some(&name)) {
        lock.release();
        return Err(conflict);
    }
    Ok(())
}

fn check_conflicts(lock: &HeldLock, ours: Option<&str>) -> Result<(), Conflict> {
    for (name, info) in read_locks(&*lock.store, &lock.sealer).map_err(Conflict::Files)? {
        if Some(name.as_str()) == ours {
            continue;
        }
        let Some(info) = info else { continue };
        if info.is_stale() {
            if lock.exclusive {
                tracing::info!(lock = %name, owner = %info.describe(), "removing stale lock");
                let _ = lock.store.remove(&name);
            }
            continue;
        }
        if lock.exclusive || info.exclusive {
            return Err(Conflict::Held(info.describe()));
        }
    }
    Ok(())
}

/// Every lock file with its decoded content (`None` when it cannot be decoded).
fn read_locks(
    store: &dyn LockStore,
    sealer: &Sealer,
) -> Result<Vec<(String, Option<LockInfo>)>, String> {
    let names = store
        .list()
        .map_err(|e| format!("(failed to list locks: {e})"))?;
    let mut locks = Vec::with_capacity(names.len());
    for name in names {
        // A lock removed between list and read was released: not a conflict.
        let Ok(data) = store.read(&name) else {
            continue;
        };
        let info = sealer
            .open_file(&data)
            .and_then(|plain| serde_json::from_slice(&plain).ok());
        if info.is_none() {
            tracing::warn!(lock = %name, "ignoring a lock file that cannot be decoded");
        }
        locks.push((name, info));
    }
    Ok(locks)
}

/// True when some lock is stale: a process died while it held the repository.
pub(crate) fn any_stale(store: &dyn LockStore, sealer: &Sealer) -> bool {
    read_locks(store, sealer).is_ok_and(|locks| {
        locks
            .iter()
            .any(|(_, info)| info.as_ref().is_some_and(LockInfo::is_stale))
    })
}

/// Removes stale locks (or all locks); returns the names removed.
pub(crate) fn unlock(
    store: &dyn LockStore,
    sealer: &Sealer,
    remove_all: bool,
) -> Result<Vec<String>, EngineError> {
    let mut removed = Vec::new();
    for (name, info) in read_locks(store, sealer).map_err(|reason| EngineError::LockFiles {
        action: "list the locks",
        reason,
    })? {
        let stale = info.as_ref().is_none_or(LockInfo::is_stale);
        if remove_all || stale {
            store.remove(&name).map_err(|e| EngineError::LockFiles {
                action: "remove a lock",
                reason: format!("lock {name}: {e}"),
            })?;
            removed.push(name);
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lock_at(time: &str, hostname: &str, pid: u32) -> LockInfo {
        LockInfo {
            time: time.to_owned(),
            exclusive: false,
            hostname: hostname.to_owned(),
            username: String::new(),
            pid,
            uid: 0,
            gid: 0,
        }
    }

    /// A restarted sidecar: host `app-0`, PID 1, started at 12:00:10, every other PID alive.
    fn restarted_container() -> Observer {
        Observer {
            now: "2026-12-01T12:01:00Z".parse().unwrap(),
            hostname: "app-0".to_owned(),
            pid: 1,
            started: Some("2026-12-01T12:00:10Z".parse().unwrap()),
            process_exists: |_| true,
        }
    }

    #[test]
    fn the_lock_of_a_dead_run_with_our_hostname_and_pid_1_is_stale_after_the_container_restarts() {
        let dead_run = lock_at("2026-12-01T12:00:00Z", "app-0", 1);
        assert!(dead_run.is_stale_for(&restarted_container()));
    }

    #[test]
    fn a_lock_this_process_wrote_is_not_stale() {
        let ours = lock_at("2026-12-01T12:00:30Z", "app-0", 1);
        assert!(!ours.is_stale_for(&restarted_container()));
    }

    #[test]
    fn a_lock_of_another_live_process_or_host_is_not_stale_until_30_minutes_pass() {
        let observer = restarted_container();
        assert!(!lock_at("2026-12-01T12:00:00Z", "app-0", 7).is_stale_for(&observer));
        assert!(!lock_at("2026-12-01T12:00:00Z", "app-1", 1).is_stale_for(&observer));
        assert!(lock_at("2026-12-01T11:30:00Z", "app-1", 1).is_stale_for(&observer));
    }

    #[test]
    fn a_lock_of_a_gone_process_on_this_host_is_stale() {
        let observer = Observer {
            process_exists: |_| false,
            ..restarted_container()
        };
        assert!(lock_at("2026-12-01T12:00:30Z", "app-0", 7).is_stale_for(&observer));
    }

    #[test]
    fn this_process_knows_when_it_started() {
        let started = process_start().expect("/proc tells the start time");
        let now = jiff::Timestamp::now();
        assert!(started <= now, "{started} is after {now}");
    }
}
