//! `stash crd`: print (or write) the `CustomResourceDefinition`s of every Stash kind.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use crate::exit_code::ExitCode;

#[derive(Debug, Args)]
pub struct CrdArgs {
    /// Write one file per CRD (`<group>_<plural>.yaml`) into this directory instead of printing them.
    #[arg(long, value_name = "DIR")]
    pub output_dir: Option<PathBuf>,
}

pub fn run(args: &CrdArgs) -> anyhow::Result<ExitCode> {
    let crds = stash_api::crd::all();
    if let Some(dir) = &args.output_dir {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("failed to create --output-dir {}", dir.display()))?;
        for crd in &crds {
            let path = dir.join(stash_api::crd::file_name(crd));
            let yaml = stash_api::crd::to_yaml(crd).context("failed to serialize a CRD")?;
            std::fs::write(&path, yaml)
                .with_context(|| format!("failed to write {}", path.display()))?;
            write_stdout(&format!("{}\n", path.display()))?;
        }
    } else {
        let mut out = String::new();
        for crd in &crds {
            out.push_str("---\n");
            out.push_str(&stash_api::crd::to_yaml(crd).context("failed to serialize a CRD")?);
        }
        write_stdout(&out)?;
    }
    Ok(ExitCode::Ok)
}

/// Writes to stdout; a closed pipe (`stash crd | head`) is not an error.
fn write_stdout(text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other.context("failed to write to stdout"),
    }
}
