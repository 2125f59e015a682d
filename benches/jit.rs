//! Criterion benchmarks of the compiler and of the code it generates.
//!
//! * `pipeline/digits`: parse → check → lower → diff → simplify → JIT-ready
//!   for `examples/digits.nn`.
//! * `digits/loss_grad/B`: one loss + all gradients of the digits network
//!   (64-32-10 tanh, softmax + cross-entropy) at batch 1, 32 and 256.
//! * `digits/train_step/32`: the fused training step (loss, gradients, SGD
//!   update, the finiteness checks) exactly as `slope train` compiles it.
//! * `w2/...`: the 784-512-512-10 relu network at batch 256: loss + grad,
//!   the fused train step, and `slope::codegen::gemm::product` (the `gemm`
//!   crate) alone on the same eight products with the same operand layouts
//!   (the ceiling for the step, measured in the same run so that ratios
//!   survive a noisy machine).
//!
//! Run: `cargo bench --bench jit` (one thread; `SLOPE_BENCH_THREADS=2` for
//! two). After criterion's own report, a summary
//! table prints medians and the interquartile range of an independent
//! timing loop, and GFLOP/s counted as 6·B·Σ in·out per step.

use criterion::Criterion;
use slope::check::model::{Model, Optimizer, Program};
use slope::codegen::{Compiled, Jit};
use slope::pipeline::{self, Network};
use slope::train::tasks::{self, LossGrad, TrainStep};
use slope::train::weights;
use slope::{check, syntax};
use std::hint::black_box;
use std::time::{Duration, Instant};

const DIGITS: &str = include_str!("../examples/digits.nn");

/// The W2 workload of `notes/peers.md` as a `.nn` file.
const W2: &str = "model w2 {
    input 784
    dense 512 relu
    dense 512 relu
    dense 10 softmax
    loss cross_entropy
}
";

/// Everything the benchmarks need from one `.nn` source.
struct Net {
    model: Model,
    net: Network,
}

/// The front end and the compile pipeline, as `slope train` runs them.
fn front(src: &str) -> Net {
    let (file, diags) = syntax::parse(src);
    assert!(diags.is_empty(), "benchmark source parses: {diags:?}");
    let (program, diags): (Program, _) = check::check(&file);
    assert!(diags.is_empty(), "benchmark source checks: {diags:?}");
    let model = program.models[0].clone();
    let (net, _) = pipeline::compile(&program, &model).expect("benchmark model compiles");
    Net { model, net }
}

/// A compiled function with its argument buffers.
enum Runner {
    Plain(Box<Plain>),
    Step(Box<TrainStep>),
}

struct Plain {
    f: Compiled<f32>,
    inputs: Vec<Vec<f32>>,
    states: Vec<Vec<f32>>,
    outputs: Vec<Vec<f32>>,
}

impl Runner {
    fn run(&mut self) {
        match self {
            Runner::Plain(p) => p.run(),
            Runner::Step(s) => s.run().expect("buffers fit"),
        }
    }
}

impl Plain {
    fn run(&mut self) {
        let ins: Vec<&[f32]> = self.inputs.iter().map(Vec::as_slice).collect();
        let mut st: Vec<&mut [f32]> = self.states.iter_mut().map(Vec::as_mut_slice).collect();
        let mut out: Vec<&mut [f32]> = self.outputs.iter_mut().map(Vec::as_mut_slice).collect();
        self.f.call(&ins, &mut st, &mut out).expect("buffers fit");
    }
}

/// Deterministic inputs in [0, 1) and valid class indices.
fn batch_data(model: &Model, batch: usize) -> (Vec<f32>, Vec<f32>) {
    let x = (0..batch * model.input.features())
        .map(|i| ((i * 7919) % 1000) as f32 / 1000.0)
        .collect();
    let k = model.output_width();
    let t = (0..batch).map(|i| (i % k) as f32).collect();
    (x, t)
}

