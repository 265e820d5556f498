//! Cron schedule syntax as Kubernetes CronJob accepts it (robfig/cron `ParseStandard`): five fields
//! (minute hour day-of-month month day-of-week) or a descriptor (`@hourly`, `@every 1h30m`, ...).

use super::duration;

/// Why a schedule is rejected: the message and the fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleError {
    pub message: String,
    pub fix: String,
}

const FIELDS: [(&str, u32, u32); 5] = [
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day of month", 1, 31),
    ("month", 1, 12),
    ("day of week", 0, 6),
];
const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const DAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];
const DESCRIPTORS: [&str; 7] = [
    "@yearly",
    "@annually",
    "@monthly",
    "@weekly",
    "@daily",
    "@midnight",
    "@hourly",
];
const GENERIC_FIX: &str = "use five space-separated fields `minute hour day-of-month month day-of-week` (e.g. `*/5 * * * *`) or a descriptor such as `@daily` or `@every 1h`";

/// Checks a CronJob schedule.
pub fn check(schedule: &str) -> Result<(), ScheduleError> {
    let s = schedule.trim();
    if s.is_empty() {
        return Err(err("the schedule is empty".into(), GENERIC_FIX));
    }
    if s.starts_with("TZ=") || s.starts_with("CRON_TZ=") {
        return Err(err(
            format!("`{s}` sets a time zone inside the schedule, which Kubernetes CronJobs reject"),
            "remove the `TZ=`/`CRON_TZ=` prefix; the trigger CronJob runs in the controller's time zone",
        ));
    }
    if let Some(rest) = s.strip_prefix("@every") {
        let d = rest.trim();
        if rest.len() == d.len() || d.is_empty() {
            return Err(err(
                format!("`{s}` has no interval"),
                "write `@every <Go duration>`, e.g. `@every 1h30m`",
            ));
        }
        return match duration::parse(d) {
            Ok(n) if n > 0 => Ok(()),
            Ok(_) => Err(err(
                format!("`{s}` has a zero interval"),
                "use a positive interval, e.g. `@every 10m`",
            )),
            Err(e) => Err(err(
                format!("`{s}`: {e}"),
                "write `@every <Go duration>`, e.g. `@every 1h30m`",
            )),
        };
    }
    if s.starts_with('@') {
        return if DESCRIPTORS.contains(&s.to_ascii_lowercase().as_str()) {
            Ok(())
        } else {
            Err(err(
                format!("unknown descriptor `{s}`"),
                "use one of @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly or `@every <duration>`",
            ))
        };
    }
    let fields: Vec<&str> = s.split_whitespace().collect();
    if fields.len() != 5 {
        return Err(err(
            format!(
                "`{s}` has {} fields, a cron schedule needs exactly 5",
                fields.len()
            ),
            GENERIC_FIX,
        ));
    }
    for (field, &(name, min, max)) in fields.iter().zip(FIELDS.iter()) {
        for part in field.split(',') {
            check_part(part, name, min, max)
                .map_err(|m| err(format!("`{s}`: {name} field `{field}`: {m}"), GENERIC_FIX))?;
        }
    }
    Ok(())
}

fn err(message: String, fix: &str) -> ScheduleError {
    ScheduleError {
        message,
        fix: fix.to_owned(),
    }
}

fn check_part(part: &str, name: &str, min: u32, max: u32) -> Result<(), String> {
    let (range, step) = match part.split_once('/') {
        Some((r, st)) => (r, Some(st)),
        None => (part, None),
    };
    if let Some(st) = step {
        let n: u32 = st
            .parse()
            .map_err(|_| format!("step `{st}` is not a number"))?;
        if n == 0 {
            return Err("step must be greater than 0".into());
        }
    }
    if range == "*" || range == "?" {
        return Ok(());
    }
    let (lo, hi) = if let Some((a, b)) = range.split_once('-') {
        (value(a, name, min, max)?, value(b, name, min, max)?)
    } else {
        let v = value(range, name, min, max)?;
        (v, v)
    };
    if lo > hi {
        return Err(format!("range start {lo} is beyond its end {hi}"));
    }
    Ok(())
}

fn value(v: &str, name: &str, min: u32, max: u32) -> Result<u32, String> {
    if v.is_empty() {
        return Err("empty value".into());
    }
    let named = match name {
        "month" => MONTHS
            .iter()
            .position(|m| m.eq_ignore_ascii_case(v))
            .map(|i| u32::try_from(i).unwrap_or(0) + 1),
        "day of week" => DAYS
            .iter()
            .position(|d| d.eq_ignore_ascii_case(v))
            .map(|i| u32::try_from(i).unwrap_or(0)),
        _ => None,
    };
    let n = match named {
        Some(n) => n,
        None => v
            .parse::<u32>()
            .map_err(|_| format!("`{v}` is not a number"))?,
    };
    if n < min || n > max {
        return Err(format!("{n} is out of range {min}-{max}"));
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::check;

    #[test]
    fn accepts_what_kubernetes_cronjobs_accept() {
        for s in [
            "*/5 * * * *",
            "* * * * *",
            "0 0 * * 0",
            "0 2 1-15/2 JAN-jun mon,wed,FRI",
            "30 4 ? * *",
            "5/15 * * * *",
            "@daily",
            "@Hourly",
            "@every 1h30m",
        ] {
            assert_eq!(check(s), Ok(()), "{s}");
        }
    }

    #[test]
    fn rejects_malformed_schedules_with_the_reason() {
        for (s, want) in [
            ("*/5 * * *", "has 4 fields"),
            ("60 * * * *", "60 is out of range 0-59"),
            ("* 24 * * *", "24 is out of range 0-23"),
            ("* * 0 * *", "0 is out of range 1-31"),
            ("* * * 13 *", "13 is out of range 1-12"),
            ("* * * * 7", "7 is out of range 0-6"),
            ("*/0 * * * *", "step must be greater than 0"),
            ("5-1 * * * *", "range start 5 is beyond its end 1"),
            ("every 5 minutes", "has 3 fields"),
            ("@fortnightly", "unknown descriptor"),
            ("@every", "has no interval"),
            ("@every 5", "missing unit"),
            ("TZ=UTC 0 * * * *", "time zone"),
            ("", "empty"),
        ] {
            let e = check(s).expect_err(s);
            assert!(
                e.message.contains(want),
                "{s}: {} should contain {want}",
                e.message
            );
        }
    }
}
