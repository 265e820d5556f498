//! `kubectl stash version`: which stash-rs the plugin is.

/// `kubectl-stash <version>`, the version of the `stash` binary the plugin is.
#[must_use]
pub fn line() -> String {
    format!("kubectl-stash {}", env!("CARGO_PKG_VERSION"))
}
