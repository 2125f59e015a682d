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
    let w = common::read_weights(&args.weights, model)?;
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
    let w = common::read_weights(weights_path, loaded.model())?;
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
/// Elements checked per tensor at most: evenly spaced, first and last
/// included, so a large model is checked in seconds rather than hours.
const GRADCHECK_ELEMENTS: usize = 256;

/// The indices `gradcheck` compares in a tensor of `len` elements.
fn gradcheck_indices(len: usize) -> Vec<usize> {
    if len <= GRADCHECK_ELEMENTS {
        return (0..len).collect();
    }
    let last = (len - 1) as f64;
    let steps = (GRADCHECK_ELEMENTS - 1) as f64;
    let mut picked: Vec<usize> = (0..GRADCHECK_ELEMENTS)
        .map(|k| (k as f64 * last / steps).round() as usize)
        .collect();
    picked.dedup();
    picked
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
        let indices = gradcheck_indices(params[ti].len());
        for &i in &indices {
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
        let sampled = if indices.len() < params[ti].len() {
            format!(" ({} of {} elements)", indices.len(), params[ti].len())
        } else {
            String::new()
        };
        println!(
            "  {:<24} worst relative error {worst:.2e}{sampled}",
            tensor.name
        );
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

/// Wall-time statistics of repeated runs, in seconds.
#[derive(Clone, Copy)]
struct Stats {
    median: f64,
    q1: f64,
    q3: f64,
}

impl Stats {
    /// `median [q1–q3]` in the unit that fits.
    fn show(&self) -> String {
        let f = |s: f64| {
            if s < 1e-3 {
                format!("{:.2} µs", s * 1e6)
            } else {
                format!("{:.3} ms", s * 1e3)
            }
        };
        format!(
            "{:>10}  [IQR {} – {}]",
            f(self.median),
            f(self.q1),
            f(self.q3)
        )
    }
}

/// Statistics of `samples` wall times, in seconds.
fn stats(mut t: Vec<f64>) -> Stats {
    t.sort_by(f64::total_cmp);
    let q = |p: f64| t[((t.len() - 1) as f64 * p).round() as usize];
    Stats {
        median: q(0.5),
        q1: q(0.25),
        q3: q(0.75),
    }
}

/// Times `f` over `n` single runs.
fn time_each(n: usize, mut f: impl FnMut()) -> Stats {
    stats(
        (0..n)
            .map(|_| {
                let s = Instant::now();
                f();
                s.elapsed().as_secs_f64()
            })
            .collect(),
    )
}

/// Times `f` in 21 samples of enough calls each to last about 25 ms (at
/// least one), after a warm-up: per-call statistics.
fn time_batched(mut f: impl FnMut()) -> Stats {
    for _ in 0..3 {
        f();
    }
    let s = Instant::now();
    f();
    let one = s.elapsed().as_secs_f64().max(1e-8);
    let iters = ((0.025 / one) as usize).clamp(1, 100_000);
    stats(
        (0..21)
            .map(|_| {
                let s = Instant::now();
                for _ in 0..iters {
                    f();
                }
                s.elapsed().as_secs_f64() / iters as f64
            })
            .collect(),
    )
}

/// The training step exactly as `slope train` compiles it (forward, loss,
/// correct count, gradients, finiteness checks, the file's optimizer update
/// in place), with buffers to call it on.
struct TrainStep {
    f: Compiled<f32>,
    inputs: Vec<Vec<f32>>,
    states: Vec<Vec<f32>>,
    outputs: Vec<Vec<f32>>,
}

impl TrainStep {
    fn new(
        jit: &mut Jit,
        net: &crate::train::Network,
        model: &Model,
        opt: &crate::check::model::Optimizer,
        batch: usize,
        x: Vec<f32>,
        t: Vec<f32>,
    ) -> Result<TrainStep, Failure> {
        use crate::train::optim;
        let mut g = net.graph.clone();
        let pairs: Vec<(NodeId, NodeId)> =
            net.params.iter().copied().zip(net.grads.clone()).collect();
        let up = optim::build_updates(&mut g, &pairs, opt).map_err(jit_failure)?;
        let mut outputs = vec![net.loss];
        if let Some(c) = net.correct {
            let rank = g.node(c).shape.0.len();
            let c = if rank == 0 {
                c
            } else {
                let axes = crate::graph::Axes(((1u16 << rank) - 1) as u8);
                g.add(crate::graph::Op::Sum(axes), &[c])
                    .map_err(jit_failure)?
            };
            outputs.push(c);
        }
        for &gr in &net.grads {
            outputs.push(optim::finite_check(&mut g, gr).map_err(jit_failure)?);
        }
        let mut inputs = vec![net.x, net.t];
        inputs.extend(&up.scalars);
        let sig = Signature {
            inputs,
            outputs,
            updates: up.updates.clone(),
        };
        let f = jit.compile::<f32>(&g, &sig, batch).map_err(jit_failure)?;
        let mut ins = vec![x, t];
        // Adam's bias corrections at a mid-run step: any value works for timing.
        ins.extend(up.scalars.iter().map(|_| vec![1.0f32]));
        let mut states: Vec<Vec<f32>> = weights::init(model, 1)
            .tensors
            .into_iter()
            .map(|t| t.data)
            .collect();
        for &(_, p) in &up.states {
            states.push(vec![0.0; states[p].len()]);
        }
        let outputs = f.output_lens().iter().map(|&n| vec![0.0; n]).collect();
        Ok(TrainStep {
            f,
            inputs: ins,
            states,
            outputs,
        })
    }
}

/// The largest batch `slope bench` times.
const BENCH_MAX_BATCH: usize = 4096;

/// Runs `slope bench`: every phase of the compiler, then the compiled loss +
/// gradients and the whole training step at the file's batch size. Every
/// figure is a median with its interquartile range.
pub fn bench(args: BenchArgs) -> Result<ExitCode, Failure> {
    if args.threads == Some(0) {
        return Err(Failure::Usage(
            "error: invalid value for '--threads': must be at least 1\n".into(),
        ));
    }
    if args.batch == Some(0) {
        return Err(Failure::Usage(
            "error: invalid value for '--batch': must be at least 1\n".into(),
        ));
    }
    let threads = args.threads.unwrap_or(1);
    let loaded: Loaded = common::load_program(&args.file, args.model.as_deref())?;
    let model = loaded.model().clone();
    let train = loaded.program.train.as_ref();
    // The file's batch may be far larger than any data set (training then
    // uses all rows per step); the benchmark's made-up rows are capped so
    // `batch 4000000000` does not allocate terabytes.
    let batch = args
        .batch
        .unwrap_or_else(|| train.map_or(32, |t| t.batch.value))
        .min(BENCH_MAX_BATCH);
    let opt = train.map_or(
        crate::check::model::Optimizer::Sgd {
            lr: crate::check::model::Setting::default(0.01),
            momentum: crate::check::model::Setting::default(0.0),
        },
        |t| t.optimizer,
    );
    let reps = 21;
    let parse = time_each(reps, || {
        std::hint::black_box(syntax::parse(&loaded.text));
    });
    let (file, _) = syntax::parse(&loaded.text);
    let checkt = time_each(reps, || {
        std::hint::black_box(check::check(&file));
    });
    let mut lower_diff = Vec::new();
    let mut simp = Vec::new();
    for _ in 0..reps {
        let (_, tm) = train_net::network(&loaded)?;
        lower_diff.push(tm.lower_diff);
        simp.push(tm.simplify);
    }
    let (lower_diff, simp) = (stats(lower_diff), stats(simp));
    let (net, _) = train_net::network(&loaded)?;
    let mut jit = Jit::new(threads).map_err(jit_failure)?;
    let nx = model.input.features() * batch;
    let nt = if model.loss == Loss::CrossEntropy {
        batch
    } else {
        model.output_width() * batch
    };
    // Inputs in [0, 1) and valid class indices: any values time the same,
    // but NaN-free ones keep the step's arithmetic representative.
    let x: Vec<f32> = (0..nx)
        .map(|i| ((i * 7919) % 1000) as f32 / 1000.0)
        .collect();
    let k = model.output_width().max(1);
    let t: Vec<f32> = if model.loss == Loss::CrossEntropy {
        (0..nt).map(|i| (i % k) as f32).collect()
    } else {
        (0..nt).map(|i| (i % 2) as f32).collect()
    };
    let mut outputs = vec![net.loss];
    outputs.extend(&net.grads);
    let mut lg = None;
    let compile = time_each(5, || {
        lg = Some(LossGrad::<f32>::new(
            &mut jit,
            &net,
            outputs.clone(),
            batch,
            x.clone(),
            t.clone(),
        ));
    });
    let mut lg = lg.expect("compiled five times above")?;
    let mut ts = TrainStep::new(&mut jit, &net, &model, &opt, batch, x, t)?;
    let params = param_values::<f32>(&weights::init(&model, 1));
    let mut outs = lg.outputs();
    let mut failed = None;
    // The argument lists are built once, outside the timed calls, as the
    // training loop does: per-call allocations would time the allocator
    // (and leave freed chunks that make the GEMM's own allocation slower).
    let loss_grad = {
        let mut ins: Vec<&[f32]> = vec![&lg.x, &lg.t];
        ins.extend(params.iter().map(|p| p.as_slice()));
        let mut refs: Vec<&mut [f32]> = outs.iter_mut().map(|o| o.as_mut_slice()).collect();
        time_batched(|| {
            if let Err(e) = lg.f.call(&ins, &mut [], &mut refs) {
                failed = Some(jit_failure(e));
            }
        })
    };
    let step = {
        let ins: Vec<&[f32]> = ts.inputs.iter().map(Vec::as_slice).collect();
        let mut st: Vec<&mut [f32]> = ts.states.iter_mut().map(Vec::as_mut_slice).collect();
        let mut out: Vec<&mut [f32]> = ts.outputs.iter_mut().map(Vec::as_mut_slice).collect();
        time_batched(|| {
            if let Err(e) = ts.f.call(&ins, &mut st, &mut out) {
                failed = Some(jit_failure(e));
            }
        })
    };
    if let Some(e) = failed {
        return Err(e);
    }
    let flops: usize = model
        .layers
        .iter()
        .map(|l| 6 * batch * l.forward_macs())
        .sum();
    let rate = |s: &Stats| {
        format!(
            "{:>9.0} steps/s  {:6.2} GFLOP/s",
            1.0 / s.median,
            flops as f64 / s.median / 1e9
        )
    };
    println!(
        "bench {} (batch {batch}, {threads} thread(s); median [interquartile range])",
        model.name
    );
    println!("  parse            {}", parse.show());
    println!("  check            {}", checkt.show());
    println!("  lower+diff       {}", lower_diff.show());
    println!("  simplify         {}", simp.show());
    println!("  JIT compile      {}", compile.show());
    println!(
        "  loss+grad        {}  {}",
        loss_grad.show(),
        rate(&loss_grad)
    );
    println!("  train step       {}  {}", step.show(), rate(&step));
    println!("  (GFLOP/s counts 6·B·Σ in·out = {flops} flop per step)");
    Ok(ExitCode::SUCCESS)
}
