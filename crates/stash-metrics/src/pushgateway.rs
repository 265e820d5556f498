//! Pushing to a Prometheus Pushgateway with "add" semantics (`POST /metrics/job/<job>`, §13.1):
//! metrics of the same name in the same group are replaced, every other metric stays.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::metric::Metric;
use crate::text_format::{self, InvalidMetric};

/// How long to wait for the TCP connection: the gateway is a sidecar in the cluster.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a whole push may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How much of a rejection's body goes into the error.
const MAX_BODY_IN_ERROR: usize = 512;

/// Why a push failed. Each message names the URL and what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error(
        "Pushgateway URL `{url}` is not usable: {reason}; give it as http://host:port, e.g. \
         http://stash-operator.kube-system.svc:56789 (the operator's --pushgateway-url)"
    )]
    InvalidUrl { url: String, reason: String },

    #[error("failed to set up the HTTP client for the Pushgateway at {url}")]
    Client {
        url: String,
        #[source]
        source: reqwest::Error,
    },

    #[error(
        "no Pushgateway job name for {url}; it is <lowercase invoker kind>-<namespace>-<name> \
         (stash_metrics::job_name)"
    )]
    EmptyJob { url: String },

    #[error("not pushed to {url}")]
    InvalidMetric {
        url: String,
        #[source]
        source: InvalidMetric,
    },

    #[error(
        "failed to push metrics to the Pushgateway at {url}: it did not answer; check that the \
         Pushgateway runs there (the `pushgateway` container of the operator pod) and that \
         --pushgateway-url points at it"
    )]
    Unreachable {
        url: String,
        #[source]
        source: reqwest::Error,
    },

    #[error(
        "the Pushgateway at {url} rejected the metrics with HTTP {status}: {body}; a 400 means \
         they clash with metrics another client pushed there (same name, another type), which \
         deleting that group (DELETE /metrics/job/<job>) clears"
    )]
    Rejected {
        url: String,
        status: u16,
        body: String,
    },
}

impl PushError {
    /// Whether pushing again later may succeed (the gateway was down or answered 5xx).
    #[must_use]
    pub fn is_temporary(&self) -> bool {
        match self {
            Self::Unreachable { .. } => true,
            Self::Rejected { status, .. } => *status >= 500,
            Self::InvalidUrl { .. }
            | Self::Client { .. }
            | Self::EmptyJob { .. }
            | Self::InvalidMetric { .. } => false,
        }
    }
}

/// A Pushgateway at a base URL (`http://127.0.0.1:9091`, or with a path prefix).
#[derive(Clone, Debug)]
pub struct Pushgateway {
    base_url: String,
    client: reqwest::Client,
}

