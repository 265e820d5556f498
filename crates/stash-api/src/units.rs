//! The human strings Stash writes into session status (§5.3) and reads back for metrics (§13.2):
//! sizes as `N B` / `%.3f KiB|MiB|GiB|TiB`, `processingTime` as `M:SS` or `H:MM:SS`, durations as Go
//! writes them (`43s`, `2m40s`, `1h2m3s`).

use std::time::Duration;

const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];

/// A byte count as Stash's status shows it: `512 B`, `1.500 KiB`, `3.250 GiB`.
#[must_use]
pub fn format_size(bytes: u64) -> String {
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    #[allow(clippy::cast_precision_loss, reason = "a display value")]
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.3} {}", UNITS[unit])
}

/// A size string back into bytes (what Stash does before pushing host size metrics); `None` when
/// the string is not one [`format_size`] or restic writes (`B`, `KiB` … `TiB`, optional space).
#[must_use]
pub fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let exponent = match unit.trim() {
        "B" | "" => 0,
        "KiB" => 1,
        "MiB" => 2,
        "GiB" => 3,
        "TiB" => 4,
        _ => return None,
    };
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "a non-negative size rounded to whole bytes"
    )]
    Some((number * 1024f64.powi(exponent)).round() as u64)
}

/// `processingTime` of a snapshot: `M:SS` below an hour, `H:MM:SS` above (restic's format).
#[must_use]
pub fn format_processing_time(elapsed: Duration) -> String {
    let total = elapsed.as_secs();
    let (hours, minutes, seconds) = (total / 3600, total / 60 % 60, total % 60);
    if hours > 0 {
        format!("{hours}:{minutes:02}:{seconds:02}")
    } else {
        format!("{minutes}:{seconds:02}")
    }
}

/// A `processingTime` string back into seconds; `None` when it is not `M:SS` or `H:MM:SS`.
#[must_use]
pub fn parse_processing_time(text: &str) -> Option<u64> {
    let parts: Vec<u64> = text
        .trim()
        .split(':')
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    match parts.as_slice() {
        [minutes, seconds] => Some(minutes * 60 + seconds),
        [hours, minutes, seconds] => Some(hours * 3600 + minutes * 60 + seconds),
        _ => None,
    }
}

/// A duration as Go's `time.Duration.String()` writes it after rounding to whole seconds, which is
/// what Stash stores in `sessionDuration` and a host's `duration`: `0s`, `43s`, `2m40s`, `1h0m5s`.
#[must_use]
pub fn format_go_duration(elapsed: Duration) -> String {
    let total = elapsed.as_secs() + u64::from(elapsed.subsec_millis() >= 500);
    let (hours, minutes, seconds) = (total / 3600, total / 60 % 60, total % 60);
    if hours > 0 {
        format!("{hours}h{minutes}m{seconds}s")
    } else if minutes > 0 {
        format!("{minutes}m{seconds}s")
    } else {
        format!("{seconds}s")
    }
}

/// A Go duration string (`1h2m3s`, `1.5s`, `250ms`) in seconds, for metrics; `None` when malformed.
#[must_use]
pub fn parse_go_duration(text: &str) -> Option<f64> {
    #[allow(clippy::cast_precision_loss, reason = "seconds for a gauge")]
    crate::validation::duration::parse(text.trim())
        .ok()
        .map(|nanos| nanos as f64 / 1e9)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_below_a_kibibyte_are_whole_bytes_and_above_have_three_decimals() {
        assert_eq!(format_size(0), "0 B");
        assert_eq!(format_size(1023), "1023 B");
        assert_eq!(format_size(1536), "1.500 KiB");
        assert_eq!(format_size(5 * 1024 * 1024), "5.000 MiB");
        assert_eq!(
            format_size(3 * 1024 * 1024 * 1024 + 1024 * 1024 * 256),
            "3.250 GiB"
        );
        assert_eq!(format_size(u64::MAX).split(' ').nth(1), Some("TiB"));
    }

    #[test]
    fn sizes_parse_back_to_bytes() {
        assert_eq!(parse_size("512 B"), Some(512));
        assert_eq!(parse_size("1.500 KiB"), Some(1536));
        assert_eq!(parse_size("5.000 MiB"), Some(5 * 1024 * 1024));
        assert_eq!(parse_size("2GiB"), Some(2 * 1024 * 1024 * 1024));
        assert_eq!(parse_size("ten bytes"), None);
        assert_eq!(parse_size("1.0 PB"), None);
    }

    #[test]
    fn processing_time_is_minutes_and_seconds_or_hours_minutes_seconds() {
        assert_eq!(format_processing_time(Duration::from_secs(7)), "0:07");
        assert_eq!(format_processing_time(Duration::from_secs(160)), "2:40");
        assert_eq!(format_processing_time(Duration::from_secs(3725)), "1:02:05");
        assert_eq!(parse_processing_time("2:40"), Some(160));
        assert_eq!(parse_processing_time("1:02:05"), Some(3725));
        assert_eq!(parse_processing_time("soon"), None);
    }

    #[test]
    fn go_durations_round_to_whole_seconds_like_stash_session_duration() {
        assert_eq!(format_go_duration(Duration::from_millis(400)), "0s");
        assert_eq!(format_go_duration(Duration::from_millis(42_600)), "43s");
        assert_eq!(format_go_duration(Duration::from_secs(160)), "2m40s");
        assert_eq!(format_go_duration(Duration::from_secs(3605)), "1h0m5s");
        assert_eq!(parse_go_duration("2m40s"), Some(160.0));
        assert_eq!(parse_go_duration("1.5s"), Some(1.5));
        assert_eq!(parse_go_duration("later"), None);
    }
}
