//! `slope predict`, `slope gradcheck` and numeric `slope grad --weights`:
//! commands that run compiled code. The computations are library functions
//! (`train::tasks`); this file reads the inputs and formats the results.

use super::common::{self, Loaded};
use super::{Failure, PathArg};
use crate::check::model::Loss;
use crate::train::tasks::{
    self, GRADCHECK_BUDGET, GRADCHECK_ELEMENTS, GRADCHECK_FLOOR, GRADCHECK_ROWS, GRADCHECK_TOL,
};
use crate::train::weights;
use crate::{equations, pipeline};
use clap::Args;
use std::path::Path;
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

fn task_failure(e: impl std::fmt::Display) -> Failure {
    Failure::Input(format!("error: {e}\n"))
}

/// The chosen model through the compile pipeline, a diagnostic rendered.
fn compile(loaded: &Loaded) -> Result<pipeline::Network, Failure> {
    pipeline::compile(&loaded.program, loaded.model())
        .map(|(net, _)| net)
        .map_err(|d| Failure::Input(loaded.render(&[d])))
}

/// Runs `slope predict`.
pub fn predict(args: PredictArgs) -> Result<ExitCode, Failure> {
    let loaded = common::load_program(&args.file, args.model.as_deref())?;
    let model = loaded.model();
    let w = common::read_weights(&args.weights, model)?;
    let data = common::load_data_file(&loaded, &args.data, true)?;
    // The forward pass needs no gradients: lowering is all of the pipeline it uses.
    let net =
        pipeline::lower(&loaded.program, model).map_err(|d| Failure::Input(loaded.render(&[d])))?;
    let rows = data.rows;
    if rows == 0 {
        return Err(Failure::Input(format!(
            "error: '{}' has no data rows\n",
            args.data.display()
        )));
    }
    let p = tasks::predict(&net, model, &w, &data.features, rows).map_err(task_failure)?;
    let k = p.width;
    let names: Vec<String> = (0..k).map(|i| format!("y{i}")).collect();
    let mut out = String::new();
    if !args.json {
        out.push_str(&names.join(","));
        match model.loss {
            Loss::CrossEntropy => out.push_str(",class"),
            Loss::Bce if k == 1 => out.push_str(",class"),
            Loss::Bce => (0..k).for_each(|i| out.push_str(&format!(",class{i}"))),
            Loss::Mse | Loss::Custom(_) => {}
        }
        out.push('\n');
    }
    for (row, classes) in p.outputs.chunks(k).zip(&p.classes) {
        if args.json {
            let mut obj = serde_json::Map::new();
            obj.insert(
                "outputs".into(),
                serde_json::json!(row.iter().map(|&v| f64::from(v)).collect::<Vec<_>>()),
            );
            match classes.as_slice() {
                [] => {}
                [c] => {
                    obj.insert("class".into(), serde_json::json!(c));
                }
                cs => {
                    obj.insert("class".into(), serde_json::json!(cs));
                }
            }
            out.push_str(&serde_json::Value::Object(obj).to_string());
        } else {
            let cells: Vec<String> = row
                .iter()
                .map(|v| v.to_string())
                .chain(classes.iter().map(|c| c.to_string()))
                .collect();
            out.push_str(&cells.join(","));
        }
        out.push('\n');
    }
    out!("{out}");
    Ok(ExitCode::SUCCESS)
}

/// Runs `slope grad FILE --weights W --data D --out G`: the gradient of the
/// mean loss over all rows of D, written as float32 safetensors. `slope
/// grad` calls this when `--weights` is given.
pub fn grad_numeric(
    file: &Path,
    model: Option<&str>,
    weights_path: &Path,
    data: Option<&Path>,
    out: Option<&Path>,
) -> Result<ExitCode, Failure> {
    let (Some(data), Some(out)) = (data, out) else {
        return Err(Failure::Usage(
            "error: `slope grad --weights` needs --data D and --out G\n".into(),
        ));
    };
    let loaded = common::load_program(file, model)?;
    let w = common::read_weights(weights_path, loaded.model())?;
    let ds = common::load_data_file(&loaded, data, false)?;
    if ds.rows == 0 {
        return Err(Failure::Input(format!(
            "error: '{}' has no data rows\n",
            data.display()
        )));
    }
    let net = compile(&loaded)?;
    let g = tasks::gradient(&net, &w, ds.features.clone(), ds.targets.clone(), ds.rows)
        .map_err(task_failure)?;
    weights::write_atomic(out, &weights::to_safetensors(&g)).map_err(|e| {
        Failure::Input(format!(
            "error: cannot write '{}': {}\n",
            out.display(),
            super::source::io_message(&e)
        ))
    })?;
    Ok(ExitCode::SUCCESS)
}