/// Loss + every gradient at `batch` rows.
fn loss_grad(jit: &mut Jit, net: &Net, batch: usize) -> Runner {
    let (x, t) = batch_data(&net.model, batch);
    let lg = LossGrad::<f32>::new(jit, &net.net, (true, true), batch, x, t).expect("compiles");
    let params = tasks::param_values::<f32>(&weights::init(&net.model, 1));
    let inputs = tasks::inputs(&lg.entry, &lg.x, &lg.t, &params)
        .into_iter()
        .map(<[f32]>::to_vec)
        .collect();
    let outputs = lg.outputs();
    Runner::Plain(Box::new(Plain {
        f: lg.f,
        inputs,
        states: vec![],
        outputs,
    }))
}

/// The training step as `train::train` builds it: loss, correct count,
/// finiteness checks of every gradient, and the SGD update in place.
fn train_step(jit: &mut Jit, net: &Net, batch: usize, lr: f64) -> Runner {
    let opt = Optimizer::Sgd {
        lr: slope::check::model::Setting::given(lr),
        momentum: slope::check::model::Setting::default(0.0),
    };
    let data = batch_data(&net.model, batch);
    let how = (batch, threads());
    let step = TrainStep::new(jit, (&net.net, &net.model), &opt, how, data).expect("compiles");
    Runner::Step(Box::new(step))
}

/// `6·B·Σ in·out`: the flop count of a step as the peers count it.
fn flops(model: &Model, batch: usize) -> f64 {
    model
        .layers
        .iter()
        .map(|l| 6.0 * (batch * l.forward_macs()) as f64)
        .sum()
}

/// One GEMM of a training step: sizes and operand layouts.
#[derive(Clone, Copy)]
struct Gemm {
    m: usize,
    k: usize,
    n: usize,
    a_t: bool,
    b_t: bool,
}

/// The products of a dense network's loss + grad, with the layouts the
/// schedule gives them: forward `a·Wᵀ`, weight gradient `dzᵀ·a`, input
/// gradient `dz·W` (skipped for the first layer).
fn step_gemms(model: &Model, batch: usize) -> Vec<Gemm> {
    let mut v = Vec::new();
    for (i, l) in model.layers.iter().enumerate() {
        let (inp, out) = (l.input.features(), l.width());
        v.push(Gemm {
            m: batch,
            k: inp,
            n: out,
            a_t: false,
            b_t: true,
        });
        v.push(Gemm {
            m: out,
            k: batch,
            n: inp,
            a_t: true,
            b_t: false,
        });
        if i > 0 {
            v.push(Gemm {
                m: batch,
                k: out,
                n: inp,
                a_t: false,
                b_t: false,
            });
        }
    }
    v
}

/// Buffers for a set of GEMMs.
struct GemmSet {
    gemms: Vec<Gemm>,
    bufs: Vec<(Vec<f32>, Vec<f32>, Vec<f32>)>,
}

impl GemmSet {
    fn new(gemms: Vec<Gemm>) -> GemmSet {
        let bufs = gemms
            .iter()
            .map(|g| {
                let a = (0..g.m * g.k).map(|i| (i % 13) as f32 * 0.01).collect();
                let b = (0..g.k * g.n).map(|i| (i % 7) as f32 * 0.01).collect();
                (a, b, vec![0.0; g.m * g.n])
            })
            .collect();
        GemmSet { gemms, bufs }
    }

    /// The same products through slope's unpacked small kernels.
    fn run_small(&mut self) {
        for (g, (a, b, c)) in self.gemms.iter().zip(&mut self.bufs) {
            let (rsa, csa) = if g.a_t { (1, g.m) } else { (g.k, 1) };
            let (rsb, csb) = if g.b_t { (1, g.k) } else { (g.n, 1) };
            // SAFETY: as in `run`.
            let done = unsafe {
                slope::codegen::gemm::sgemm(
                    g.m,
                    g.k,
                    g.n,
                    a.as_ptr(),
                    rsa as isize,
                    csa as isize,
                    b.as_ptr(),
                    rsb as isize,
                    csb as isize,
                    c.as_mut_ptr(),
                    g.n as isize,
                )
            };
            assert!(done, "benchmarked layouts have a small kernel");
        }
    }

