//! `slope diff`, `slope grad` (equations, and numeric with --weights) and `slope graph`.

use super::{Failure, PathArg};
use clap::Args;
use std::process::ExitCode;

/// Arguments of `slope diff`.
#[derive(Args, Debug)]
pub struct DiffArgs {
    /// The expression; may start with `-` (`slope diff -x^2`).
    #[arg(allow_hyphen_values = true)]
    pub expr: String,
    /// The variable to differentiate by.
    #[arg(long, default_value = "x")]
    pub wrt: String,
    /// Show the derivation, one rule per line.
    #[arg(long)]
    pub steps: bool,
    /// Print LaTeX.
    #[arg(long)]
    pub latex: bool,
    /// Print `{"expr": ..., "wrt": ..., "derivative": ...}`.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `slope grad`.
#[derive(Args, Debug)]
pub struct GradArgs {
    /// The `.nn` file.
    pub file: PathArg,
    /// Which model, when the file has several.
    #[arg(long)]
    pub model: Option<String>,
    /// Print LaTeX.
    #[arg(long)]
    pub latex: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// Weights (safetensors): compute a numeric gradient instead of equations.
    #[arg(long, conflicts_with_all = ["latex", "json"])]
    pub weights: Option<PathArg>,
    /// The data set (CSV) for the numeric gradient.
    #[arg(long, requires = "weights")]
    pub data: Option<PathArg>,
    /// Where to write the numeric gradient (safetensors).
    #[arg(long, requires = "weights")]
    pub out: Option<PathArg>,
}

/// Arguments of `slope graph`.
#[derive(Args, Debug)]
pub struct GraphArgs {
    /// The `.nn` file.
    pub file: PathArg,
    /// Which model, when the file has several.
    #[arg(long)]
    pub model: Option<String>,
    /// Include the gradient graph.
    #[arg(long)]
    pub grad: bool,
}

/// Runs `slope diff`.
pub fn diff(args: DiffArgs) -> Result<ExitCode, Failure> {
    super::symbolic_cmd::diff(args)
}

/// Runs `slope grad`.
pub fn grad(args: GradArgs) -> Result<ExitCode, Failure> {
    super::symbolic_cmd::grad(args)
}

/// Runs `slope graph`.
pub fn graph(args: GraphArgs) -> Result<ExitCode, Failure> {
    super::symbolic_cmd::graph(args)
}
