//! `stash validate -f FILE|DIR...`: check Stash manifests offline (schema, semantics, obsolete shapes),
//! like kubeconform. Exit 0 when every document is valid (warnings allowed), 1 otherwise.

use std::path::{Path, PathBuf};

use clap::Args;
use serde::Serialize;
use stash_api::validation::{Diagnostic, Outcome, Severity, validate_manifests};

use crate::exit_code::ExitCode;

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Manifest file or directory (searched recursively for *.yaml, *.yml, *.json); repeatable.
    #[arg(
        short = 'f',
        long = "filename",
        value_name = "FILE|DIR",
        required = true
    )]
    pub filenames: Vec<PathBuf>,
}

#[derive(Serialize)]
struct Report {
    valid: bool,
    summary: Summary,
    documents: Vec<DocumentLine>,
    diagnostics: Vec<Diagnostic>,
}

#[derive(Serialize, Default)]
struct Summary {
    files: usize,
    documents: usize,
    valid: usize,
    invalid: usize,
    skipped: usize,
    errors: usize,
    warnings: usize,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DocumentLine {
    file: String,
    document: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    api_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    kind: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    status: &'static str,
}

pub fn run(args: &ValidateArgs, json: bool) -> anyhow::Result<ExitCode> {
    let mut report = Report {
        valid: true,
        summary: Summary::default(),
        documents: Vec::new(),
        diagnostics: Vec::new(),
    };
    for input in &args.filenames {
        let files = match collect(input) {
            Ok(files) => files,
            Err(diag) => {
                report.diagnostics.push(*diag);
                continue;
            }
        };
        for file in files {
            report.summary.files += 1;
            let name = file.display().to_string();
            let text = match std::fs::read_to_string(&file) {
                Ok(text) => text,
                Err(err) => {
                    report.diagnostics.push(file_error(
                        &name,
                        format!("cannot read the file: {err}"),
                        "check the path and its permissions",
                    ));
                    continue;
                }
            };
            let validation = validate_manifests(&name, &text);
            for doc in validation.documents {
                let status = match doc.outcome {
                    Outcome::Empty => continue,
                    Outcome::Skipped => "skipped",
                    Outcome::Checked if doc.has_errors() => "invalid",
                    Outcome::Checked => "valid",
                };
                report.summary.documents += 1;
                match status {
                    "skipped" => report.summary.skipped += 1,
                    "invalid" => report.summary.invalid += 1,
                    _ => report.summary.valid += 1,
                }
                report.documents.push(DocumentLine {
                    file: name.clone(),
                    document: doc.index,
                    api_version: doc.api_version,
                    kind: doc.kind,
                    name: doc.name,
                    status,
                });
                report.diagnostics.extend(doc.diagnostics);
            }
        }
    }
    report.summary.errors = report
        .diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .count();
    report.summary.warnings = report.diagnostics.len() - report.summary.errors;
    report.valid = report.summary.errors == 0;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_text(&report);
    }
    Ok(if report.valid {
        ExitCode::Ok
    } else {
        ExitCode::Error
    })
}

fn print_text(report: &Report) {
    for d in &report.diagnostics {
        println!("{d}");
    }
    for doc in report.documents.iter().filter(|d| d.status == "skipped") {
        println!(
            "skipped: {} (document {}, {} {}): not a Stash kind",
            doc.file,
            doc.document,
            doc.api_version.as_deref().unwrap_or("?"),
            doc.kind.as_deref().unwrap_or("?"),
        );
    }
    let s = &report.summary;
    println!(
        "{}: {} documents in {} files: {} valid, {} invalid, {} skipped; {} errors, {} warnings",
        if report.valid { "ok" } else { "invalid" },
        s.documents,
        s.files,
        s.valid,
        s.invalid,
        s.skipped,
        s.errors,
        s.warnings,
    );
}

fn file_error(file: &str, message: String, fix: &str) -> Diagnostic {
    Diagnostic {
        severity: Severity::Error,
        file: file.to_owned(),
        document: 0,
        kind: None,
        name: None,
        field: String::new(),
        message,
        fix: fix.to_owned(),
    }
}

/// The manifest files named by one `-f` value, sorted; a directory is searched recursively.
fn collect(input: &Path) -> Result<Vec<PathBuf>, Box<Diagnostic>> {
    let name = input.display().to_string();
    let meta = std::fs::metadata(input).map_err(|err| {
        Box::new(file_error(
            &name,
            format!("cannot read `{name}`: {err}"),
            "pass an existing file or directory to -f",
        ))
    })?;
    if !meta.is_dir() {
        return Ok(vec![input.to_path_buf()]);
    }
    let mut files = Vec::new();
    let mut dirs = vec![input.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|err| {
            Box::new(file_error(
                &dir.display().to_string(),
                format!("cannot list the directory: {err}"),
                "check its permissions",
            ))
        })?;
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| matches!(e, "yaml" | "yml" | "json"))
            {
                files.push(path);
            }
        }
    }
    if files.is_empty() {
        return Err(Box::new(file_error(
            &name,
            "the directory holds no *.yaml, *.yml or *.json file".to_owned(),
            "point -f at the manifests",
        )));
    }
    files.sort();
    Ok(files)
}
