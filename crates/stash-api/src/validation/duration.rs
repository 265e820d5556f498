//! Go `time.ParseDuration` syntax (`timeOut`, `retryConfig.delay`, `@every`): e.g. `30s`, `10m`, `1h30m`, `1.5h`.

/// Parses a Go duration into nanoseconds.
pub fn parse(s: &str) -> Result<i128, String> {
    let orig = s;
    let (neg, mut rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(format!("invalid duration `{orig}`"));
    }
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let num = &rest[..num_len];
        if num.is_empty() || num == "." || num.matches('.').count() > 1 {
            return Err(format!("invalid duration `{orig}`"));
        }
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let scale: f64 = match unit {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            "" => {
                return Err(format!(
                    "missing unit in duration `{orig}` (use ns, us, ms, s, m or h)"
                ));
            }
            other => {
                return Err(format!(
                    "unknown unit `{other}` in duration `{orig}` (use ns, us, ms, s, m or h)"
                ));
            }
        };
        let n: f64 = num
            .parse()
            .map_err(|_| format!("invalid duration `{orig}`"))?;
        total += n * scale;
    }
    #[allow(clippy::cast_possible_truncation)]
    let total = total as i128;
    Ok(if neg { -total } else { total })
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn parses_go_durations() {
        assert_eq!(parse("10m"), Ok(600_000_000_000));
        assert_eq!(parse("1h30m"), Ok(5_400_000_000_000));
        assert_eq!(parse("1.5h"), Ok(5_400_000_000_000));
        assert_eq!(parse("0"), Ok(0));
        assert_eq!(parse("-2s"), Ok(-2_000_000_000));
    }

    #[test]
    fn rejects_bad_durations() {
        assert!(parse("10").unwrap_err().contains("missing unit"));
        assert!(parse("1d").unwrap_err().contains("unknown unit `d`"));
        assert!(parse("").is_err());
        assert!(parse("h").is_err());
        assert!(parse("1..5h").is_err());
    }
}
