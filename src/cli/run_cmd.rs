//! The bodies of the commands that run compiled code: `predict`, numeric
//! `grad --weights`, `gradcheck` and `bench`. Every number here comes from
//! JIT-compiled code, never from the interpreter.

use super::common::{self, Loaded};
use super::run::{BenchArgs, GradcheckArgs, PredictArgs};
use super::{Failure, train_net};
use crate::check::model::{Loss, Model};
use crate::codegen::{Compiled, Element, Jit, Signature};
use crate::graph::NodeId;
use crate::train::weights::{self, Weights};
use crate::{check, lower, syntax};
use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

fn jit_failure(e: impl std::fmt::Display) -> Failure {
    Failure::Input(format!("error: {e}\n"))
}

/// Reads and checks a weights file against the model; errors name the tensor.
fn read_weights(path: &Path, model: &Model) -> Result<Weights, Failure> {
    let bytes = std::fs::read(path).map_err(|e| {
        Failure::Input(format!(
            "error: cannot read weights '{}': {}\n",
            path.display(),
            super::source::io_message(&e)
        ))
    })?;
    weights::from_safetensors(&bytes, model).map_err(|e| {
        Failure::Input(format!(
            "error: weights '{}' do not fit model '{}': {e}\n",
            path.display(),
            model.name
        ))
    })
}

/// The weights' values in `T`, in parameter order.
fn param_values<T: Element>(w: &Weights) -> Vec<Vec<T>> {
    w.tensors
        .iter()
        .map(|t| t.data.iter().map(|&v| T::from_f64(f64::from(v))).collect())
        .collect()
}

/// Runs `slope predict`.
pub fn predict(args: PredictArgs) -> Result<ExitCode, Failure> {
    let loaded = common::load_program(&args.file, args.model.as_deref())?;
    let model = loaded.model();
    let w = read_weights(&args.weights, model)?;
    let data = common::load_data_file(&loaded, &args.data, true)?;
    let net = lower::lower_model(&loaded.program, model)
        .map_err(|d| Failure::Input(loaded.render(&[d])))?;
    let mut inputs = vec![net.x];
    inputs.extend(net.params.iter().map(|p| p.node));
    let sig = Signature {
        inputs,
        outputs: vec![net.y],
        updates: vec![],
    };
    let rows = data.rows;
    if rows == 0 {
        return Err(Failure::Input(format!(
            "error: '{}' has no data rows\n",
            args.data.display()
        )));
    }
    let mut jit = Jit::new(1).map_err(jit_failure)?;
    let mut f = jit
        .compile::<f32>(&net.graph, &sig, rows)
        .map_err(jit_failure)?;
    let params = param_values::<f32>(&w);
    let mut ins: Vec<&[f32]> = vec![&data.features];
    ins.extend(params.iter().map(|p| p.as_slice()));
    let k = f.output_lens()[0] / rows;
    let mut y = vec![0.0f32; rows * k];
    f.call(&ins, &mut [], &mut [&mut y]).map_err(jit_failure)?;
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
    for row in y.chunks(k) {
        let classes: Vec<usize> = match model.loss {
            Loss::CrossEntropy => {
                // The first largest output, as the accuracy count does.
                let best = row
                    .iter()
                    .enumerate()
                    .fold(0, |b, (i, &v)| if v > row[b] { i } else { b });
                vec![best]
            }
            Loss::Bce => row.iter().map(|&v| usize::from(v > 0.5)).collect(),
            Loss::Mse | Loss::Custom(_) => vec![],
        };
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
    print!("{out}");
    Ok(ExitCode::SUCCESS)
}

/// A compiled mean loss and its gradients over a fixed set of rows.
struct LossGrad<T: Element> {
    f: Compiled<T>,
    x: Vec<T>,
    t: Vec<T>,
}

impl<T: Element> LossGrad<T> {
    /// Compiles `outputs` of the network over all `rows` of `x`/`t`.
    fn new(
        jit: &mut Jit,
        net: &crate::train::Network,
        outputs: Vec<NodeId>,
        rows: usize,
        x: Vec<T>,
        t: Vec<T>,
    ) -> Result<Self, Failure> {
        let mut inputs = vec![net.x, net.t];
        inputs.extend(&net.params);
        let sig = Signature {
            inputs,
            outputs,
            updates: vec![],
        };
        let f = jit
            .compile::<T>(&net.graph, &sig, rows)
            .map_err(jit_failure)?;
        Ok(LossGrad { f, x, t })
    }

    fn run(&mut self, params: &[Vec<T>], outs: &mut [Vec<T>]) -> Result<(), Failure> {
        let mut ins: Vec<&[T]> = vec![&self.x, &self.t];
        ins.extend(params.iter().map(|p| p.as_slice()));
        let mut refs: Vec<&mut [T]> = outs.iter_mut().map(|o| o.as_mut_slice()).collect();
        self.f.call(&ins, &mut [], &mut refs).map_err(jit_failure)
    }

    fn outputs(&self) -> Vec<Vec<T>> {
        self.f
            .output_lens()
            .iter()
            .map(|&n| vec![T::default(); n])
            .collect()
    }
}

fn widen<T: Element>(v: &[f32]) -> Vec<T> {
    v.iter().map(|&x| T::from_f64(f64::from(x))).collect()
}

/// Runs `slope grad FILE --weights W --data D --out G`: the gradient of the
/// mean loss over all rows of D, written as float32 safetensors.
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
    let w = read_weights(weights_path, loaded.model())?;
    let ds = common::load_data_file(&loaded, data, false)?;
    if ds.rows == 0 {
        return Err(Failure::Input(format!(
            "error: '{}' has no data rows\n",
            data.display()
        )));
    }
    let (net, _) = train_net::network(&loaded)?;
    let mut jit = Jit::new(1).map_err(jit_failure)?;
    let mut lg = LossGrad::<f32>::new(
        &mut jit,
        &net,
        net.grads.clone(),
        ds.rows,
        ds.features.clone(),
        ds.targets.clone(),
    )?;
    let mut outs = lg.outputs();
    lg.run(&param_values(&w), &mut outs)?;
    let mut g = w.clone();
    for (t, o) in g.tensors.iter_mut().zip(outs) {
        t.data = o;
    }
    weights::write_atomic(out, &weights::to_safetensors(&g)).map_err(|e| {
        Failure::Input(format!(
            "error: cannot write '{}': {}\n",
            out.display(),
            super::source::io_message(&e)
        ))
    })?;
    Ok(ExitCode::SUCCESS)
}

