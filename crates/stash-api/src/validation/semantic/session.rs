//! Sessions and restores: a BackupSession's invoker reference and labels, RestoreSession and
//! RestoreBatch (including the deprecated top-level `spec.rules`), and the restore rules they share.

use std::collections::BTreeMap;

use super::invoker::{repository_needed, restore_hooks, temp_dir, timeout};
use super::{BatchMember, batch_members, target};
use crate::common::{Driver, EmptyDirSettings, Rule};
use crate::labels::{
    GROUP, LABEL_BACKUP_CONFIGURATION_OBSOLETE, LABEL_INVOKER_NAME, LABEL_INVOKER_TYPE,
};
use crate::v1beta1::{BackupSession, RestoreBatchSpec, RestoreSessionSpec, RestoreTargetSpec};
use crate::validation::Issue;

pub(super) fn backup_session(bs: &BackupSession, out: &mut Vec<Issue>) {
    let s = &bs.spec;
    let labels = bs.metadata.labels.clone().unwrap_or_default();
    if let Some(old) = &s.backup_configuration {
        out.push(Issue::warning(
            "spec.backupConfiguration",
            "`spec.backupConfiguration` is the v0.9.0-rc.0…rc.2 shape",
            format!("replace it by `spec.invoker: {{apiGroup: stash.appscode.com, kind: BackupConfiguration, name: {}}}`", old.name),
        ));
    }
    let invoker = match (&s.invoker, &s.backup_configuration) {
        (Some(inv), _) => {
            if !matches!(inv.kind.as_str(), "BackupConfiguration" | "BackupBatch") {
                out.push(Issue::error(
                    "spec.invoker.kind",
                    format!("unsupported invoker kind `{}`", inv.kind),
                    "use `BackupConfiguration` or `BackupBatch`",
                ));
            }
            if let Some(g) = &inv.api_group
                && g != GROUP
            {
                out.push(Issue::error(
                    "spec.invoker.apiGroup",
                    format!("unsupported apiGroup `{g}`"),
                    "use `stash.appscode.com` or leave it empty",
                ));
            }
            if inv.name.trim().is_empty() {
                out.push(Issue::error(
                    "spec.invoker.name",
                    "the invoker name is empty",
                    "set the name of the BackupConfiguration/BackupBatch",
                ));
            }
            Some((inv.kind.clone(), inv.name.clone()))
        }
        (None, Some(old)) => Some(("BackupConfiguration".to_owned(), old.name.clone())),
        (None, None) => {
            out.push(Issue::error(
                "spec.invoker",
                "the BackupSession does not name its invoker",
                "set `spec.invoker: {apiGroup: stash.appscode.com, kind: BackupConfiguration, name: <name>}`",
            ));
            None
        }
    };
    if let Some(n) = s.retry_left
        && n < 0
    {
        out.push(Issue::error(
            "spec.retryLeft",
            format!("{n} is negative"),
            "use 0 or more",
        ));
    }
    let Some((kind, name)) = invoker else { return };
    let has_type = labels.contains_key(LABEL_INVOKER_TYPE);
    let has_name = labels.contains_key(LABEL_INVOKER_NAME);
    if has_type && has_name {
        for (key, want) in [(LABEL_INVOKER_TYPE, &kind), (LABEL_INVOKER_NAME, &name)] {
            if labels.get(key).is_some_and(|v| v != want) {
                out.push(Issue::error(
                    &format!("metadata.labels.{key}"),
                    format!(
                        "label `{key}` is `{}` but spec.invoker says `{want}`",
                        labels[key]
                    ),
                    format!("set the label to `{want}`"),
                ));
            }
        }
    } else {
        let obsolete = if labels.contains_key(LABEL_BACKUP_CONFIGURATION_OBSOLETE) {
            format!(
                " (the obsolete label `{LABEL_BACKUP_CONFIGURATION_OBSOLETE}` is no longer used)"
            )
        } else {
            String::new()
        };
        out.push(Issue::warning(
            "metadata.labels",
            format!("the session lacks the invoker labels{obsolete}, so a workload's stash sidecar never picks it up"),
            format!("add labels `{LABEL_INVOKER_TYPE}: {kind}` and `{LABEL_INVOKER_NAME}: {name}`"),
        ));
    }
}

