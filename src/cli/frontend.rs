//! `slope check` and `slope fmt`, and the file loading every command shares.

use super::{Failure, PathArg};
use clap::Args;
use std::process::ExitCode;

/// Arguments of `slope check`.
#[derive(Args, Debug)]
pub struct CheckArgs {
    /// The `.nn` file.
    pub file: PathArg,
    /// Which model, when the file has several.
    #[arg(long)]
    pub model: Option<String>,
    /// Print the summary as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `slope fmt`.
#[derive(Args, Debug)]
pub struct FmtArgs {
    /// The `.nn` file.
    pub file: PathArg,
    /// Exit 1 if the file is not in canonical form; print nothing else.
    #[arg(long)]
    pub check: bool,
}

/// Runs `slope check`.
pub fn check(args: CheckArgs) -> Result<ExitCode, Failure> {
    super::check_cmd::run(args)
}

/// Runs `slope fmt`.
pub fn fmt(_args: FmtArgs) -> Result<ExitCode, Failure> {
    Err(Failure::Input("error: `slope fmt` is not built yet\n".into()))
}
