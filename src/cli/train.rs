//! `slope train`: load, lower, differentiate, compile, train, write the
//! weights atomically, and report (progress on stderr, `--json` on stdout).
//!
//! A failed run writes nothing: the weights file is replaced only after the
//! last epoch succeeded, by an atomic rename.

use super::common::{self, Loaded};
use super::{Failure, PathArg};
use crate::check::model::{Activation, Loss, Model, Setting};
use crate::diag::Diagnostic;
use crate::train::weights;
use crate::train::{self, EpochReport, Settings, TrainError};
use clap::Args;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

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
    /// Threads (default: the machine's cores): a batch with enough work is
    /// split by rows across them, deterministically for a given count.
    #[arg(long)]
    pub threads: Option<usize>,
    /// One JSON object per epoch on stdout, nothing else.
    #[arg(long)]
    pub json: bool,
    /// No progress output.
    #[arg(long)]
    pub quiet: bool,
    /// Gradient flow (spec §8).
    #[command(flatten)]
    pub flow: super::flow::FlowArgs,
}

/// Runs `slope train`.
pub fn run(args: TrainArgs) -> Result<ExitCode, Failure> {
    check_usage(&args)?;
    args.flow.check()?;
    let t_start = Instant::now();
    let loaded = common::load_program(&args.file, args.model.as_deref())?;
    let model = loaded.model();
    let Some(config) = loaded.program.train.clone() else {
        let d = Diagnostic::bare(format!("'{}' has no train block", loaded.name)).with_help(
            "add one, such as: train { data \"rows.csv\" target=y; optimizer sgd lr=0.1; epochs 100 }",
        );
        return Err(Failure::Input(loaded.render(&[d])));
    };
    let Some(data) = common::load_dataset(&loaded)? else {
        let d = Diagnostic::error("the train block has no data statement", config.span)
            .with_help("add: data \"FILE.csv\" target=COLUMN");
        return Err(Failure::Input(loaded.render(&[d])));
    };
    let t_parse = t_start.elapsed().as_secs_f64();

    let seed = args.seed.unwrap_or(config.seed.value);
    let out_path = args.out.clone().unwrap_or_else(|| default_out(&loaded));
    check_out_dir(&out_path)?;
    let initial = match &args.init {
        Some(path) => common::read_weights(path, model)?,
        None => weights::init(model, seed),
    };

    let (net, timings) = crate::pipeline::compile(&loaded.program, model)
        .map_err(|d| Failure::Input(loaded.render(&[d])))?;

    let mut optimizer = config.optimizer;
    if let (Some(lr), Some(l)) = (args.lr, optimizer.setting_mut("lr")) {
        *l = Setting::given(lr);
    }
    let settings = Settings {
        epochs: args.epochs.unwrap_or(config.epochs.value),
        batch: args.batch.unwrap_or(config.batch.value),
        shuffle: config.shuffle.value,
        seed,
        validation: config.validation.value,
        optimizer,
        threads: args.threads.unwrap_or_else(default_threads),
    };

    let fail = |e| train_failure(&loaded, &settings, &out_path, e);
    let mut probe =
        super::flow::probe(&args.flow, &loaded, &data.dataset, &settings).map_err(fail)?;
    let mut progress = Progress::new(&args, settings.epochs, model.is_classification());
    // With the probe, each JSON line is the epoch's and the probe's keys.
    progress.json = args.json && probe.is_none();
    let outcome = match probe.as_mut() {
        None => train::train(model, net, &settings, &data.dataset, initial, &mut |r| {
            progress.epoch(r)
        }),
        Some(p) => train::flow::train_with_flow(
            model,
            net,
            &settings,
            &data.dataset,
            initial,
            p,
            &mut |r, f| {
                if args.json {
                    outln!("{}", serde_json::Value::Object(f.json(r)));
                }
                r.into_iter().for_each(|r| progress.epoch(r));
            },
        ),
    };
    progress.finish();
    let outcome = outcome.map_err(fail)?;
    if let Some(p) = &probe {
        super::flow::finish(&args.flow, args.quiet, &loaded, &data, p, &outcome)?;
    }

    let bytes = weights::to_safetensors(&outcome.weights);
    weights::write_atomic(&out_path, &bytes).map_err(|e| {
        Failure::Input(format!(
            "error: cannot write weights to '{}': {}\n",
            out_path.display(),
            super::source::io_message(&e)
        ))
    })?;

    if !args.quiet {
        let last = outcome.epochs.last();
        let mut s = String::new();
        let steps_per_s = outcome.steps as f64 / outcome.train_seconds.max(1e-9);
        s.push_str(&format!(
            "trained '{}': {} epoch{}, {} steps in {:.3} s ({:.0} steps/s), {} training rows, {} validation rows\n",
            model.name,
            settings.epochs,
            if settings.epochs == 1 { "" } else { "s" },
            outcome.steps,
            outcome.train_seconds,
            steps_per_s,
            outcome.rows.0,
            outcome.rows.1
        ));
        if let Some(r) = last {
            s.push_str(&format!("  final: {}\n", metrics(r)));
        }
        s.push_str(&format!(
            "  phases: read+parse+check (with the CSV) {}, lower+diff {}, simplify {}, JIT {}, train {}\n",
            ms(t_parse),
            ms(timings.lower_diff),
            ms(timings.simplify),
            ms(outcome.jit_seconds),
            ms(outcome.train_seconds)
        ));
        s.push_str(&format!(
            "  seed {seed}; weights written to {}\n",
            out_path.display()
        ));
        eprint!("{s}");
    }
    Ok(ExitCode::SUCCESS)
}

