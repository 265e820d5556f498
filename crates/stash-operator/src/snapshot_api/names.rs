//! Snapshot object names: `<repository>-<first 8 hex digits of the restic snapshot id>` (§14.1).

/// Length of the id part of a Snapshot name, restic's short id.
pub const SHORT_ID_LEN: usize = 8;

/// The Snapshot name of the snapshot `id` (full or short) in Repository `repository`.
#[must_use]
pub fn snapshot_name(repository: &str, id: &str) -> String {
    let short = id.get(..SHORT_ID_LEN).unwrap_or(id);
    format!("{repository}-{short}")
}

/// The Repository name and short snapshot id a Snapshot name stands for, or `None` when the name
/// does not end in `-<8 hex digits>` after a non-empty Repository name.
#[must_use]
pub fn parse_snapshot_name(name: &str) -> Option<(&str, &str)> {
    let (repository, id) = name.rsplit_once('-')?;
    let is_short_id = id.len() == SHORT_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    (is_short_id && !repository.is_empty()).then_some((repository, id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_is_named_after_its_repository_and_short_id() {
        let id = "4bba301e1c8e4e6f4e4bd5c1f7e5e0d8a1b2c3d4e5f60718293a4b5c6d7e8f90";
        assert_eq!(snapshot_name("gcs-repo", id), "gcs-repo-4bba301e");
        assert_eq!(snapshot_name("gcs-repo", "4bba301e"), "gcs-repo-4bba301e");
    }

    #[test]
    fn a_name_splits_at_the_last_dash_into_repository_and_short_id() {
        assert_eq!(
            parse_snapshot_name("local-repo-0a1b2c3d"),
            Some(("local-repo", "0a1b2c3d"))
        );
        assert_eq!(
            parse_snapshot_name(&snapshot_name("my-repo", "deadbeef00")),
            Some(("my-repo", "deadbeef"))
        );
    }

    #[test]
    fn names_without_an_eight_digit_lowercase_hex_id_are_no_snapshot_names() {
        for name in [
            "repo",
            "repo-0a1b2c3",
            "repo-0a1b2c3d4",
            "repo-0A1B2C3D",
            "repo-zzzzzzzz",
            "-0a1b2c3d",
            "",
        ] {
            assert_eq!(parse_snapshot_name(name), None, "{name:?}");
        }
    }
}