/// Runs `slope grad FILE --weights W --data D --sample N [--json]`: the
/// equations with each one's value on row N of D, from f64 compiled code.
pub fn grad_sample(
    file: &Path,
    model: Option<&str>,
    (weights_path, data): (&Path, &Path),
    row: u64,
    json: bool,
) -> Result<ExitCode, Failure> {
    let loaded = common::load_program(file, model)?;
    let w = common::read_weights(weights_path, loaded.model())?;
    let ds = common::load_data_file(&loaded, data, false)?;
    let n = usize::try_from(row).unwrap_or(usize::MAX);
    if n == 0 || n > ds.rows {
        return Err(Failure::Usage(format!(
            "error: --sample {row} is not a row of '{}', which has {} data row{}\n  = help: rows count from 1, the header not included\n",
            data.display(),
            ds.rows,
            if ds.rows == 1 { "" } else { "s" }
        )));
    }
    let (nx, nt) = (ds.n_features(), ds.n_targets());
    let x = tasks::widen::<f64>(&ds.features[(n - 1) * nx..n * nx]);
    let t = tasks::widen::<f64>(&ds.targets[(n - 1) * nt..n * nt]);
    let net = pipeline::lower(&loaded.program, loaded.model())
        .map_err(|d| Failure::Input(loaded.render(&[d])))?;
    let eq = equations::derive(net, loaded.model());
    let values = tasks::probe(eq.network(), &w, &x, &t, &eq.value_nodes()).map_err(task_failure)?;
    let sample = equations::Sample {
        title: format!(
            "row {n} of {} at weights {}",
            data.display(),
            weights_path.display()
        ),
        row: n,
        x,
        t,
        params: tasks::param_values::<f64>(&w),
        values,
    };
    if json {
        outln!("{}", eq.json_worked(&sample));
    } else {
        out!("{}", eq.render_worked(&sample));
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs `slope gradcheck`.
pub fn gradcheck(args: GradcheckArgs) -> Result<ExitCode, Failure> {
    let loaded = common::load_program(&args.file, args.model.as_deref())?;
    let model = loaded.model();
    let w = match &args.weights {
        Some(p) => common::read_weights(p, model)?,
        None => {
            let seed = loaded.program.train.as_ref().map_or(0, |t| t.seed.value);
            weights::init(model, seed)
        }
    };
    let Some(data) = common::load_dataset(&loaded)? else {
        return Err(Failure::Input(format!(
            "error: '{}' has no train block with a data statement; gradcheck needs the model's data\n",
            loaded.name
        )));
    };
    let ds = data.dataset;
    let rows = ds.rows.min(GRADCHECK_ROWS);
    if rows == 0 {
        return Err(Failure::Input(format!(
            "error: '{}' has no data rows\n",
            data.name
        )));
    }
    let net = compile(&loaded)?;
    let x = tasks::widen(&ds.features[..rows * ds.n_features()]);
    let t = tasks::widen(&ds.targets[..rows * ds.n_targets()]);
    let checks = tasks::gradcheck(&net, &w, x, t, rows).map_err(task_failure)?;
    outln!(
        "gradcheck {}: {rows} rows, f64 JIT gradient vs central differences (error: |g - fd| / max(|g|, |fd|, {GRADCHECK_FLOOR:e}))",
        model.name
    );
    let sampled: usize = checks.iter().map(|c| c.checked).sum();
    let total: usize = checks.iter().map(|c| c.len).sum();
    if sampled < total {
        outln!(
            "  sampled {sampled} of {total} elements (at most {GRADCHECK_ELEMENTS} per tensor, \
             {GRADCHECK_BUDGET} in all, evenly spaced)"
        );
    }
    let mut worst_all: f64 = 0.0;
    for (tensor, c) in w.tensors.iter().zip(&checks) {
        if c.checked == 0 {
            outln!("  {:<24} not sampled", tensor.name);
            continue;
        }
        let mut sampled = if c.checked < c.len {
            format!(" ({} of {} elements)", c.checked, c.len)
        } else {
            String::new()
        };
        if c.kinks > 0 {
            sampled.push_str(&format!(" ({} at kinks)", c.kinks));
        }
        outln!(
            "  {:<24} worst relative error {:.2e}{sampled}",
            tensor.name,
            c.worst
        );
        worst_all = worst_all.max(c.worst);
    }
    if checks.iter().any(|c| c.kinks > 0) {
        outln!(
            "  at a kink (relu at 0, a max pooling tie) the central difference straddles two \
             slopes; there the gradient matched the one-sided difference its derivative rule takes"
        );
    }
    if worst_all <= GRADCHECK_TOL {
        outln!("ok: every tensor within {GRADCHECK_TOL:e}");
        Ok(ExitCode::SUCCESS)
    } else {
        outln!("FAILED: worst relative error {worst_all:.2e} exceeds {GRADCHECK_TOL:e}");
        Ok(ExitCode::from(1))
    }
}
