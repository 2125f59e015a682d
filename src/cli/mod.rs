//! Stage 8: the `slope` command line. The only module that prints, reads
//! files or uses `anyhow`; nothing imports it.

/// `print!` to stdout, quietly stopping at a closed pipe (`slope predict
/// ... | head`): std's `print!` panics there, because Rust ignores SIGPIPE.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::cli::write_stdout(format_args!($($arg)*))
    };
}

/// `println!` to stdout, as [`out!`].
macro_rules! outln {
    () => {
        $crate::cli::write_stdout(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::cli::write_stdout(format_args!("{}\n", format_args!($($arg)*)))
    };
}

mod bench;
mod check;
pub mod common;
mod compare;
mod export;
mod flow;
mod fmt;
mod run;
pub mod source;
mod symbolic;
mod train;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// slope: a compiler for neural networks written as `.nn` files.
#[derive(Parser, Debug)]
#[command(name = "slope", version, about, long_about = None)]
pub struct Cli {
    /// The subcommand to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands of spec §7.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Parse and check a file; print a model summary.
    Check(check::CheckArgs),
    /// Print a file in canonical form (comments kept).
    Fmt(fmt::FmtArgs),
    /// Differentiate a scalar expression.
    Diff(symbolic::DiffArgs),
    /// Print the gradient equations, or (with --weights) write a numeric gradient.
    Grad(symbolic::GradArgs),
    /// Print the computation graph as Graphviz DOT.
    Graph(symbolic::GraphArgs),
    /// Run the compiled forward pass on a data set.
    Predict(run::PredictArgs),
    /// Compare the compiled f64 gradient with finite differences.
    Gradcheck(run::GradcheckArgs),
    /// Time each phase and the training step.
    Bench(bench::BenchArgs),
    /// JIT-compile and train the network.
    Train(train::TrainArgs),
    /// Write the network (or its gradient graph) as an ONNX model.
    Export(export::ExportArgs),
    /// Train once per activation and compare gradient flow (spec §8).
    Compare(compare::CompareArgs),
}

/// Why a command failed: bad input (exit 1) or bad usage (exit 2).
/// The text is complete, already rendered, and goes to stderr.
#[derive(Debug)]
pub enum Failure {
    /// Bad input: a file, data set, weights file; exit status 1.
    Input(String),
    /// Bad command-line usage; exit status 2.
    Usage(String),
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Failure {
        Failure::Input(format!("error: {e:#}\n"))
    }
}

/// Runs the command line and returns the process exit status.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let result = match cli.command {
        Command::Check(a) => check::run(a),
        Command::Fmt(a) => fmt::run(a),
        Command::Diff(a) => symbolic::diff(a),
        Command::Grad(a) => symbolic::grad(a),
        Command::Graph(a) => symbolic::graph(a),
        Command::Predict(a) => run::predict(a),
        Command::Gradcheck(a) => run::gradcheck(a),
        Command::Bench(a) => bench::bench(a),
        Command::Train(a) => train::run(a),
        Command::Export(a) => export::run(a),
        Command::Compare(a) => compare::run(a),
    };
    match result {
        Ok(code) => code,
        Err(Failure::Input(text)) => {
            eprint!("{text}");
            ExitCode::from(1)
        }
        Err(Failure::Usage(text)) => {
            eprint!("{text}");
            ExitCode::from(2)
        }
    }
}

/// A path argument, as typed (relative to the current directory).
pub type PathArg = PathBuf;

/// Writes to stdout. A reader that went away (a closed pipe) is not an
/// error of ours: the rest of the output is dropped and the command goes on
/// (so `slope train ... | head` still writes its weights). Any other write
/// error is reported once on stderr.
pub fn write_stdout(args: std::fmt::Arguments) {
    use std::io::Write;
    use std::sync::atomic::{AtomicBool, Ordering};
    static FAILED: AtomicBool = AtomicBool::new(false);
    if FAILED.load(Ordering::Relaxed) {
        return;
    }
    if let Err(e) = std::io::stdout().lock().write_fmt(args) {
        FAILED.store(true, Ordering::Relaxed);
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            eprintln!("error: cannot write to standard output: {e}");
        }
    }
}
