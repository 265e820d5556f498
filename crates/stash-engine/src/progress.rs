//! Progress reporting for long operations: terminal bars for people, silence for everything else.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rustic_core::{ProgressBars, ProgressType, RusticProgress};

/// How an operation shows its progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Progress {
    /// No output (pods, scripts, `--json`, stderr not a terminal).
    #[default]
    Hidden,
    /// Bars with files, bytes, rate and ETA on stderr.
    Terminal,
}

impl Progress {
    pub(crate) fn bars(self) -> TerminalBars {
        TerminalBars {
            visible: self == Self::Terminal,
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct TerminalBars {
    visible: bool,
}

impl ProgressBars for TerminalBars {
    fn progress(&self, progress_type: ProgressType, prefix: &str) -> rustic_core::Progress {
        if !self.visible {
            return rustic_core::Progress::hidden();
        }
        let template = match progress_type {
            ProgressType::Spinner => "[{elapsed_precise}] {prefix:20} {spinner}",
            ProgressType::Counter => {
                "[{elapsed_precise}] {prefix:20} {bar:40.cyan/blue} {pos:>10}/{len:10} {per_sec} ETA {eta}"
            }
            ProgressType::Bytes => {
                "[{elapsed_precise}] {prefix:20} {bar:40.cyan/blue} {bytes:>10}/{total_bytes:10} {bytes_per_sec:12} ETA {eta}"
            }
        };
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr())
            .with_style(
                ProgressStyle::with_template(template)
                    .expect("progress templates are static and valid"),
            )
            .with_prefix(prefix.to_string());
        bar.enable_steady_tick(Duration::from_millis(200));
        rustic_core::Progress::new(Bar(bar))
    }
}

#[derive(Debug)]
struct Bar(ProgressBar);

impl RusticProgress for Bar {
    fn is_hidden(&self) -> bool {
        false
    }
    fn set_length(&self, len: u64) {
        self.0.set_length(len);
    }
    fn set_title(&self, title: &str) {
        self.0.set_prefix(title.to_string());
    }
    fn inc(&self, inc: u64) {
        self.0.inc(inc);
    }
    fn finish(&self) {
        self.0.finish();
    }
}
