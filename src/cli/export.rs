//! `slope export FILE --weights W [--out F] [--gradient]`: the ONNX model
//! of the forward pass (or, with `--gradient`, of the loss and its
//! gradients), written atomically. The graphs are built by the library
//! (`export`); this file reads the weights and writes the file.

use super::common::{self, Loaded};
use super::source::io_message;
use super::{Failure, PathArg};
use crate::export::{self, ExportError, ParamValue};
use crate::train::weights;
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `slope export`.
#[derive(Args, Debug)]
pub struct ExportArgs {
    /// The `.nn` file.
    pub file: PathArg,
    /// Which model, when the file has several.
    #[arg(long)]
    pub model: Option<String>,
    /// Weights (safetensors), with the names and shapes `slope train` writes.
    #[arg(long)]
    pub weights: PathArg,
    /// Where to write the model (default: next to FILE, `MODEL.onnx`, or
    /// `MODEL.grad.onnx` with --gradient).
    #[arg(long)]
    pub out: Option<PathArg>,
    /// Export the training graph (loss and gradients) instead of the forward pass.
    #[arg(long)]
    pub gradient: bool,
}

/// Runs `slope export`.
pub fn run(args: ExportArgs) -> Result<ExitCode, Failure> {
    let loaded = common::load_program(&args.file, args.model.as_deref())?;
    let model = loaded.model();
    let w = common::read_weights(&args.weights, model)?;
    let params: Vec<ParamValue> = w
        .tensors
        .iter()
        .map(|t| ParamValue {
            name: &t.name,
            shape: &t.shape,
            data: &t.data,
        })
        .collect();
    let result = if args.gradient {
        export::gradient(&loaded.program, model, &params)
    } else {
        export::forward(&loaded.program, model, &params)
    };
    let onnx = result.map_err(|e| match e {
        ExportError::Lower(d) => Failure::Input(loaded.render(&[d])),
        ExportError::Weights(why) => Failure::Input(format!(
            "error: weights '{}' do not fit model '{}': {why}\n",
            args.weights.display(),
            model.name
        )),
        e => Failure::Input(format!(
            "error: cannot export model '{}': {e}\n",
            model.name
        )),
    })?;
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| default_out(&loaded, args.gradient));
    let bytes = export::encode(&onnx);
    weights::write_atomic(&out, &bytes).map_err(|e| {
        Failure::Input(format!(
            "error: cannot write '{}': {}\n",
            out.display(),
            io_message(&e)
        ))
    })?;
    let nodes = onnx.graph.as_ref().map_or(0, |g| g.node.len());
    let what = if args.gradient {
        "loss and gradients"
    } else {
        "forward pass"
    };
    outln!(
        "wrote {} ({what} of model '{}': {nodes} ONNX nodes, opset {}, {} bytes)",
        out.display(),
        model.name,
        export::OPSET,
        bytes.len()
    );
    Ok(ExitCode::SUCCESS)
}

/// `MODEL.onnx` (or `MODEL.grad.onnx`) next to the `.nn` file, as `slope
/// train` puts `MODEL.safetensors` there.
fn default_out(loaded: &Loaded, gradient: bool) -> PathBuf {
    let suffix = if gradient { ".grad.onnx" } else { ".onnx" };
    let name = format!("{}{suffix}", loaded.model().name);
    match loaded.path.parent() {
        Some(dir) => dir.join(name),
        None => PathBuf::from(name),
    }
}
