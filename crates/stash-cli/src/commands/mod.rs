//! One module per subcommand; `dispatch` routes parsed options to them.

use crate::cli::{Command, Opts};
use crate::exit_code::ExitCode;

pub fn dispatch(opts: Opts) -> anyhow::Result<ExitCode> {
    match opts.command {
    }
}
