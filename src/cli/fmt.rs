//! `slope fmt FILE [--check]`: print the file in canonical form.

use super::source::{read_source, render_diagnostics};
use super::{Failure, PathArg};
use crate::syntax::{self, fmt, sexp};
use clap::Args;
use std::io::Write;
use std::process::ExitCode;

/// Arguments of `slope fmt`.
#[derive(Args, Debug)]
pub struct FmtArgs {
    /// The `.nn` file.
    pub file: PathArg,
    /// Exit 1 if the file is not in canonical form; print nothing else.
    #[arg(long)]
    pub check: bool,
}

/// Runs `slope fmt`. With syntax errors it prints them and nothing else.
pub fn run(args: FmtArgs) -> Result<ExitCode, Failure> {
    let (name, src) = read_source(&args.file)?;
    let (file, diagnostics) = syntax::parse(&src);
    if !diagnostics.is_empty() {
        return Err(Failure::Input(render_diagnostics(
            &name,
            &src,
            &diagnostics,
        )));
    }
    let formatted = fmt::format(&file, &src);
    // The formatter must never change meaning: re-parse and compare.
    let (again, again_diags) = syntax::parse(&formatted);
    if !again_diags.is_empty() || sexp::file_bare(&again) != sexp::file_bare(&file) {
        return Err(Failure::Input(format!(
            "error: internal error: formatting '{name}' would change it; the file is left as is\n"
        )));
    }
    if args.check {
        if formatted == src {
            return Ok(ExitCode::SUCCESS);
        }
        return Err(Failure::Input(first_difference(&name, &src, &formatted)));
    }
    let mut stdout = std::io::stdout().lock();
    // A closed pipe (`slope fmt f | head`) is not an error worth a panic.
    let _ = stdout.write_all(formatted.as_bytes());
    Ok(ExitCode::SUCCESS)
}

/// The `--check` message: which file, and its first line that differs.
fn first_difference(name: &str, src: &str, formatted: &str) -> String {
    let mut old = src.lines();
    let mut new = formatted.lines();
    let mut line = 1;
    loop {
        match (old.next(), new.next()) {
            (Some(a), Some(b)) if a == b => line += 1,
            (a, b) => {
                let mut msg =
                    format!("{name}:{line}: not in canonical form (run `slope fmt {name}`)\n");
                if let Some(a) = a {
                    msg.push_str(&format!("-{a}\n"));
                }
                if let Some(b) = b {
                    msg.push_str(&format!("+{b}\n"));
                }
                if a.is_none() && b.is_none() {
                    msg.push_str("(line endings or the final newline differ)\n");
                }
                return msg;
            }
        }
    }
}
