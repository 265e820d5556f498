//! When and how a backup invoker runs: schedule, repository, retention, history, timeouts, retries,
//! temporary directory and hooks. Restore invokers reuse the timeout, tempDir and hook checks.

use super::{BatchMember, backend, batch_members, target};
use crate::common::{
    BackupHooks, Driver, EmptyDirSettings, Handler, RestoreHooks, RetentionPolicy, RetryConfig,
};
use crate::v1beta1::{
    BackupBatchSpec, BackupBlueprintSpec, BackupConfigurationSpec, BackupConfigurationTemplateSpec,
};
use crate::validation::{Issue, cron, duration};

pub(super) fn backup_configuration(s: &BackupConfigurationSpec, out: &mut Vec<Issue>) {
    schedule(s.schedule.as_deref(), "spec.schedule", out);
    let driver = s.driver();
    repository_needed(driver, s.repository.is_some(), out);
    match &s.target {
        Some(t) => target::backup_target(t, driver, s.task.as_ref(), "spec.target", out),
        None if driver == Driver::VolumeSnapshotter => out.push(Issue::error(
            "spec.target",
            "the VolumeSnapshotter driver needs a target",
            "set `spec.target.ref` to the workload or PVC to snapshot",
        )),
        None => {}
    }
    retention(&s.retention_policy, "spec.retentionPolicy", out);
    invoker_common(
        s.backup_history_limit,
        s.time_out.as_deref(),
        s.retry_config.as_ref(),
        out,
    );
    temp_dir(s.temp_dir.as_ref(), "spec.tempDir", out);
    backup_hooks(s.hooks.as_ref(), "spec.hooks", out);
}

pub(super) fn backup_batch(s: &BackupBatchSpec, out: &mut Vec<Issue>) {
    schedule(s.schedule.as_deref(), "spec.schedule", out);
    let driver = s.driver();
    repository_needed(driver, s.repository.is_some(), out);
    batch_members("BackupBatch", s.members.as_deref(), driver, out);
    retention(&s.retention_policy, "spec.retentionPolicy", out);
    invoker_common(
        s.backup_history_limit,
        s.time_out.as_deref(),
        s.retry_config.as_ref(),
        out,
    );
    backup_hooks(s.hooks.as_ref(), "spec.hooks", out);
}

impl BatchMember for BackupConfigurationTemplateSpec {
    fn check_target(&self, driver: Driver, path: &str, out: &mut Vec<Issue>) -> bool {
        let Some(t) = &self.target else { return false };
        target::backup_target(t, driver, self.task.as_ref(), path, out);
        true
    }

    fn temp_dir(&self) -> Option<&EmptyDirSettings> {
        self.temp_dir.as_ref()
    }

    fn check_hooks(&self, path: &str, out: &mut Vec<Issue>) {
        backup_hooks(self.hooks.as_ref(), path, out);
    }
}

/// A blueprint is a Repository plus a BackupConfiguration without a target, so it gets both sets of
/// checks.
pub(super) fn backup_blueprint(s: &BackupBlueprintSpec, out: &mut Vec<Issue>) {
    backend::storage(&s.backend, s.wipe_out, s.usage_policy.as_ref(), out);
    schedule(s.schedule.as_deref(), "spec.schedule", out);
    retention(&s.retention_policy, "spec.retentionPolicy", out);
    invoker_common(
        s.backup_history_limit,
        s.time_out.as_deref(),
        s.retry_config.as_ref(),
        out,
    );
    temp_dir(s.temp_dir.as_ref(), "spec.tempDir", out);
    backup_hooks(s.hooks.as_ref(), "spec.hooks", out);
}

fn schedule(s: Option<&str>, path: &str, out: &mut Vec<Issue>) {
    if let Some(s) = s
        && let Err(e) = cron::check(s)
    {
        out.push(Issue::error(path, e.message, e.fix));
    }
}

pub(super) fn repository_needed(driver: Driver, has_repo: bool, out: &mut Vec<Issue>) {
    match (driver, has_repo) {
        (Driver::Restic, false) => out.push(Issue::error(
            "spec.repository",
            "the Restic driver needs a Repository",
            "set `spec.repository.name` to a Repository (and `namespace` if it lives in another namespace)",
        )),
        (Driver::VolumeSnapshotter, true) => out.push(Issue::warning(
            "spec.repository",
            "the VolumeSnapshotter driver does not use a Repository",
            "remove `spec.repository`",
        )),
        _ => {}
    }
}

