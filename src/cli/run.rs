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
    /// Rows per step, overriding the file's `batch` (at most 4096).
    #[arg(long)]
    pub batch: Option<usize>,
}

/// Runs `slope predict`.
pub fn predict(args: PredictArgs) -> Result<ExitCode, Failure> {
    super::run_cmd::predict(args)
}

/// Runs `slope gradcheck`.
pub fn gradcheck(args: GradcheckArgs) -> Result<ExitCode, Failure> {
    super::run_cmd::gradcheck(args)
}

/// Runs `slope bench`.
pub fn bench(args: BenchArgs) -> Result<ExitCode, Failure> {
    super::run_cmd::bench(args)
}

/// Runs `slope grad FILE --weights W --data D --out G` (the numeric
/// gradient); `slope grad` calls this when `--weights` is given.
pub fn grad_numeric(
    file: &std::path::Path,
    model: Option<&str>,
    weights: &std::path::Path,
    data: Option<&std::path::Path>,
    out: Option<&std::path::Path>,
) -> Result<ExitCode, Failure> {
    super::run_cmd::grad_numeric(file, model, weights, data, out)
}
