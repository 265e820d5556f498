//! The Prometheus text exposition format (version 0.0.4), written by hand: the format is a few
//! lines per gauge, and metric names here are built at run time (legacy and v2022 pairs), which
//! `prometheus-client`'s registry, made for static names, does not fit.

use std::collections::HashSet;
use std::fmt::Write as _;

use crate::metric::Metric;

/// `Content-Type` of a body made by [`encode`].
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Why a sample cannot be written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("metric `{name}` cannot be pushed: {reason}")]
pub struct InvalidMetric {
    pub name: String,
    pub reason: String,
}

/// The samples as one text-format body: samples of one name grouped under one `# HELP` and
/// `# TYPE … gauge` header, in the order the names first appear. Rejects what the Pushgateway
/// would reject as a whole push (bad names, two helps for one name, a repeated series), so the
/// error names the metric instead of coming back as an HTTP 400.
pub fn encode(metrics: &[Metric]) -> Result<String, InvalidMetric> {
    let mut names: Vec<&str> = Vec::new();
    for metric in metrics {
        validate(metric)?;
        if !names.contains(&metric.name.as_str()) {
            names.push(&metric.name);
        }
    }
    let mut body = String::new();
    for name in names {
        let family: Vec<&Metric> = metrics.iter().filter(|m| m.name == name).collect();
        let help = &family[0].help;
        let mut series = HashSet::new();
        let _ = writeln!(body, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(body, "# TYPE {name} gauge");
        for metric in family {
            if metric.help != *help {
                return Err(invalid(
                    metric,
                    format!(
                        "two help texts for one name ({help:?} and {:?})",
                        metric.help
                    ),
                ));
            }
            let mut labels = metric.labels.clone();
            labels.sort();
            if !series.insert(labels) {
                return Err(invalid(
                    metric,
                    format!("the series {:?} appears twice in one push", metric.labels),
                ));
            }
            body.push_str(name);
            if !metric.labels.is_empty() {
                body.push('{');
                for (i, (key, value)) in metric.labels.iter().enumerate() {
                    if i > 0 {
                        body.push(',');
                    }
                    let _ = write!(body, "{key}=\"{}\"", escape_label_value(value));
                }
                body.push('}');
            }
            let _ = writeln!(body, " {}", format_value(metric.value));
        }
    }
    Ok(body)
}

/// A label value inside double quotes: `\` → `\\`, `"` → `\"`, newline → `\n`.
#[must_use]
pub fn escape_label_value(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => escaped.push_str("\\\\"),
            '"' => escaped.push_str("\\\""),
            '\n' => escaped.push_str("\\n"),
            c => escaped.push(c),
        }
    }
    escaped
}

/// A `# HELP` text: `\` → `\\`, newline → `\n` (quotes stay as they are).
#[must_use]
pub fn escape_help(help: &str) -> String {
    help.replace('\\', "\\\\").replace('\n', "\\n")
}

/// A sample value as Go's parser reads it: `NaN`, `+Inf`, `-Inf`, or the shortest decimal.
#[must_use]
pub fn format_value(value: f64) -> String {
    if value.is_nan() {
        "NaN".to_owned()
    } else if value.is_infinite() {
        if value > 0.0 { "+Inf" } else { "-Inf" }.to_owned()
    } else {
        format!("{value}")
    }
}

fn validate(metric: &Metric) -> Result<(), InvalidMetric> {
    if !is_metric_name(&metric.name) {
        return Err(invalid(
            metric,
            "a metric name is letters, digits, `_` and `:`, not starting with a digit".into(),
        ));
    }
    let mut seen = HashSet::new();
    for (key, _) in &metric.labels {
        if !is_label_name(key) {
            return Err(invalid(
                metric,
                format!(
                    "label name `{key}` is not letters, digits and `_` (not starting with a digit or `__`)"
                ),
            ));
        }
        if !seen.insert(key) {
            return Err(invalid(metric, format!("label `{key}` appears twice")));
        }
    }
    Ok(())
}

fn is_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    !name.starts_with("__")
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn invalid(metric: &Metric, reason: String) -> InvalidMetric {
    InvalidMetric {
        name: metric.name.clone(),
        reason,
    }
}

#[cfg(test)]
#[allow(clippy::float_cmp, reason = "gauge values in tests are exact in f64")]
mod tests {
    use super::*;
    use crate::labels::pair;

    #[test]
    fn samples_of_one_name_share_one_help_and_type_header() {
        let metrics = [
            Metric::gauge("stash_a", "A gauge", &[pair("hostname", "host-0")], 1.0),
            Metric::gauge("stash_b", "B gauge", &[], 2.5),
            Metric::gauge("stash_a", "A gauge", &[pair("hostname", "host-1")], 0.0),
        ];
        assert_eq!(
            encode(&metrics).unwrap(),
            "# HELP stash_a A gauge\n# TYPE stash_a gauge\n\
             stash_a{hostname=\"host-0\"} 1\nstash_a{hostname=\"host-1\"} 0\n\
             # HELP stash_b B gauge\n# TYPE stash_b gauge\nstash_b 2.5\n"
        );
    }

    #[test]
    fn label_values_escape_backslash_quote_and_newline_and_help_escapes_backslash_and_newline() {
        assert_eq!(
            escape_label_value("C:\\data \"x\"\nnext"),
            "C:\\\\data \\\"x\\\"\\nnext"
        );
        assert_eq!(escape_help("a \"b\" c\\d\ne"), "a \"b\" c\\\\d\\ne");
        let body = encode(&[Metric::gauge(
            "stash_a",
            "h",
            &[pair("name", "we\"ird\\")],
            1.0,
        )])
        .unwrap();
        assert!(
            body.contains("stash_a{name=\"we\\\"ird\\\\\"} 1\n"),
            "{body}"
        );
    }

    #[test]
    fn values_are_written_as_go_parses_them() {
        assert_eq!(format_value(1.0), "1");
        assert_eq!(format_value(1_700_000_000.25), "1700000000.25");
        assert_eq!(format_value(f64::NAN), "NaN");
        assert_eq!(format_value(f64::INFINITY), "+Inf");
        assert_eq!(format_value(f64::NEG_INFINITY), "-Inf");
    }

    #[test]
    fn bad_names_two_helps_and_repeated_series_are_rejected_naming_the_metric() {
        let err = encode(&[Metric::gauge("1stash", "h", &[], 1.0)]).unwrap_err();
        assert_eq!(err.name, "1stash");
        let err = encode(&[Metric::gauge("stash_a", "h", &[pair("__x", "v")], 1.0)]).unwrap_err();
        assert!(err.reason.contains("`__x`"), "{err}");
        let err = encode(&[
            Metric::gauge("stash_a", "one", &[], 1.0),
            Metric::gauge("stash_a", "two", &[pair("k", "v")], 1.0),
        ])
        .unwrap_err();
        assert!(err.reason.contains("two help texts"), "{err}");
        let err = encode(&[
            Metric::gauge("stash_a", "h", &[pair("a", "1"), pair("b", "2")], 1.0),
            Metric::gauge("stash_a", "h", &[pair("b", "2"), pair("a", "1")], 0.0),
        ])
        .unwrap_err();
        assert!(err.to_string().contains("appears twice"), "{err}");
    }
}
