//! `slope bench`: times every phase of the compiler, the compiled loss +
//! gradients and the whole training step. The compiled computations come
//! from the library (`pipeline`, `train::tasks`); this file times and prints.

use super::common::{self, Loaded};
use super::{Failure, PathArg};
use crate::check::model::{LayerKind, Loss};
use crate::codegen::Jit;
use crate::train::tasks::{self, LossGrad, TrainStep, param_values};
use crate::train::weights;
use crate::{check, pipeline, syntax};
use clap::Args;
use std::process::ExitCode;
use std::time::Instant;

/// Arguments of `slope bench`.
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// The `.nn` file.
    pub file: PathArg,
    /// Which model, when the file has several.
    #[arg(long)]
    pub model: Option<String>,
    /// Threads (default 1): a batch with enough work is split by rows
    /// across them, as `slope train` does.
    #[arg(long)]
    pub threads: Option<usize>,
    /// Rows per step, overriding the file's `batch` (at most 4096).
    #[arg(long)]
    pub batch: Option<usize>,
}

fn jit_failure(e: impl std::fmt::Display) -> Failure {
    Failure::Input(format!("error: {e}\n"))
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
    let opt = train.map_or(crate::check::model::Optimizer::default(), |t| t.optimizer);
    let reps = 21;
    let parse = time_each(reps, || {
        std::hint::black_box(syntax::parse(&loaded.text));
    });
    let (file, _) = syntax::parse(&loaded.text);
    let checkt = time_each(reps, || {
        std::hint::black_box(check::check(&file));
    });
    let compile_net = || {
        pipeline::compile(&loaded.program, &model).map_err(|d| Failure::Input(loaded.render(&[d])))
    };
    let mut lower_diff = Vec::new();
    let mut simp = Vec::new();
    for _ in 0..reps {
        let (_, tm) = compile_net()?;
        lower_diff.push(tm.lower_diff);
        simp.push(tm.simplify);
    }
    let (lower_diff, simp) = (stats(lower_diff), stats(simp));
    let (net, _) = compile_net()?;
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
    let mut lg = None;
    let compile = time_each(5, || {
        lg = Some(LossGrad::<f32>::new(
            &mut jit,
            &net,
            (true, true),
            batch,
            x.clone(),
            t.clone(),
        ));
    });
    let mut lg = lg
        .expect("compiled five times above")
        .map_err(jit_failure)?;
    let mut ts = TrainStep::new(&mut jit, (&net, &model), &opt, (batch, threads), (x, t))
        .map_err(jit_failure)?;
    let params = param_values::<f32>(&weights::init(&model, 1));
    let mut outs = lg.outputs();
    let mut failed = None;
    // The argument lists are built once, outside the timed calls, as the
    // training loop does: per-call allocations would time the allocator
    // (and leave freed chunks that make the GEMM's own allocation slower).
    let loss_grad = {
        let ins = tasks::inputs(&lg.entry, &lg.x, &lg.t, &params);
        let mut refs: Vec<&mut [f32]> = outs.iter_mut().map(|o| o.as_mut_slice()).collect();
        time_batched(|| {
            if let Err(e) = lg.f.call(&ins, &mut [], &mut refs) {
                failed = Some(jit_failure(e));
            }
        })
    };
    let step = ts.with_runner(|run| {
        time_batched(|| {
            if let Err(e) = run() {
                failed = Some(jit_failure(e));
            }
        })
    });
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
    outln!(
        "bench {} (batch {batch}, {threads} thread(s); median [interquartile range])",
        model.name
    );
    outln!("  parse            {}", parse.show());
    outln!("  check            {}", checkt.show());
    outln!("  lower+diff       {}", lower_diff.show());
    outln!("  simplify         {}", simp.show());
    outln!("  JIT compile      {}", compile.show());
    outln!(
        "  loss+grad        {}  {}",
        loss_grad.show(),
        rate(&loss_grad)
    );
    outln!("  train step       {}  {}", step.show(), rate(&step));
    // 2 flop per multiply-add forward, and 4 for the two backward products
    // (the weight's gradient and δ of the layer's input).
    if model
        .layers
        .iter()
        .any(|l| matches!(l.kind, LayerKind::Conv { .. }))
    {
        outln!(
            "  (GFLOP/s counts 6·B·Σ MACs = {flops} flop per step; \
             a conv layer has N·H'·W'·C·K·K MACs per example, a dense one in·out)"
        );
    } else {
        outln!("  (GFLOP/s counts 6·B·Σ in·out = {flops} flop per step)");
    }
    Ok(ExitCode::SUCCESS)
}
