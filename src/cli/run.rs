//! `slope predict`, `slope gradcheck` and `slope bench`: commands that run compiled code.

use super::{Failure, PathArg};
use clap::Args;
use std::process::ExitCode;

/// Arguments of `slope predict`.
#[derive(Args, Debug)]
pub struct PredictArgs {
    /// The `.nn` file.
    pub file: PathArg,
    /// Which model, when the file has several.
    #[arg(long)]
    pub model: Option<String>,
    /// Weights (safetensors).
    #[arg(long)]
    pub weights: PathArg,
    /// Input rows (CSV with the data statement's columns; targets optional).
    #[arg(long)]
    pub data: PathArg,
    /// One JSON object per row instead of CSV.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `slope gradcheck`.
#[derive(Args, Debug)]
pub struct GradcheckArgs {
    /// The `.nn` file.
    pub file: PathArg,
    /// Which model, when the file has several.
    #[arg(long)]
    pub model: Option<String>,
    /// Weights (safetensors); default: the spec's init with the file's seed.
    #[arg(long)]
    pub weights: Option<PathArg>,
}

/// Arguments of `slope bench`.
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// The `.nn` file.
    pub file: PathArg,
    /// Which model, when the file has several.
    #[arg(long)]
    pub model: Option<String>,
    /// Threads for large matrix products.
    #[arg(long)]
    pub threads: Option<usize>,
}

/// Runs `slope predict`.
pub fn predict(_args: PredictArgs) -> Result<ExitCode, Failure> {
    Err(Failure::Input(
        "error: `slope predict` is not built yet\n".into(),
    ))
}

/// Runs `slope gradcheck`.
pub fn gradcheck(_args: GradcheckArgs) -> Result<ExitCode, Failure> {
    Err(Failure::Input(
        "error: `slope gradcheck` is not built yet\n".into(),
    ))
}

/// Runs `slope bench`.
pub fn bench(_args: BenchArgs) -> Result<ExitCode, Failure> {
    Err(Failure::Input(
        "error: `slope bench` is not built yet\n".into(),
    ))
}
