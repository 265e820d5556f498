//! restic-style include/exclude patterns for restore.
//!
//! A pattern starting with `/` is anchored at the snapshot root; any other pattern may match at
//! any depth (`*.log` matches `/var/app/x.log`). `*` stays within one path component, `**`
//! spans several. A pattern that matches a directory applies to everything below it.

use std::path::Path;

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

use crate::EngineError;

#[derive(Debug, Clone)]
pub(crate) struct PatternSet {
    set: GlobSet,
    empty: bool,
}

impl PatternSet {
    pub(crate) fn new(option: &'static str, patterns: &[String]) -> Result<Self, EngineError> {
        let mut builder = GlobSetBuilder::new();
        for pattern in patterns {
            let trimmed = pattern.trim_end_matches('/');
            let anchored = if trimmed.starts_with('/') {
                trimmed.to_string()
            } else {
                format!("**/{trimmed}")
            };
            let glob = GlobBuilder::new(&anchored)
                .literal_separator(true)
                .build()
                .map_err(|source| EngineError::InvalidPattern {
                    option,
                    pattern: pattern.clone(),
                    source,
                })?;
            builder.add(glob);
        }
        let set = builder
            .build()
            .map_err(|source| EngineError::InvalidPattern {
                option,
                pattern: patterns.join(" "),
                source,
            })?;
        Ok(Self {
            set,
            empty: patterns.is_empty(),
        })
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.empty
    }

    /// `path` is the absolute path inside the snapshot (`/data/app/x.log`).
    pub(crate) fn matches(&self, path: &Path) -> bool {
        !self.empty && self.set.is_match(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(patterns: &[&str]) -> PatternSet {
        PatternSet::new(
            "--exclude",
            &patterns.iter().map(ToString::to_string).collect::<Vec<_>>(),
        )
        .unwrap()
    }

    #[test]
    fn unanchored_patterns_match_at_any_depth() {
        let s = set(&["*.log"]);
        assert!(s.matches(Path::new("/var/app/x.log")));
        assert!(s.matches(Path::new("/x.log")));
        assert!(!s.matches(Path::new("/var/app/x.log.gz")));
    }

    #[test]
    fn anchored_patterns_match_from_the_root_only() {
        let s = set(&["/data/cache"]);
        assert!(s.matches(Path::new("/data/cache")));
        assert!(!s.matches(Path::new("/other/data/cache")));
    }

    #[test]
    fn star_stays_within_one_component_and_double_star_spans_many() {
        assert!(!set(&["/data/*"]).matches(Path::new("/data/a/b")));
        assert!(set(&["/data/**"]).matches(Path::new("/data/a/b")));
    }

    #[test]
    fn an_invalid_pattern_is_named_in_the_error() {
        let err = PatternSet::new("--include", &["/a/[".to_string()])
            .unwrap_err()
            .to_string();
        assert!(err.contains("--include") && err.contains("/a/["), "{err}");
    }
}
