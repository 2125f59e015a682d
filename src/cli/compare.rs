//! `slope compare`: trains the model once per activation (every layer but
//! the last replaced), from the same seed and data order, and prints one
//! row per run; `--report` overlays the runs' pictures.

use super::common::{self, Loaded, LoadedData};
use super::{Failure, PathArg};
use crate::check::model::{Init, Setting};
use crate::diag::Diagnostic;
use crate::report::Run;
use crate::train::flow::compare::{self, InitChoice};
use crate::train::flow::{self, DEFAULT_PROBE, FlowReport, Probe};
use crate::train::{EpochReport, Settings, weights};
use clap::Args;
use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Instant;

/// Arguments of `slope compare`.
#[derive(Args, Debug)]
pub struct CompareArgs {
    /// The `.nn` file.
    pub file: PathArg,
    /// Which model, when the file has several.
    #[arg(long)]
    pub model: Option<String>,
    /// The activations to compare, comma-separated (built-in or custom).
    #[arg(long, value_delimiter = ',', required = true)]
    pub activation: Vec<String>,
    /// The replaced layers' init: auto (each activation's default), glorot, he or standard.
    #[arg(long, default_value = "auto")]
    pub init: String,
    /// Override the number of epochs.
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Override the learning rate.
    #[arg(long)]
    pub lr: Option<f64>,
    /// Probe rows (default 512).
    #[arg(long, value_name = "N")]
    pub probe: Option<usize>,
    /// Write DIR/index.html with the runs' pictures overlaid.
    #[arg(long, value_name = "DIR")]
    pub report: Option<PathArg>,
    /// The --flow JSON objects, with a key `activation`, on stdout.
    #[arg(long)]
    pub json: bool,
}

/// One finished run.
struct Done {
    label: String,
    epochs: Vec<EpochReport>,
    flow: Vec<FlowReport>,
    seconds: f64,
}

fn usage(flag: &str, why: &str) -> Failure {
    Failure::Usage(format!("error: invalid value for '{flag}': {why}\n"))
}

/// Checks the flags; the init choice.
fn check_usage(args: &CompareArgs) -> Result<InitChoice, Failure> {
    if args.epochs == Some(0) {
        return Err(usage("--epochs", "must be at least 1"));
    }
    if args.probe == Some(0) {
        return Err(usage("--probe", "must be at least 1"));
    }
    if let Some(lr) = args.lr
        && !(lr.is_finite() && lr > 0.0)
    {
        return Err(usage("--lr", "must be a finite number greater than 0"));
    }
    if let Some(dir) = &args.report {
        super::flow::check_report_dir(dir)?;
    }
    match args.init.as_str() {
        "auto" => Ok(InitChoice::Auto),
        name => match Init::from_name(name).filter(|i| *i != Init::Zeros) {
            Some(i) => Ok(InitChoice::Fixed(i)),
            None => Err(usage(
                "--init",
                &format!("`{name}` is not one of auto, glorot, he, standard"),
            )),
        },
    }
}

