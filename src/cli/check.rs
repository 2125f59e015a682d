//! `slope check FILE [--model NAME] [--json]`: parse, check, load the data,
//! and print a Keras-style summary of the model.

use super::common::{self, Loaded, LoadedData};
use super::{Failure, PathArg};
use crate::check::model::{
    Activation, Function, Layer, LayerKind, Loss, Model, Optimizer, TrainConfig,
};
use crate::data;
use crate::diag::thousands;
use clap::Args;
use serde_json::{Value, json};
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

/// Runs `slope check`: exit 0 with the summary on stdout, or a failure.
pub fn run(args: CheckArgs) -> Result<ExitCode, Failure> {
    let loaded = common::load_program(&args.file, args.model.as_deref())?;
    let model = loaded.model();
    // Only lowering and simplifying a custom formula shows a denominator
    // that is identically 0; the built-in ones have none.
    let custom = matches!(model.loss, Loss::Custom(_))
        || (model.layers.iter()).any(|l| matches!(l.activation(), Activation::Custom(_)));
    if custom {
        crate::pipeline::lower(&loaded.program, model)
            .map_err(|d| Failure::Input(loaded.render(&[d])))?;
    }
    let data = common::load_dataset(&loaded)?;
    if args.json {
        let value = summary_json(&loaded, data.as_ref());
        let text =
            serde_json::to_string_pretty(&value).expect("a serde_json::Value always serialises");
        outln!("{text}");
    } else {
        out!("{}", summary_text(&loaded, data.as_ref()));
    }
    Ok(ExitCode::SUCCESS)
}

/// The summary as text; see the module docs of `cli` for its shape.
pub fn summary_text(loaded: &Loaded, data: Option<&LoadedData>) -> String {
    let model = loaded.model();
    let k = model.output_width();
    let n = model.input.features();
    // An image input shows its shape too: `1x8x8 input (64 features)`.
    let inputs = if model.input.is_image() {
        format!("{} input ({n} features)", model.input)
    } else {
        format!("{n} input{}", plural(n))
    };
    let mut out = format!(
        "model {}: {inputs} -> {} output{}, {} parameters\n\n",
        model.name,
        k,
        plural(k),
        thousands(model.parameter_count() as u64)
    );
    out.push_str(&layer_table(model));
    out.push('\n');
    let mut line =
        |key: &str, value: String| out.push_str(&format!("{:<11}{value}\n", format!("{key}:")));
    line("loss", loss_text(loaded, model));
    line("task", task_text(model));
    if let Some(train) = &loaded.program.train {
        line("optimizer", optimizer_text(&train.optimizer));
        line("schedule", schedule_text(train));
    }
    if let Some(d) = data {
        let ds = &d.dataset;
        let mut text = format!(
            "{}: {} rows, {} feature{} ({})",
            d.name,
            thousands(ds.rows as u64),
            ds.n_features(),
            plural(ds.n_features()),
            data::list(&ds.feature_names)
        );
        if ds.n_targets() > 0 {
            text.push_str(&format!(
                ", {} target{} ({})",
                ds.n_targets(),
                plural(ds.n_targets()),
                data::list(&ds.target_names)
            ));
        }
        line("data", text);
    }
    // One set of the custom activations in use, so that the summary of a
    // model with many activations and layers is linear, not their product.
    let used_activations: std::collections::HashSet<&str> = model
        .layers
        .iter()
        .filter_map(|l| match l.activation() {
            Activation::Custom(name) => Some(name.as_str()),
            _ => None,
        })
        .collect();
    let functions: Vec<String> = loaded
        .program
        .activations
        .iter()
        .map(|f| ("activation", f))
        .chain(loaded.program.losses.iter().map(|f| ("loss", f)))
        .map(|(kind, f)| {
            let used = match kind {
                "activation" => used_activations.contains(f.name.as_str()),
                _ => matches!(&model.loss, Loss::Custom(name) if *name == f.name),
            };
            let unused = if used {
                ""
            } else {
                "  (not used by this model)"
            };
            format!("{kind} {}{unused}", definition(loaded, f))
        })
        .collect();
    for (i, f) in functions.iter().enumerate() {
        let key = if i == 0 { "functions:" } else { "" };
        out.push_str(&format!("{key:<11}{f}\n"));
    }
    out
}

