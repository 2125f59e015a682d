//! `slope train`.

use super::{Failure, PathArg};
use clap::Args;
use std::process::ExitCode;

/// Arguments of `slope train`.
#[derive(Args, Debug)]
pub struct TrainArgs {
    /// The `.nn` file.
    pub file: PathArg,
    /// Which model, when the file has several.
    #[arg(long)]
    pub model: Option<String>,
    /// Start from these weights (safetensors).
    #[arg(long)]
    pub init: Option<PathArg>,
    /// Where to write the weights (default: next to FILE, `MODEL.safetensors`).
    #[arg(long)]
    pub out: Option<PathArg>,
    /// Override the number of epochs.
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Override the learning rate.
    #[arg(long)]
    pub lr: Option<f64>,
    /// Override the batch size.
    #[arg(long)]
    pub batch: Option<usize>,
    /// Override the seed.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Threads for large matrix products (default: the machine's cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// One JSON object per epoch on stdout, nothing else.
    #[arg(long)]
    pub json: bool,
    /// No progress output.
    #[arg(long)]
    pub quiet: bool,
}

/// Runs `slope train`.
pub fn train(args: TrainArgs) -> Result<ExitCode, Failure> {
    super::train_cmd::run(args)
}