    fn run(&mut self) {
        for (g, (a, b, c)) in self.gemms.iter().zip(&mut self.bufs) {
            let (rsa, csa) = if g.a_t { (1, g.m) } else { (g.k, 1) };
            let (rsb, csb) = if g.b_t { (1, g.k) } else { (g.n, 1) };
            // SAFETY: a is m×k, b is k×n and c is m×n with the strides above,
            // all within their vectors' lengths; c does not alias a or b.
            unsafe {
                slope::codegen::gemm::product(
                    g.m,
                    g.k,
                    g.n,
                    a.as_ptr(),
                    (rsa as isize, csa as isize),
                    b.as_ptr(),
                    (rsb as isize, csb as isize),
                    c.as_mut_ptr(),
                    (g.n as isize, 1),
                    threads(),
                );
            }
        }
    }
}

/// Median and interquartile range of `f`'s time, in seconds, from `samples`
/// samples of enough calls each to last about `per_sample`.
fn timing(samples: usize, per_sample: Duration, mut f: impl FnMut()) -> (f64, f64, f64) {
    let start = Instant::now();
    f();
    let one = start.elapsed().as_secs_f64().max(1e-8);
    let iters = ((per_sample.as_secs_f64() / one) as usize).max(1);
    let mut t: Vec<f64> = (0..samples)
        .map(|_| {
            let s = Instant::now();
            for _ in 0..iters {
                f();
            }
            s.elapsed().as_secs_f64() / iters as f64
        })
        .collect();
    t.sort_by(f64::total_cmp);
    let q = |p: f64| t[((t.len() - 1) as f64 * p).round() as usize];
    (q(0.5), q(0.25), q(0.75))
}

fn fmt_time(s: f64) -> String {
    if s < 1e-3 {
        format!("{:.2} µs", s * 1e6)
    } else {
        format!("{:.3} ms", s * 1e3)
    }
}