/// Relative error beyond which `gradcheck` fails.
const GRADCHECK_TOL: f64 = 1e-4;
/// Gradients smaller than this are compared by absolute error.
const GRADCHECK_FLOOR: f64 = 1e-4;
/// Rows used by `gradcheck` at most (finite differences cost two losses per scalar).
const GRADCHECK_ROWS: usize = 64;

/// Runs `slope gradcheck`.
pub fn gradcheck(args: GradcheckArgs) -> Result<ExitCode, Failure> {
    let loaded = common::load_program(&args.file, args.model.as_deref())?;
    let model = loaded.model();
    let w = match &args.weights {
        Some(p) => read_weights(p, model)?,
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
    let (net, _) = train_net::network(&loaded)?;
    let x: Vec<f64> = widen(&ds.features[..rows * ds.n_features()]);
    let t: Vec<f64> = widen(&ds.targets[..rows * ds.n_targets()]);
    let mut jit = Jit::new(1).map_err(jit_failure)?;
    let mut lg = LossGrad::<f64>::new(
        &mut jit,
        &net,
        net.grads.clone(),
        rows,
        x.clone(),
        t.clone(),
    )?;
    let mut loss = LossGrad::<f64>::new(&mut jit, &net, vec![net.loss], rows, x, t)?;
    let mut params = param_values::<f64>(&w);
    let mut grads = lg.outputs();
    lg.run(&params, &mut grads)?;
    let mut lout = loss.outputs();
    println!(
        "gradcheck {}: {rows} rows, f64 JIT gradient vs central differences (error: |g - fd| / max(|g|, |fd|, {GRADCHECK_FLOOR:e}))",
        model.name
    );
    let mut worst_all: f64 = 0.0;
    for (ti, tensor) in w.tensors.iter().enumerate() {
        let mut worst: f64 = 0.0;
        for i in 0..params[ti].len() {
            let v = params[ti][i];
            let h = 1e-6 * v.abs().max(1.0);
            params[ti][i] = v + h;
            loss.run(&params, &mut lout)?;
            let up = lout[0][0];
            params[ti][i] = v - h;
            loss.run(&params, &mut lout)?;
            let down = lout[0][0];
            params[ti][i] = v;
            let fd = (up - down) / (2.0 * h);
            let g = grads[ti][i];
            // Gradients below the floor are compared absolutely: there the
            // differences' rounding noise (about 1e-16·loss/h) dominates.
            let err = (g - fd).abs() / g.abs().max(fd.abs()).max(GRADCHECK_FLOOR);
            worst = if err.is_nan() {
                f64::INFINITY
            } else {
                worst.max(err)
            };
        }
        println!("  {:<24} worst relative error {worst:.2e}", tensor.name);
        worst_all = worst_all.max(worst);
    }
    if worst_all <= GRADCHECK_TOL {
        println!("ok: every tensor within {GRADCHECK_TOL:e}");
        Ok(ExitCode::SUCCESS)
    } else {
        println!("FAILED: worst relative error {worst_all:.2e} exceeds {GRADCHECK_TOL:e}");
        Ok(ExitCode::from(1))
    }
}

/// The median of `f`'s wall time over `n` runs, in seconds.
fn median_secs(n: usize, mut f: impl FnMut()) -> f64 {
    let mut t: Vec<f64> = (0..n)
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed().as_secs_f64()
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[t.len() / 2]
}

/// The largest batch `slope bench` times.
const BENCH_MAX_BATCH: usize = 4096;

/// Runs `slope bench`.
pub fn bench(args: BenchArgs) -> Result<ExitCode, Failure> {
    if args.threads == Some(0) {
        return Err(Failure::Usage(
            "error: invalid value for '--threads': must be at least 1\n".into(),
        ));
    }
    let threads = args.threads.unwrap_or(1);
    let loaded: Loaded = common::load_program(&args.file, args.model.as_deref())?;
    let model = loaded.model().clone();
    // The file's batch may be far larger than any data set (training then
    // uses all rows per step); the benchmark's made-up rows are capped so
    // `batch 4000000000` does not allocate terabytes.
    let batch = loaded
        .program
        .train
        .as_ref()
        .map_or(32, |t| t.batch.value)
        .min(BENCH_MAX_BATCH);
    let reps = 20;
    let parse = median_secs(reps, || {
        std::hint::black_box(syntax::parse(&loaded.text));
    });
    let (file, _) = syntax::parse(&loaded.text);
    let checkt = median_secs(reps, || {
        std::hint::black_box(check::check(&file));
    });
    let lowert = median_secs(reps, || {
        std::hint::black_box(lower::lower_model(&loaded.program, &model).ok());
    });
    let mut diff_s = Vec::new();
    let mut simp_s = Vec::new();
    for _ in 0..5 {
        let (_, tm) = train_net::network(&loaded)?;
        diff_s.push(tm.lower_diff - lowert);
        simp_s.push(tm.simplify);
    }
    diff_s.sort_by(f64::total_cmp);
    simp_s.sort_by(f64::total_cmp);
    let (net, _) = train_net::network(&loaded)?;
    let mut jit = Jit::new(threads).map_err(jit_failure)?;
    let nx = model.input * batch;
    let nt = if model.loss == Loss::CrossEntropy {
        batch
    } else {
        model.output_width() * batch
    };
    let x = vec![0.5f32; nx];
    let t = vec![0.0f32; nt];
    let mut outputs = vec![net.loss];
    outputs.extend(&net.grads);
    let mut compile_times = Vec::new();
    let mut lg = None;
    for _ in 0..5 {
        let s = Instant::now();
        lg = Some(LossGrad::<f32>::new(
            &mut jit,
            &net,
            outputs.clone(),
            batch,
            x.clone(),
            t.clone(),
        )?);
        compile_times.push(s.elapsed().as_secs_f64());
    }
    compile_times.sort_by(f64::total_cmp);
    let mut lg = lg.expect("compiled five times above");
    let params = param_values::<f32>(&weights::init(&model, 1));
    let mut outs = lg.outputs();
    let mut failed = None;
    let mut step = || {
        if let Err(e) = lg.run(&params, &mut outs) {
            failed = Some(e);
        }
    };
    for _ in 0..10 {
        step();
    }
    // Enough repetitions for about half a second.
    let one = median_secs(5, &mut step).max(1e-7);
    let n = ((0.5 / one) as usize).clamp(5, 20_000);
    let per_step = median_secs(n, &mut step);
    if let Some(e) = failed {
        return Err(e);
    }
    let flops: usize = model
        .layers
        .iter()
        .map(|l| 6 * batch * l.input_width * l.width)
        .sum();
    let ms = |s: f64| format!("{:.3} ms", s * 1e3);
    println!(
        "bench {} (batch {batch}, {threads} thread(s), medians)",
        model.name
    );
    println!("  parse            {}", ms(parse));
    println!("  check            {}", ms(checkt));
    println!("  lower            {}", ms(lowert));
    println!("  diff             {}", ms(diff_s[2].max(0.0)));
    println!("  simplify         {}", ms(simp_s[2]));
    println!("  JIT compile      {}", ms(compile_times[2]));
    println!(
        "  loss+grad step   {:.2} µs  {:.0} steps/s  {:.2} GFLOP/s (6·B·Σ in·out = {flops} flop)",
        per_step * 1e6,
        1.0 / per_step,
        flops as f64 / per_step / 1e9
    );
    Ok(ExitCode::SUCCESS)
}