pub(super) fn restore_session(s: &RestoreSessionSpec, out: &mut Vec<Issue>) {
    let driver = s.driver();
    repository_needed(driver, s.repository.is_some(), out);
    if let Some(rules) = &s.rules {
        let target_rules = s
            .target
            .as_ref()
            .and_then(|t| t.rules.as_ref())
            .is_some_and(|r| !r.is_empty());
        if target_rules {
            out.push(Issue::warning(
                "spec.rules",
                "`spec.rules` is deprecated and is ignored because `spec.target.rules` is also set",
                "delete `spec.rules` (or merge it into `spec.target.rules`)",
            ));
        } else {
            out.push(Issue::warning(
                "spec.rules",
                "`spec.rules` is deprecated; it is moved to `spec.target.rules` on admission",
                "move the rules under `spec.target.rules`",
            ));
        }
        restore_rules(rules, "spec.rules", out);
    }
    match &s.target {
        Some(t) => target::restore_target(
            t,
            driver,
            s.task.as_ref(),
            s.rules.is_some(),
            "spec.target",
            out,
        ),
        None => out.push(Issue::error(
            "spec.target",
            "a RestoreSession needs a target",
            "set `spec.target.ref` (or, for VolumeSnapshotter, `spec.target.volumeClaimTemplates`)",
        )),
    }
    timeout(s.time_out.as_deref(), "spec.timeOut", out);
    temp_dir(s.temp_dir.as_ref(), "spec.tempDir", out);
    restore_hooks(s.hooks.as_ref(), "spec.hooks", out);
}

pub(super) fn restore_batch(s: &RestoreBatchSpec, out: &mut Vec<Issue>) {
    let driver = s.driver();
    repository_needed(driver, s.repository.is_some(), out);
    batch_members("RestoreBatch", s.members.as_deref(), driver, out);
    timeout(s.time_out.as_deref(), "spec.timeOut", out);
    restore_hooks(s.hooks.as_ref(), "spec.hooks", out);
}

impl BatchMember for RestoreTargetSpec {
    fn check_target(&self, driver: Driver, path: &str, out: &mut Vec<Issue>) -> bool {
        let Some(t) = &self.target else { return false };
        // Batches have no deprecated top-level rules to stand in for the target's.
        target::restore_target(t, driver, self.task.as_ref(), false, path, out);
        true
    }

    fn temp_dir(&self) -> Option<&EmptyDirSettings> {
        self.temp_dir.as_ref()
    }

    fn check_hooks(&self, path: &str, out: &mut Vec<Issue>) {
        restore_hooks(self.hooks.as_ref(), path, out);
    }
}

pub(super) fn restore_rules(rules: &[Rule], path: &str, out: &mut Vec<Issue>) {
    let mut catch_all = Vec::new();
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, r) in rules.iter().enumerate() {
        let p = format!("{path}[{i}]");
        let hosts = r.target_hosts();
        if hosts.is_empty() {
            catch_all.push(i);
        }
        for h in hosts {
            if let Some(prev) = seen.insert(h.as_str(), i)
                && prev != i
            {
                out.push(Issue::error(
                    &format!("{p}.targetHosts"),
                    format!("host `{h}` is already listed in rule {prev}; a host may appear in only one rule"),
                    format!("remove `{h}` from one of the rules"),
                ));
            }
        }
        let snaps = r.snapshots.as_ref().is_some_and(|s| !s.is_empty());
        let paths = r.paths.as_ref().is_some_and(|s| !s.is_empty());
        if snaps && paths {
            out.push(Issue::error(
                &p,
                "`snapshots` and `paths` are both set; a rule restores either explicit snapshots or the latest snapshot of paths",
                "keep `snapshots` or `paths`, and split the other into its own rule",
            ));
        }
        if !snaps && !paths {
            out.push(Issue::warning(
                &p,
                "the rule has neither `snapshots` nor `paths`, so it restores nothing",
                "add `paths: [...]` or `snapshots: [latest]`",
            ));
        }
        for (j, rp) in r.paths.iter().flatten().enumerate() {
            if !rp.starts_with('/') {
                out.push(Issue::error(
                    &format!("{p}.paths[{j}]"),
                    format!("`{rp}` is not an absolute path"),
                    "use the absolute path that was backed up",
                ));
            }
        }
    }
    if catch_all.len() > 1 {
        out.push(Issue::error(
            &format!("{path}[{}].targetHosts", catch_all[1]),
            format!("rules {catch_all:?} all have empty `targetHosts`; at most one rule may apply to every host"),
            "give all but one of them `targetHosts`",
        ));
    }
}
