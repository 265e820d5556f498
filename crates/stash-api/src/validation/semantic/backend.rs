//! Where a Repository (or a BackupBlueprint's repository template) stores its data.

use crate::common::{Backend, LocalSpec};
use crate::labels::STASH_BINARY_DIR;
use crate::v1alpha1::{FromNamespaces, RepositorySpec, UsagePolicy};
use crate::validation::Issue;

pub(super) fn repository(s: &RepositorySpec, out: &mut Vec<Issue>) {
    storage(&s.backend, s.wipe_out, s.usage_policy.as_ref(), out);
}

/// The part of a Repository that a BackupBlueprint repeats as a template. Blueprint prefixes may carry
/// `${TARGET_*}` variables, but no check here looks inside a prefix, so both kinds share it.
pub(super) fn storage(
    b: &Backend,
    wipe: Option<bool>,
    usage: Option<&UsagePolicy>,
    out: &mut Vec<Issue>,
) {
    backend(b, "spec.backend", out);
    wipe_out(wipe, b, out);
    usage_policy(usage, out);
}

fn backend(b: &Backend, path: &str, out: &mut Vec<Issue>) {
    one_provider(b, path, out);
    if b.storage_secret_name
        .as_deref()
        .is_none_or(|s| s.trim().is_empty())
    {
        out.push(Issue::warning(
            &format!("{path}.storageSecretName"),
            "no storage Secret is named, but every backend needs `RESTIC_PASSWORD` from it",
            "set `storageSecretName` to a Secret in the Repository's namespace holding RESTIC_PASSWORD (and the provider's credentials)",
        ));
    }
    if let Some(local) = &b.local {
        local_backend(local, &format!("{path}.local"), out);
    }
    if let Some(s3) = &b.s3 {
        non_empty(
            &s3.endpoint,
            &format!("{path}.s3.endpoint"),
            "set the S3 server, e.g. `s3.amazonaws.com` or `https://minio.example:9000`",
            out,
        );
        non_empty(
            &s3.bucket,
            &format!("{path}.s3.bucket"),
            "set the bucket name",
            out,
        );
    }
    if let Some(gcs) = &b.gcs {
        non_empty(
            &gcs.bucket,
            &format!("{path}.gcs.bucket"),
            "set the bucket name",
            out,
        );
        max_conn(
            gcs.max_connections,
            &format!("{path}.gcs.maxConnections"),
            out,
        );
    }
    if let Some(az) = &b.azure {
        non_empty(
            &az.container,
            &format!("{path}.azure.container"),
            "set the blob container name",
            out,
        );
        max_conn(
            az.max_connections,
            &format!("{path}.azure.maxConnections"),
            out,
        );
    }
    if let Some(sw) = &b.swift {
        non_empty(
            &sw.container,
            &format!("{path}.swift.container"),
            "set the Swift container name",
            out,
        );
    }
    if let Some(b2) = &b.b2 {
        non_empty(
            &b2.bucket,
            &format!("{path}.b2.bucket"),
            "set the bucket name",
            out,
        );
        max_conn(
            b2.max_connections,
            &format!("{path}.b2.maxConnections"),
            out,
        );
    }
    if let Some(rest) = &b.rest {
        let url = rest.url.as_deref().unwrap_or_default();
        if url.trim().is_empty() {
            out.push(Issue::error(
                &format!("{path}.rest.url"),
                "the REST server URL is empty",
                "set `url`, e.g. `http://rest-server.demo.svc:8000/my-repo`",
            ));
        } else if !(url.starts_with("http://") || url.starts_with("https://")) {
            out.push(Issue::error(
                &format!("{path}.rest.url"),
                format!("`{url}` is not an http(s) URL"),
                "write the URL with its scheme, e.g. `http://rest-server.demo.svc:8000/my-repo`",
            ));
        }
    }
}