/// The layer table: one row per layer, then the total.
fn layer_table(model: &Model) -> String {
    let header = [
        "layer",
        "kind",
        "activation",
        "init",
        "bias",
        "output",
        "params",
    ];
    let mut rows: Vec<[String; 7]> = vec![header.map(String::from)];
    for l in &model.layers {
        let (init, bias) = layer_settings(l);
        rows.push([
            l.name.clone(),
            kind_text(l),
            match l.kind {
                LayerKind::Pool { .. } | LayerKind::Flatten => "-".into(),
                LayerKind::Dense { .. } | LayerKind::Conv { .. } => activation_name(l.activation()),
            },
            init.into(),
            match bias {
                Some(true) => "yes",
                Some(false) => "no",
                None => "-",
            }
            .into(),
            output_shape(l),
            thousands(l.parameter_count() as u64),
        ]);
    }
    let mut total: [String; 7] = Default::default();
    total[0] = "total".into();
    total[6] = thousands(model.parameter_count() as u64);
    rows.push(total);
    let widths: Vec<usize> = (0..7)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in &rows {
        let mut line = String::from("  ");
        for c in 0..6 {
            line.push_str(&format!("{:<w$}  ", row[c], w = widths[c]));
        }
        // The parameter counts are right-aligned, like numbers in a table.
        line.push_str(&format!("{:>w$}", row[6], w = widths[6]));
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn activation_name(a: &Activation) -> String {
    match a {
        Activation::Builtin(b) => b.name().to_string(),
        Activation::Softmax => "softmax".to_string(),
        Activation::Custom(name) => name.clone(),
    }
}

/// The init and bias columns of a layer (`None` for layers without
/// parameters).
fn layer_settings(l: &Layer) -> (&'static str, Option<bool>) {
    match &l.kind {
        LayerKind::Dense { init, bias, .. } | LayerKind::Conv { init, bias, .. } => {
            (init.name(), Some(*bias))
        }
        LayerKind::Pool { .. } | LayerKind::Flatten => ("-", None),
    }
}

/// The kind column: `dense`, `conv 3x3 same`, `maxpool 2x2 stride 1`.
fn kind_text(l: &Layer) -> String {
    match &l.kind {
        LayerKind::Dense { .. } | LayerKind::Flatten => l.kind_name().to_string(),
        LayerKind::Conv {
            kernel,
            stride,
            padding,
            ..
        } => {
            let s = if *stride == 1 {
                String::new()
            } else {
                format!(" stride {stride}")
            };
            format!("conv {kernel}x{kernel}{s} {}", padding.name())
        }
        LayerKind::Pool {
            mode,
            kernel,
            stride,
        } => {
            let s = if stride == kernel {
                String::new()
            } else {
                format!(" stride {stride}")
            };
            format!("{} {kernel}x{kernel}{s}", mode.keyword())
        }
    }
}

/// `[B, 32]`: the batch, then the layer's output shape.
fn output_shape(l: &Layer) -> String {
    let dims: Vec<String> = l
        .output_shape()
        .dims()
        .iter()
        .map(|d| d.to_string())
        .collect();
    format!("[B, {}]", dims.join(", "))
}

fn loss_name(loss: &Loss) -> &str {
    match loss {
        Loss::Mse => "mse",
        Loss::Bce => "bce",
        Loss::CrossEntropy => "cross_entropy",
        Loss::Custom(name) => name,
    }
}

/// A function item as written: `cube(x) = x^3 / 3`.
fn definition(loaded: &Loaded, f: &Function) -> String {
    let body = loaded
        .text
        .get(f.body.span.start..f.body.span.end)
        .unwrap_or("...");
    format!("{}({}) = {}", f.name, f.params.join(", "), body.trim())
}

fn loss_text(loaded: &Loaded, model: &Model) -> String {
    let k = model.output_width();
    match &model.loss {
        Loss::Mse => "mse (mean squared error over all outputs)".into(),
        Loss::Bce => "bce (binary cross-entropy on sigmoid outputs)".into(),
        Loss::CrossEntropy => format!("cross_entropy (softmax cross-entropy over {k} classes)"),
        Loss::Custom(name) => match loaded.program.loss(name) {
            Some(f) => format!(
                "{name} (custom loss {name}({}), mean over all outputs)",
                f.params.join(", ")
            ),
            None => name.clone(),
        },
    }
}

fn task_text(model: &Model) -> String {
    match model.loss {
        Loss::CrossEntropy => "classification (accuracy: the arg-max output is the class)".into(),
        Loss::Bce => "classification (accuracy: outputs on the right side of 0.5)".into(),
        Loss::Mse | Loss::Custom(_) => "regression".into(),
    }
}

fn optimizer_text(opt: &Optimizer) -> String {
    let parts: Vec<String> = opt
        .settings()
        .iter()
        .map(|(k, s)| format!("{k}={}{}", number(s.value), default_mark(s.is_default)))
        .collect();
    format!("{} {}", opt.name(), parts.join(", "))
}

fn schedule_text(t: &TrainConfig) -> String {
    format!(
        "epochs {}{}, batch {}{}, shuffle {}{}, seed {}{}, validation {}{}",
        t.epochs.value,
        default_mark(t.epochs.is_default),
        t.batch.value,
        default_mark(t.batch.is_default),
        t.shuffle.value,
        default_mark(t.shuffle.is_default),
        t.seed.value,
        default_mark(t.seed.is_default),
        number(t.validation.value),
        default_mark(t.validation.is_default),
    )
}

fn default_mark(is_default: bool) -> &'static str {
    if is_default { " (default)" } else { "" }
}

/// A setting as a short number: `0.5`, `0.001`, `1e-8`.
fn number(x: f64) -> String {
    if x != 0.0 && x.abs() < 1e-3 {
        format!("{x:e}")
    } else {
        format!("{x}")
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// The summary as one JSON object (keys sort alphabetically: stable).
pub fn summary_json(loaded: &Loaded, data: Option<&LoadedData>) -> Value {
    let model = loaded.model();
    let layers: Vec<Value> = model
        .layers
        .iter()
        .map(|l| {
            let (init, bias) = layer_settings(l);
            json!({
                "name": l.name,
                "kind": l.kind_name(),
                "activation": activation_name(l.activation()),
                "init": init,
                "bias": bias.unwrap_or(false),
                "inputs": l.input.features(),
                "units": l.width(),
                "params": l.parameter_count(),
            })
        })
        .collect();
    let training = loaded.program.train.as_ref().map(|t| {
        let mut optimizer = serde_json::Map::new();
        optimizer.insert("name".into(), json!(t.optimizer.name()));
        let mut defaults: Vec<&str> = Vec::new();
        for (k, s) in t.optimizer.settings() {
            optimizer.insert(k.into(), json!(s.value));
            if s.is_default {
                defaults.push(k);
            }
        }
        let marks = [
            ("epochs", t.epochs.is_default),
            ("batch", t.batch.is_default),
            ("shuffle", t.shuffle.is_default),
            ("seed", t.seed.is_default),
            ("validation", t.validation.is_default),
        ];
        defaults.extend(marks.iter().filter(|(_, d)| *d).map(|(k, _)| *k));
        json!({
            "optimizer": optimizer,
            "epochs": t.epochs.value,
            "batch": t.batch.value,
            "shuffle": t.shuffle.value,
            "seed": t.seed.value,
            "validation": t.validation.value,
            "defaults": defaults,
        })
    });
    let data = data.map(|d| {
        json!({
            "path": d.name,
            "rows": d.dataset.rows,
            "features": d.dataset.feature_names,
            "targets": d.dataset.target_names,
        })
    });
    let functions = |fs: &[Function]| -> Vec<Value> {
        fs.iter()
            .map(|f| json!({"name": f.name, "params": f.params, "definition": definition(loaded, f)}))
            .collect()
    };
    let mut summary = json!({
        "model": model.name,
        "inputs": model.input.features(),
        "outputs": model.output_width(),
        "parameters": model.parameter_count(),
        "layers": layers,
        "loss": loss_name(&model.loss),
        "task": if model.is_classification() { "classification" } else { "regression" },
        "training": training,
        "data": data,
        "activations": functions(&loaded.program.activations),
        "losses": functions(&loaded.program.losses),
    });
    // Only an image input adds its shape, so flat models print as before.
    if model.input.is_image() {
        summary["input_shape"] = json!(model.input.dims());
    }
    summary
}