/// Runs `slope compare`.
pub fn run(args: CompareArgs) -> Result<ExitCode, Failure> {
    let init = check_usage(&args)?;
    let loaded = common::load_program(&args.file, args.model.as_deref())?;
    let acts = (args.activation.iter())
        .map(|name| compare::activation(&loaded.program, name.trim()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            usage(
                "--activation",
                &format!("{e}; use built-ins such as relu, tanh, sigmoid, or an `activation` item of the file"),
            )
        })?;
    let Some(config) = loaded.program.train.clone() else {
        let d = Diagnostic::bare(format!("'{}' has no train block", loaded.name));
        return Err(Failure::Input(loaded.render(&[d])));
    };
    let Some(data) = common::load_dataset(&loaded)? else {
        let d = Diagnostic::error("the train block has no data statement", config.span);
        return Err(Failure::Input(loaded.render(&[d])));
    };
    let mut optimizer = config.optimizer;
    if let (Some(lr), Some(l)) = (args.lr, optimizer.setting_mut("lr")) {
        *l = Setting::given(lr);
    }
    let settings = Settings {
        epochs: args.epochs.unwrap_or(config.epochs.value),
        batch: config.batch.value,
        shuffle: config.shuffle.value,
        seed: config.seed.value,
        validation: config.validation.value,
        optimizer,
        threads: std::thread::available_parallelism().map_or(1, usize::from),
    };
    let bar = progress_bar((acts.len() * settings.epochs) as u64);
    let mut runs = Vec::new();
    for (name, act) in args.activation.iter().zip(&acts) {
        let model = compare::with_activation(loaded.model(), act, init);
        let done = train_one(&args, &loaded, &data, &model, &settings, name.trim(), &bar)?;
        runs.push(done);
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let table = table(&runs);
    if !args.json {
        out!("{table}");
    }
    if let Some(dir) = &args.report {
        let (summary, equations) = super::flow::model_text(&loaded, Some(&data));
        let view: Vec<Run<'_>> = (runs.iter())
            .map(|r| Run {
                label: &r.label,
                epochs: &r.epochs,
                flow: &r.flow,
            })
            .collect();
        let title = format!(
            "slope compare: {} ({})",
            loaded.model().name,
            args.activation.join(", ")
        );
        let sections = [
            ("Runs", table.as_str()),
            ("Model (as written)", summary.as_str()),
            ("Gradient equations (as written)", equations.as_str()),
        ];
        super::flow::write_report(dir, &title, &sections, &view)?;
        eprintln!("report written to {}", dir.join("index.html").display());
    }
    Ok(ExitCode::SUCCESS)
}

/// A bar across every run's epochs, on a terminal only.
fn progress_bar(len: u64) -> Option<indicatif::ProgressBar> {
    std::io::stderr().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::with_draw_target(
            Some(len),
            indicatif::ProgressDrawTarget::stderr(),
        );
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{bar:30} {pos}/{len} epochs {msg} [{elapsed_precise} < {eta_precise}]",
        ) {
            bar.set_style(style);
        }
        bar
    })
}

/// Trains `model` (one activation's version) with the probe.
fn train_one(
    args: &CompareArgs,
    loaded: &Loaded,
    data: &LoadedData,
    model: &crate::check::model::Model,
    settings: &Settings,
    label: &str,
    bar: &Option<indicatif::ProgressBar>,
) -> Result<Done, Failure> {
    let internal = |e: &dyn std::fmt::Display| Failure::Input(format!("error: {label}: {e}\n"));
    let start = Instant::now();
    let (net, _) = crate::pipeline::compile(&loaded.program, model)
        .map_err(|d| Failure::Input(loaded.render(&[d])))?;
    let rows = args.probe.unwrap_or(DEFAULT_PROBE);
    let mut probe = Probe::new(&loaded.program, model, &data.dataset, settings, rows)
        .map_err(|e| internal(&e))?;
    let initial = weights::init(model, settings.seed);
    if let Some(bar) = bar {
        bar.set_message(label.to_string());
    }
    let outcome = flow::train_with_flow(
        model,
        net,
        settings,
        &data.dataset,
        initial,
        &mut probe,
        &mut |r, f| {
            if args.json {
                let mut m = f.json(r);
                m.insert("activation".into(), label.into());
                outln!("{}", serde_json::Value::Object(m));
            }
            if let (Some(bar), Some(_)) = (bar, r) {
                bar.inc(1);
            }
        },
    )
    .map_err(|e| internal(&e))?;
    Ok(Done {
        label: label.to_string(),
        epochs: outcome.epochs,
        flow: probe.history,
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// One row per run.
fn table(runs: &[Done]) -> String {
    let f = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.4}"));
    let pct = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{:.2}%", v * 100.0));
    let e = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.3e}"));
    let mut rows = vec![
        [
            "activation",
            "loss",
            "accuracy",
            "val_loss",
            "val_accuracy",
            "flow@0",
            "flow@end",
            "seconds",
        ]
        .map(String::from),
    ];
    for r in runs {
        let last = r.epochs.last();
        rows.push([
            r.label.clone(),
            f(last.map(|l| l.loss)),
            pct(last.and_then(|l| l.accuracy)),
            f(last.and_then(|l| l.val_loss)),
            pct(last.and_then(|l| l.val_accuracy)),
            e(r.flow.first().map(|x| x.flow)),
            e(r.flow.last().map(|x| x.flow)),
            format!("{:.2}", r.seconds),
        ]);
    }
    let widths: Vec<usize> = (0..8)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut s = String::new();
    for r in &rows {
        let cells: Vec<String> = (r.iter().zip(&widths))
            .map(|(c, &w)| format!("{c:<w$}"))
            .collect();
        s.push_str(cells.join("  ").trim_end());
        s.push('\n');
    }
    s
}