fn one_provider(b: &Backend, path: &str, out: &mut Vec<Issue>) {
    let providers = b.providers();
    match providers.len() {
        0 => out.push(Issue::error(
            path,
            "no storage provider is set",
            "set exactly one of `local`, `s3`, `gcs`, `azure`, `swift`, `b2`, `rest`",
        )),
        1 => {}
        _ => {
            let names: Vec<&str> = providers.iter().map(|p| p.as_str()).collect();
            out.push(Issue::error(
                path,
                format!(
                    "{} storage providers are set ({}); a Repository has exactly one backend",
                    names.len(),
                    names.join(", ")
                ),
                format!(
                    "keep one of `{}` and move the others to their own Repository",
                    names.join("`, `")
                ),
            ));
        }
    }
}

fn local_backend(local: &LocalSpec, path: &str, out: &mut Vec<Issue>) {
    let mp = local.mount_path.trim_end_matches('/');
    if !local.mount_path.starts_with('/') {
        out.push(Issue::error(
            &format!("{path}.mountPath"),
            format!("`{}` is not an absolute path", local.mount_path),
            "use an absolute directory such as `/safe/data`",
        ));
    } else if mp.is_empty() {
        out.push(Issue::error(
            &format!("{path}.mountPath"),
            "`/` cannot be the repository directory",
            "use a dedicated directory such as `/safe/data`",
        ));
    } else if mp == STASH_BINARY_DIR || local.mount_path.starts_with("/stash/") {
        out.push(Issue::error(
            &format!("{path}.mountPath"),
            format!(
                "`{}` is `/stash` or under it, where the stash binary lives",
                local.mount_path
            ),
            "mount the repository elsewhere, e.g. `/safe/data`",
        ));
    }
    let sources = local.volume_source.set_sources();
    match sources.len() {
        0 => out.push(Issue::error(
            path,
            "no volume source is set for the local backend",
            "add one volume source next to mountPath, e.g. `persistentVolumeClaim: {claimName: repo-pvc}`, `hostPath: {path: /data}` or `nfs: {server: ..., path: ...}`",
        )),
        1 => {}
        _ => out.push(Issue::error(
            path,
            format!("several volume sources are set ({})", sources.join(", ")),
            "keep exactly one volume source",
        )),
    }
}

fn non_empty(v: &str, path: &str, fix: &str, out: &mut Vec<Issue>) {
    if v.trim().is_empty() {
        out.push(Issue::error(path, "the value is empty", fix));
    }
}

fn max_conn(v: Option<i64>, path: &str, out: &mut Vec<Issue>) {
    if let Some(n) = v
        && n < 0
    {
        out.push(Issue::error(
            path,
            format!("{n} is negative"),
            "use 0 (restic's default) or a positive number of connections",
        ));
    }
}

fn wipe_out(wipe: Option<bool>, b: &Backend, out: &mut Vec<Issue>) {
    if wipe == Some(true) {
        for (set, name) in [(b.local.is_some(), "local"), (b.b2.is_some(), "b2")] {
            if set {
                out.push(Issue::error(
                    "spec.wipeOut",
                    format!("`wipeOut: true` is not supported for the `{name}` backend"),
                    "set `wipeOut: false` and delete the data by hand",
                ));
            }
        }
    }
}

fn usage_policy(up: Option<&UsagePolicy>, out: &mut Vec<Issue>) {
    let Some(an) = up.and_then(|u| u.allowed_namespaces.as_ref()) else {
        return;
    };
    let path = "spec.usagePolicy.allowedNamespaces";
    match (an.from.unwrap_or_default(), an.selector.is_some()) {
        (FromNamespaces::Selector, false) => out.push(Issue::error(
            &format!("{path}.selector"),
            "`from: Selector` needs a namespace selector",
            "add `selector.matchLabels` (labels of the namespaces allowed to use this Repository)",
        )),
        (FromNamespaces::Same | FromNamespaces::All, true) => out.push(Issue::warning(
            &format!("{path}.selector"),
            "`selector` is ignored unless `from` is `Selector`",
            "set `from: Selector` or remove `selector`",
        )),
        _ => {}
    }
}