/// Rejects impossible overrides before any work: bad usage, exit 2.
fn check_usage(args: &TrainArgs) -> Result<(), Failure> {
    let bad = |flag: &str, why: &str| {
        Err(Failure::Usage(format!(
            "error: invalid value for '{flag}': {why}\n"
        )))
    };
    if args.epochs == Some(0) {
        return bad("--epochs", "must be at least 1");
    }
    if args.batch == Some(0) {
        return bad("--batch", "must be at least 1");
    }
    if args.threads == Some(0) {
        return bad("--threads", "must be at least 1");
    }
    if let Some(lr) = args.lr
        && !(lr.is_finite() && lr > 0.0)
    {
        return bad("--lr", "must be a finite number greater than 0");
    }
    Ok(())
}

fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// `MODEL.safetensors` next to the `.nn` file.
fn default_out(loaded: &Loaded) -> PathBuf {
    let name = format!("{}.safetensors", loaded.model().name);
    match loaded.path.parent() {
        Some(dir) => dir.join(name),
        None => PathBuf::from(name),
    }
}

/// Fails early, before training, when the weights could not be written.
fn check_out_dir(path: &Path) -> Result<(), Failure> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if path.is_dir() {
        return Err(Failure::Input(format!(
            "error: cannot write weights to '{}': it is a directory\n",
            path.display()
        )));
    }
    if !dir.is_dir() {
        return Err(Failure::Input(format!(
            "error: cannot write weights to '{}': the directory '{}' does not exist\n",
            path.display(),
            dir.display()
        )));
    }
    Ok(())
}

/// A number as people write it: `0.5`, `1e30`, `1e-7`.
fn short(v: f64) -> String {
    if v != 0.0 && !(1e-4..1e6).contains(&v.abs()) {
        format!("{v:e}")
    } else {
        format!("{v}")
    }
}

/// A duration for people: microseconds below a millisecond, else milliseconds.
fn ms(seconds: f64) -> String {
    if seconds < 1e-3 {
        format!("{:.0} µs", seconds * 1e6)
    } else {
        format!("{:.1} ms", seconds * 1e3)
    }
}

fn metrics(r: &EpochReport) -> String {
    let mut s = format!("loss {:.6}", r.loss);
    if let Some(a) = r.accuracy {
        s.push_str(&format!(", accuracy {:.2}%", a * 100.0));
    }
    if let Some(v) = r.val_loss {
        s.push_str(&format!(", val_loss {v:.6}"));
    }
    if let Some(a) = r.val_accuracy {
        s.push_str(&format!(", val_accuracy {:.2}%", a * 100.0));
    }
    s
}

/// Per-epoch output: JSON lines on stdout, and a bar (terminal) or plain
/// lines (otherwise) on stderr unless `--quiet`.
struct Progress {
    json: bool,
    bar: Option<indicatif::ProgressBar>,
    plain: bool,
    every: usize,
    epochs: usize,
}

impl Progress {
    fn new(args: &TrainArgs, epochs: usize, _classification: bool) -> Progress {
        let terminal = std::io::stderr().is_terminal();
        let bar = (terminal && !args.quiet).then(|| {
            let bar = indicatif::ProgressBar::with_draw_target(
                Some(epochs as u64),
                indicatif::ProgressDrawTarget::stderr(),
            );
            if let Ok(style) = indicatif::ProgressStyle::with_template(
                "{bar:30} epoch {pos}/{len} {msg} [{elapsed_precise} < {eta_precise}]",
            ) {
                bar.set_style(style);
            }
            bar
        });
        Progress {
            json: args.json,
            plain: !terminal && !args.quiet,
            bar,
            // Plain lines for at most about 20 epochs, plus the first and last.
            every: epochs.div_ceil(20).max(1),
            epochs,
        }
    }

