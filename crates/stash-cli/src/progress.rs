//! The terminal's view of an operation: one indicatif bar with files, bytes, rate and ETA.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use stash_engine::{ProgressSink, ProgressUpdate};

pub struct TerminalProgress {
    bar: ProgressBar,
}

impl TerminalProgress {
    pub fn new() -> Self {
        let style = ProgressStyle::with_template(
            "[{elapsed_precise}] {prefix:20} {bar:40.cyan/blue} {bytes:>10}/{total_bytes:10} {bytes_per_sec:12} ETA {eta} {msg}",
        )
        .expect("the progress template is static and valid");
        let bar =
            ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()).with_style(style);
        Self { bar }
    }
}

impl ProgressSink for TerminalProgress {
    fn update(&self, progress: &ProgressUpdate) {
        self.bar.set_prefix(progress.phase.clone());
        if let Some(total) = progress.bytes_total {
            self.bar.set_length(total);
        }
        self.bar.set_position(progress.bytes_done);
        let files = match progress.files_total {
            Some(total) => format!("{}/{} files", progress.files_done, total),
            None => format!("{} files", progress.files_done),
        };
        self.bar.set_message(files);
        if progress.finished {
            self.bar.finish_and_clear();
        }
    }
}