/// The thread count of the generated code and of the GEMM alone
/// (`SLOPE_BENCH_THREADS`, default 1).
fn threads() -> usize {
    std::env::var("SLOPE_BENCH_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(if quick { 1 } else { 2 }))
        .sample_size(20)
        .configure_from_args();
    let mut jit = Jit::new(threads()).expect("host JIT");

    c.bench_function("pipeline/digits", |b| {
        b.iter(|| {
            let net = front(black_box(DIGITS));
            black_box(loss_grad(&mut jit, &net, 32));
        })
    });
    let digits = front(DIGITS);
    let mut d: Vec<(usize, Runner)> = [1, 32, 256]
        .into_iter()
        .map(|b| (b, loss_grad(&mut jit, &digits, b)))
        .collect();
    for (b, r) in &mut d {
        c.bench_function(&format!("digits/loss_grad/{b}"), |bn| bn.iter(|| r.run()));
    }
    let mut dstep = train_step(&mut jit, &digits, 32, 0.1);
    c.bench_function("digits/train_step/32", |bn| bn.iter(|| dstep.run()));

    let w2 = front(W2);
    let mut w2lg = loss_grad(&mut jit, &w2, 256);
    let mut w2step = train_step(&mut jit, &w2, 256, 0.01);
    let mut gemms = GemmSet::new(step_gemms(&w2.model, 256));
    c.bench_function("w2/loss_grad/256", |bn| bn.iter(|| w2lg.run()));
    c.bench_function("w2/train_step/256", |bn| bn.iter(|| w2step.run()));
    c.bench_function("w2/sgemm_alone/256", |bn| bn.iter(|| gemms.run()));
    c.final_summary();

    // ---- The summary table: an independent loop, interleaved rows. ----
    let (samples, per) = if quick {
        (15, Duration::from_millis(20))
    } else {
        (31, Duration::from_millis(40))
    };
    println!("\nsummary (median [IQR]; {} thread(s))", threads());
    let pipe = timing(9, Duration::from_millis(1), || {
        let net = front(DIGITS);
        black_box(loss_grad(&mut jit, &net, 32));
    });
    let row = |name: &str, t: (f64, f64, f64), extra: String| {
        println!(
            "  {name:<28} {:>11}  [{} – {}]  {extra}",
            fmt_time(t.0),
            fmt_time(t.1),
            fmt_time(t.2)
        );
    };
    row("parse→JIT digits", pipe, String::new());
    for (b, r) in &mut d {
        let t = timing(samples, per, || r.run());
        let gf = flops(&digits.model, *b) / t.0 / 1e9;
        row(
            &format!("digits loss+grad B={b}"),
            t,
            format!("{gf:.1} GFLOP/s"),
        );
    }
    let t = timing(samples, per, || dstep.run());
    row(
        "digits train step B=32",
        t,
        format!("{:.0} steps/s", 1.0 / t.0),
    );
    let f2 = flops(&w2.model, 256);
    let (tg, tl, ts) = {
        // Interleave so that drift hits all three alike.
        let mut g = Vec::new();
        let mut l = Vec::new();
        let mut s = Vec::new();
        for _ in 0..3 {
            g.push(timing(samples / 3, per * 3, || gemms.run()));
            l.push(timing(samples / 3, per * 3, || w2lg.run()));
            s.push(timing(samples / 3, per * 3, || w2step.run()));
        }
        let mid = |mut v: Vec<(f64, f64, f64)>| {
            v.sort_by(|a, b| a.0.total_cmp(&b.0));
            v[1]
        };
        (mid(g), mid(l), mid(s))
    };
    // The products' own flop (2·m·k·n each, no input gradient): the rate
    // to hold against the core's FMA peak.
    let real: f64 = (gemms.gemms.iter())
        .map(|g| 2.0 * (g.m * g.k * g.n) as f64)
        .sum();
    row(
        "w2 sgemm alone (8 GEMMs)",
        tg,
        format!(
            "{:.1} GFLOP/s counted as the step (ceiling); {:.1} GFLOP/s of their own 2·m·k·n",
            f2 / tg.0 / 1e9,
            real / tg.0 / 1e9
        ),
    );
    row(
        "w2 loss+grad B=256",
        tl,
        format!(
            "{:.1} GFLOP/s = {:.0}% of ceiling",
            f2 / tl.0 / 1e9,
            100.0 * tg.0 / tl.0
        ),
    );
    row(
        "w2 train step B=256",
        ts,
        format!(
            "{:.1} GFLOP/s = {:.0}% of ceiling",
            f2 / ts.0 / 1e9,
            100.0 * tg.0 / ts.0
        ),
    );
    if slope::codegen::gemm::has_avx512() {
        println!(
            "\n  GEMM crossover (m×k×n, layout): unpacked small kernels vs the gemm crate, same run"
        );
        let shapes = [
            (1, 64, 32, false, true),
            (32, 64, 32, false, true),
            (32, 32, 64, true, false),
            (32, 32, 10, false, true),
            (32, 10, 32, false, false),
            (10, 32, 32, true, false),
            (256, 64, 32, false, true),
            (32, 256, 64, true, false),
            (64, 64, 64, false, false),
            (128, 128, 128, false, true),
            (128, 128, 128, true, false),
            (256, 512, 512, false, true),
        ];
        for (m, k, n, a_t, b_t) in shapes {
            let mut set = GemmSet::new(vec![Gemm { m, k, n, a_t, b_t }]);
            let small = timing(samples, per, || set.run_small());
            let mm = timing(samples, per, || set.run());
            let gf = |t: f64| 2.0 * (m * k * n) as f64 / t / 1e9;
            println!(
                "  {m:>4}×{k:>3}×{n:>3} {}{} ({:>8} MACs)  small {:>10} ({:6.1} GFLOP/s)  mm {:>10} ({:6.1} GFLOP/s)  small/mm {:.2}",
                if a_t { "Aᵀ" } else { "A " },
                if b_t { "Bᵀ" } else { "B " },
                m * k * n,
                fmt_time(small.0),
                gf(small.0),
                fmt_time(mm.0),
                gf(mm.0),
                small.0 / mm.0
            );
        }
    }
}