    fn epoch(&mut self, r: &EpochReport) {
        if self.json {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{}", r.to_json());
        }
        if let Some(bar) = &self.bar {
            bar.set_position(r.epoch as u64);
            bar.set_message(metrics(r));
        } else if self.plain
            && (r.epoch == 1 || r.epoch == self.epochs || r.epoch.is_multiple_of(self.every))
        {
            eprintln!(
                "epoch {}/{}: {} ({})",
                r.epoch,
                self.epochs,
                metrics(r),
                ms(r.seconds)
            );
        }
    }

    fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

/// The text of a failed run: for divergence, where and in which formula.
fn train_failure(loaded: &Loaded, settings: &Settings, out: &Path, e: TrainError) -> Failure {
    let model = loaded.model();
    let kept = if out.exists() {
        format!("'{}' was left unchanged", out.display())
    } else {
        format!("no weights were written to '{}'", out.display())
    };
    match e {
        TrainError::Diverged(d) => {
            let tensor_names = crate::train::weights::expected_shapes(model);
            let head = if d.loss.is_finite() {
                format!(
                    "training diverged: a gradient became NaN or infinite at epoch {}, batch {}",
                    d.epoch, d.batch
                )
            } else {
                let value = if d.loss.is_nan() { "NaN" } else { "infinite" };
                format!(
                    "training diverged: the loss became {value} at epoch {}, batch {}",
                    d.epoch, d.batch
                )
            };
            // The gradient nearest the loss that went bad: backprop runs from
            // the last layer down, so the highest index is where it started.
            let origin = d.tensors.last().copied();
            let diag = match origin {
                Some(i) => {
                    let name = &tensor_names[i].0;
                    let layer_name = name.rsplit_once('.').map_or(name.as_str(), |(l, _)| l);
                    let (k, layer) = model
                        .layers
                        .iter()
                        .enumerate()
                        .find(|(_, l)| l.name == layer_name)
                        .expect("every tensor name comes from a layer of the model");
                    let bad: Vec<String> = d
                        .tensors
                        .iter()
                        .map(|&j| format!("'{}'", tensor_names[j].0))
                        .collect();
                    Diagnostic::error(head, layer.span)
                        .with_label(format!("the gradient of '{name}' is not finite here"))
                        .with_note(format!("this layer computes {}", layer_formula(model, k)))
                        .with_note(format!("non-finite gradients: {}", bad.join(", ")))
                }
                None => Diagnostic::error(head, model.loss_span)
                    .with_label(format!("the loss {} is not finite", loss_formula(model)))
                    .with_note(format!(
                        "the last layer computes {}",
                        layer_formula(model, model.layers.len() - 1)
                    )),
            };
            let diag = diag.with_help(format!(
                "lower the learning rate (now {}) or check the data's scale; {kept}",
                short(settings.optimizer.lr())
            ));
            Failure::Input(loaded.render(&[diag]))
        }
        TrainError::Data(m) => {
            let span = loaded
                .program
                .train
                .as_ref()
                .map(|t| t.span)
                .unwrap_or_default();
            let d = Diagnostic::error(m, span).with_help(format!(
                "use a smaller validation fraction or more rows; {kept}"
            ));
            Failure::Input(loaded.render(&[d]))
        }
        TrainError::Internal(m) => Failure::Input(format!("error: {m}; {kept}\n")),
    }
}

/// `a2 = tanh(W2·a1 + b2)` for the layer at index `k`.
fn layer_formula(model: &Model, k: usize) -> String {
    let layer = &model.layers[k];
    let n = k + 1;
    let input = if k == 0 {
        "x".to_string()
    } else {
        format!("a{k}")
    };
    let bias = if layer.has_bias() {
        format!(" + b{n}")
    } else {
        String::new()
    };
    let z = format!("W{n}·{input}{bias}");
    let f = match layer.activation() {
        Activation::Builtin(b) if b.name() == "identity" => return format!("a{n} = {z}"),
        Activation::Builtin(b) => b.name().to_string(),
        Activation::Softmax => "softmax".to_string(),
        Activation::Custom(name) => name.clone(),
    };
    format!("a{n} = {f}({z})")
}

fn loss_formula(model: &Model) -> String {
    match &model.loss {
        Loss::Mse => "mse = mean((y - t)^2)".to_string(),
        Loss::Bce => "bce = mean(-(t*log(y) + (1 - t)*log(1 - y)))".to_string(),
        Loss::CrossEntropy => "cross_entropy = mean(-log(softmax(z)[t]))".to_string(),
        Loss::Custom(name) => format!("{name} = mean({name}(y, t))"),
    }
}