fn invoker_common(
    history: Option<i32>,
    time_out: Option<&str>,
    retry: Option<&RetryConfig>,
    out: &mut Vec<Issue>,
) {
    if let Some(n) = history
        && n < 0
    {
        out.push(Issue::error(
            "spec.backupHistoryLimit",
            format!("{n} is negative"),
            "use 0 or more (default 1)",
        ));
    }
    timeout(time_out, "spec.timeOut", out);
    if let Some(r) = retry {
        if let Some(n) = r.max_retry
            && n < 0
        {
            out.push(Issue::error(
                "spec.retryConfig.maxRetry",
                format!("{n} is negative"),
                "use 0 or more (default 1)",
            ));
        }
        if let Some(d) = &r.delay {
            go_duration(d, "spec.retryConfig.delay", out);
        }
    }
}

pub(super) fn timeout(t: Option<&str>, path: &str, out: &mut Vec<Issue>) {
    if let Some(t) = t {
        go_duration(t, path, out);
    }
}

fn go_duration(d: &str, path: &str, out: &mut Vec<Issue>) {
    match duration::parse(d) {
        Ok(n) if n < 0 => out.push(Issue::error(
            path,
            format!("`{d}` is negative"),
            "use a positive Go duration such as `30m` or `1h30m`",
        )),
        Ok(_) => {}
        Err(e) => out.push(Issue::error(
            path,
            e,
            "use a Go duration such as `30m`, `2h` or `1h30m`",
        )),
    }
}

fn retention(r: &RetentionPolicy, path: &str, out: &mut Vec<Issue>) {
    if r.name.trim().is_empty() {
        out.push(Issue::error(
            &format!("{path}.name"),
            "the retention policy has no name",
            "set `name`, e.g. `keep-last-5`",
        ));
    }
    for (field, n) in r.keep_counts() {
        if let Some(n) = n
            && n < 0
        {
            out.push(Issue::error(
                &format!("{path}.{field}"),
                format!("{n} is negative"),
                format!("use a positive `{field}` or remove it"),
            ));
        }
    }
    if let Some(tags) = &r.keep_tags {
        for (i, t) in tags.iter().enumerate() {
            if t.trim().is_empty() {
                out.push(Issue::error(
                    &format!("{path}.keepTags[{i}]"),
                    "the tag is empty",
                    "remove the empty entry",
                ));
            }
        }
    }
    if !r.has_keep_rule() {
        out.push(Issue::warning(
            path,
            "no keep rule is set (keepLast, keepHourly, keepDaily, keepWeekly, keepMonthly, keepYearly, keepTags), so no snapshot is ever forgotten",
            "add a keep rule, e.g. `keepLast: 5`",
        ));
    }
    if r.dry_run == Some(true) {
        out.push(Issue::warning(
            &format!("{path}.dryRun"),
            "`dryRun: true` only reports what would be forgotten; nothing is removed",
            "set `dryRun: false` once the policy looks right",
        ));
    }
}

pub(super) fn temp_dir(t: Option<&EmptyDirSettings>, path: &str, out: &mut Vec<Issue>) {
    if let Some(m) = t.and_then(|t| t.medium.as_deref())
        && !(m.is_empty() || m == "Memory" || m == "HugePages" || m.starts_with("HugePages-"))
    {
        out.push(Issue::error(
            &format!("{path}.medium"),
            format!("unsupported emptyDir medium `{m}`"),
            "use `Memory`, or leave `medium` empty for node disk",
        ));
    }
}

fn handler(h: &Handler, path: &str, out: &mut Vec<Issue>) {
    if !h.has_action() {
        out.push(Issue::error(
            path,
            "the hook has no action",
            "set one of `exec`, `httpGet`, `httpPost`, `tcpSocket`",
        ));
    }
    if let Some(exec) = &h.exec
        && exec.command.as_ref().is_none_or(Vec::is_empty)
    {
        out.push(Issue::error(
            &format!("{path}.exec.command"),
            "the exec hook has no command",
            "set `command`, e.g. `[\"/bin/sh\", \"-c\", \"echo hello\"]`",
        ));
    }
}

fn backup_hooks(h: Option<&BackupHooks>, path: &str, out: &mut Vec<Issue>) {
    let Some(h) = h else { return };
    if let Some(pre) = &h.pre_backup {
        handler(pre, &format!("{path}.preBackup"), out);
    }
    if let Some(post) = &h.post_backup {
        handler(&post.handler, &format!("{path}.postBackup"), out);
    }
}

pub(super) fn restore_hooks(h: Option<&RestoreHooks>, path: &str, out: &mut Vec<Issue>) {
    let Some(h) = h else { return };
    if let Some(pre) = &h.pre_restore {
        handler(pre, &format!("{path}.preRestore"), out);
    }
    if let Some(post) = &h.post_restore {
        handler(&post.handler, &format!("{path}.postRestore"), out);
    }
}