impl Pushgateway {
    /// Checks the URL (http or https, with a host) and builds the client; connects to nothing.
    pub fn new(base_url: &str) -> Result<Self, PushError> {
        let invalid = |reason: String| PushError::InvalidUrl {
            url: base_url.to_owned(),
            reason,
        };
        let parsed = reqwest::Url::parse(base_url.trim()).map_err(|e| invalid(e.to_string()))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(invalid(format!(
                "the scheme is `{}`, not http or https",
                parsed.scheme()
            )));
        }
        if parsed.host_str().is_none_or(str::is_empty) {
            return Err(invalid("it has no host".into()));
        }
        if parsed.query().is_some() || parsed.fragment().is_some() {
            return Err(invalid("it has a query or fragment".into()));
        }
        let base_url = parsed.as_str().trim_end_matches('/').to_owned();
        let client = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(|source| PushError::Client {
                url: base_url.clone(),
                source,
            })?;
        Ok(Self { base_url, client })
    }

    /// The base URL, without a trailing `/`.
    #[must_use]
    pub fn url(&self) -> &str {
        &self.base_url
    }

    /// Adds `metrics` to the group of `job` (`POST /metrics/job/<job>`): samples with the names
    /// pushed replace that group's samples of those names; all other metrics stay. Nothing is
    /// sent for an empty slice. Host metrics of a target with several hosts (`StatefulSet`,
    /// `DaemonSet`) replace each other here: push those with [`Pushgateway::push_grouped`] and
    /// `("hostname", host)`, which keeps one group per host under the same `job`.
    pub async fn push(&self, job: &str, metrics: &[Metric]) -> Result<(), PushError> {
        self.push_grouped(job, &[], metrics).await
    }

    /// [`Pushgateway::push`] into the group of `job` and extra grouping labels
    /// (`/metrics/job/<job>/<label>/<value>…`). Hosts pushing the same names concurrently each
    /// need their own group (e.g. `hostname`), or the last push replaces the others' samples.
    pub async fn push_grouped(
        &self,
        job: &str,
        grouping: &[(&str, &str)],
        metrics: &[Metric],
    ) -> Result<(), PushError> {
        let url = self.group_url(job, grouping);
        if job.is_empty() {
            return Err(PushError::EmptyJob { url });
        }
        if metrics.is_empty() {
            return Ok(());
        }
        let body = text_format::encode(metrics).map_err(|source| PushError::InvalidMetric {
            url: url.clone(),
            source,
        })?;
        let response = self
            .client
            .post(&url)
            .header(reqwest::header::CONTENT_TYPE, text_format::CONTENT_TYPE)
            .body(body)
            .send()
            .await
            .map_err(|source| PushError::Unreachable {
                url: url.clone(),
                source,
            })?;
        let status = response.status();
        if !status.is_success() {
            let mut body = response.text().await.unwrap_or_default();
            if body.len() > MAX_BODY_IN_ERROR {
                let cut = (0..=MAX_BODY_IN_ERROR)
                    .rev()
                    .find(|&i| body.is_char_boundary(i))
                    .unwrap_or(0);
                body.truncate(cut);
                body.push('…');
            }
            return Err(PushError::Rejected {
                url,
                status: status.as_u16(),
                body: body.trim().to_owned(),
            });
        }
        tracing::debug!(url, samples = metrics.len(), "metrics pushed");
        Ok(())
    }

    /// The URL of a group: `<base>/metrics/job/<job>[/<label>/<value>…]`, each value written
    /// plainly when it is URL-safe, else as `<label>@base64/<url-safe base64>` (Pushgateway's
    /// encoding for values with `/` and other characters; `=` for an empty value).
    #[must_use]
    pub fn group_url(&self, job: &str, grouping: &[(&str, &str)]) -> String {
        let mut url = format!("{}/metrics", self.base_url);
        for (label, value) in std::iter::once(&("job", job)).chain(grouping) {
            url.push('/');
            url.push_str(&path_segment(label, value));
        }
        url
    }
}

fn path_segment(label: &str, value: &str) -> String {
    let plain = !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '~'));
    if plain {
        format!("{label}/{value}")
    } else if value.is_empty() {
        format!("{label}@base64/=")
    } else {
        format!("{label}@base64/{}", URL_SAFE_NO_PAD.encode(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_group_url_has_the_job_plainly_and_odd_values_in_base64() {
        let gateway = Pushgateway::new("http://127.0.0.1:9091/").unwrap();
        assert_eq!(gateway.url(), "http://127.0.0.1:9091");
        assert_eq!(
            gateway.group_url("backupconfiguration-demo-deployment-backup", &[]),
            "http://127.0.0.1:9091/metrics/job/backupconfiguration-demo-deployment-backup"
        );
        assert_eq!(
            gateway.group_url(
                "job-a",
                &[("hostname", "host-0"), ("path", "/a b"), ("e", "")]
            ),
            "http://127.0.0.1:9091/metrics/job/job-a/hostname/host-0/path@base64/L2EgYg/e@base64/="
        );
        let prefixed = Pushgateway::new("http://gw.example:56789/push").unwrap();
        assert_eq!(
            prefixed.group_url("j", &[]),
            "http://gw.example:56789/push/metrics/job/j"
        );
    }

    #[test]
    fn a_url_without_http_or_a_host_is_refused_naming_the_url_and_the_flag() {
        for bad in ["127.0.0.1:9091", "ftp://gw:21", "http://", "not a url"] {
            let err = Pushgateway::new(bad).unwrap_err();
            let message = err.to_string();
            assert!(
                matches!(err, PushError::InvalidUrl { .. }),
                "{bad}: {message}"
            );
            assert!(message.contains(bad), "{message}");
            assert!(message.contains("--pushgateway-url"), "{message}");
        }
    }

    #[tokio::test]
    async fn an_empty_job_is_refused_before_anything_is_sent() {
        let gateway = Pushgateway::new("http://127.0.0.1:9").unwrap();
        let err = gateway
            .push("", &[Metric::gauge("stash_a", "h", &[], 1.0)])
            .await
            .unwrap_err();
        assert!(matches!(err, PushError::EmptyJob { .. }), "{err}");
    }
}
