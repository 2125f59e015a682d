//! Training-speed benchmarks against the peers of `notes/peers.md`:
//!
//! * W1 digits-small: 64-32-10 tanh, softmax + cross-entropy, SGD lr 0.1,
//!   batch 32, 20 epochs on `examples/digits.csv`: median epoch time.
//! * W2 mlp-large: 784-512-512-10 relu, softmax + cross-entropy, SGD,
//!   batch 256 on random data: GFLOP/s counted as 6·B·Σ in·out per step.
//!
//! The networks and their gradients are built by hand as graph nodes (the
//! textbook backprop equations), so this measures the training loop and
//! the generated code alone. Run: `cargo bench --bench train` (add
//! `-- --quick` for fewer repetitions; `SLOPE_BENCH_THREADS=1` for one
//! thread, default all cores). Prints medians.

use slope::check::layer::ParamRole;
use slope::check::model::{
    Activation, Builtin, FeatureShape, Init, Layer, Loss, Model, Optimizer, Setting,
};
use slope::data::Dataset;
use slope::diag::Span;
use slope::graph::{Axes, Dim, Graph, LeafKind, NodeId, Op, Shape};
use slope::pipeline::{Network, ParamNode};
use slope::train::weights;
use slope::train::{self, Settings};

/// A dense network with `hidden` activations on all but the last layer,
/// softmax + cross-entropy on class indices, and its hand-written gradient.
fn mlp(sizes: &[usize], relu: bool) -> (Model, Network) {
    let mut g = Graph::new();
    let fixed = |n| Dim::Fixed(n);
    let x = g.leaf(
        "x",
        LeafKind::Input,
        Shape(vec![Dim::Batch, fixed(sizes[0])]),
    );
    let t = g.leaf("t", LeafKind::Target, Shape(vec![Dim::Batch]));
    let n = g.add(Op::BatchSize, &[]).unwrap();
    let inv_n = g.add(Op::Recip, &[n]).unwrap();
    let mut layers = Vec::new();
    let (mut acts, mut zs, mut ws, mut params) = (vec![x], Vec::new(), Vec::new(), Vec::new());
    for l in 0..sizes.len() - 1 {
        let (i, o) = (sizes[l], sizes[l + 1]);
        let name = format!("dense{}", l + 1);
        let last = l + 2 == sizes.len();
        layers.push(Layer::dense(
            &name,
            FeatureShape::flat(i),
            o,
            if last {
                Activation::Softmax
            } else {
                Activation::Builtin(if relu { Builtin::Relu } else { Builtin::Tanh })
            },
            if relu && !last {
                Init::He
            } else {
                Init::Glorot
            },
            true,
        ));
        let w = g.leaf(
            &format!("{name}.weight"),
            LeafKind::Param,
            Shape(vec![fixed(o), fixed(i)]),
        );
        let b = g.leaf(
            &format!("{name}.bias"),
            LeafKind::Param,
            Shape(vec![fixed(o)]),
        );
        let wt = g.add(Op::Transpose, &[w]).unwrap();
        let xw = g.add(Op::MatMul, &[*acts.last().unwrap(), wt]).unwrap();
        let bb = g
            .broadcast(b, Axes(1), Shape(vec![Dim::Batch, fixed(o)]))
            .unwrap();
        let z = g.add(Op::Add, &[xw, bb]).unwrap();
        let a = if last {
            z
        } else {
            g.add(if relu { Op::Relu } else { Op::Tanh }, &[z]).unwrap()
        };
        acts.push(a);
        zs.push(z);
        ws.push(w);
        params.push(w);
        params.push(b);
    }
    let k = *sizes.last().unwrap();
    let bk = Shape(vec![Dim::Batch, fixed(k)]);
    let z = *zs.last().unwrap();
    let onehot = g.add(Op::OneHot(k as u32), &[t]).unwrap();
    // loss = mean over rows of logsumexp(z) - z[t]
    let lse = g.add(Op::LogSumExp, &[z]).unwrap();
    let zt = g.add(Op::Mul, &[z, onehot]).unwrap();
    let zt = g.add(Op::Sum(Axes(2)), &[zt]).unwrap();
    let m1 = g.constant(-1.0);
    let m1b = g.broadcast(m1, Axes(1), Shape(vec![Dim::Batch])).unwrap();
    let nzt = g.add(Op::Mul, &[m1b, zt]).unwrap();
    let per_row = g.add(Op::Add, &[lse, nzt]).unwrap();
    let total = g.add(Op::Sum(Axes(1)), &[per_row]).unwrap();
    let loss = g.add(Op::Mul, &[total, inv_n]).unwrap();
    // dz_L = (softmax(z) - onehot(t)) / B
    let sm = g.add(Op::Softmax, &[z]).unwrap();
    let m1k = g.broadcast(m1, Axes(3), bk.clone()).unwrap();
    let noh = g.add(Op::Mul, &[m1k, onehot]).unwrap();
    let diff = g.add(Op::Add, &[sm, noh]).unwrap();
    let inv_nk = g.broadcast(inv_n, Axes(3), bk).unwrap();
    let mut dz = g.add(Op::Mul, &[diff, inv_nk]).unwrap();
    let mut grads: Vec<NodeId> = vec![NodeId::new(0); params.len()];
    for l in (0..ws.len()).rev() {
        let dzt = g.add(Op::Transpose, &[dz]).unwrap();
        grads[2 * l] = g.add(Op::MatMul, &[dzt, acts[l]]).unwrap();
        grads[2 * l + 1] = g.add(Op::Sum(Axes(1)), &[dz]).unwrap();
        if l == 0 {
            break;
        }
        let da = g.add(Op::MatMul, &[dz, ws[l]]).unwrap();
        let shape = g.node(da).shape.clone();
        let deriv = if relu {
            let zero = g.constant(0.0);
            let zero = g.broadcast(zero, Axes(3), shape).unwrap();
            g.add(Op::Gt, &[zs[l - 1], zero]).unwrap()
        } else {
            // tanh' = 1 - a^2
            let a = acts[l];
            let a2 = g.add(Op::Mul, &[a, a]).unwrap();
            let one = g.constant(1.0);
            let one = g.broadcast(one, Axes(3), shape.clone()).unwrap();
            let m1s = g.broadcast(m1, Axes(3), shape).unwrap();
            let na2 = g.add(Op::Mul, &[m1s, a2]).unwrap();
            g.add(Op::Add, &[one, na2]).unwrap()
        };
        dz = g.add(Op::Mul, &[da, deriv]).unwrap();
    }
    let argmax = g.add(Op::ArgMax, &[z]).unwrap();
    let correct = g.add(Op::Eq, &[argmax, t]).unwrap();
    let model = Model {
        name: "bench".into(),
        input: FeatureShape::flat(sizes[0]),
        layers,
        loss: Loss::CrossEntropy,
        span: Span::default(),
        input_span: Span::default(),
        loss_span: Span::default(),
    };
    let params = params
        .iter()
        .enumerate()
        .map(|(i, &node)| ParamNode {
            name: format!(
                "dense{}.{}",
                i / 2 + 1,
                if i % 2 == 0 { "weight" } else { "bias" }
            ),
            node,
            shape: g
                .node(node)
                .shape
                .0
                .iter()
                .map(|d| match d {
                    Dim::Fixed(n) => *n,
                    Dim::Batch => unreachable!("parameters have fixed shapes"),
                })
                .collect(),
            layer: i / 2,
            role: if i % 2 == 0 {
                ParamRole::Weight
            } else {
                ParamRole::Bias
            },
        })
        .collect();
    let net = Network {
        graph: g,
        x,
        t,
        params,
        layers: vec![],
        y: z,
        grads,
        loss,
        correct: Some(correct),
        divisors: vec![],
    };
    (model, net)
}

fn digits() -> Dataset {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/digits.csv");
    let text =
        std::fs::read_to_string(path).expect("examples/digits.csv is part of the repository");
    let mut lines = text.lines();
    let header: Vec<String> = lines
        .next()
        .unwrap()
        .split(',')
        .map(str::to_string)
        .collect();
    let (mut features, mut targets, mut rows) = (Vec::new(), Vec::new(), 0);
    for line in lines.filter(|l| !l.trim().is_empty()) {
        let cells: Vec<f32> = line.split(',').map(|c| c.trim().parse().unwrap()).collect();
        features.extend_from_slice(&cells[..64]);
        targets.push(cells[64]);
        rows += 1;
    }
    Dataset {
        feature_names: header[..64].to_vec(),
        target_names: header[64..].to_vec(),
        columns: header,
        rows,
        features,
        targets,
    }
}

fn random_data(rows: usize, inputs: usize, classes: usize) -> Dataset {
    let mut rng = slope::train::rng::Rng::new(5, 9);
    Dataset {
        columns: Vec::new(),
        feature_names: (0..inputs).map(|i| format!("f{i}")).collect(),
        target_names: vec!["class".into()],
        rows,
        features: (0..rows * inputs).map(|_| rng.next_f64() as f32).collect(),
        targets: (0..rows).map(|_| rng.below(classes) as f32).collect(),
    }
}

fn sgd(lr: f64) -> Optimizer {
    Optimizer::Sgd {
        lr: Setting::given(lr),
        momentum: Setting::default(0.0),
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let threads = std::env::var("SLOPE_BENCH_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from));

    // ---- W1 ----
    let data = digits();
    let mut epoch_ms = Vec::new();
    let mut jit_ms = Vec::new();
    for _ in 0..if quick { 1 } else { 3 } {
        let (model, net) = mlp(&[64, 32, 10], false);
        let settings = Settings {
            epochs: 20,
            batch: 32,
            shuffle: false,
            seed: 1,
            validation: 0.0,
            optimizer: sgd(0.1),
            threads,
        };
        let w = weights::init(&model, 1);
        let out = train::train(&model, net, &settings, &data, w, &mut |_| {}).unwrap();
        // Steady state: skip the first epoch (page faults, cold caches).
        epoch_ms.extend(out.epochs[1..].iter().map(|r| r.seconds * 1e3));
        jit_ms.push(out.jit_seconds * 1e3);
        let last = out.epochs.last().unwrap();
        eprintln!(
            "W1 run: final loss {:.4}, accuracy {:.4}",
            last.loss,
            last.accuracy.unwrap()
        );
    }
    let steps = data.rows.div_ceil(32);
    let e = median(epoch_ms);
    println!(
        "W1 digits-small 64-32-10: median epoch {:.3} ms, {:.1} µs/step ({steps} steps/epoch), JIT {:.1} ms",
        e,
        e * 1e3 / steps as f64,
        median(jit_ms)
    );

    // ---- W2 ----
    let sizes = [784, 512, 512, 10];
    let flop_per_step = 6.0 * 256.0 * (784.0 * 512.0 + 512.0 * 512.0 + 512.0 * 10.0);
    let data = random_data(256 * if quick { 4 } else { 8 }, 784, 10);
    {
        let t = threads;
        let (model, net) = mlp(&sizes, true);
        let settings = Settings {
            epochs: if quick { 2 } else { 4 },
            batch: 256,
            shuffle: false,
            seed: 1,
            validation: 0.0,
            optimizer: sgd(0.01),
            threads: t,
        };
        let w = weights::init(&model, 1);
        let out = train::train(&model, net, &settings, &data, w, &mut |_| {}).unwrap();
        let per_step: Vec<f64> = out.epochs[1..]
            .iter()
            .map(|r| r.seconds / (data.rows / 256) as f64)
            .collect();
        let s = median(per_step);
        println!(
            "W2 mlp-large 784-512-512-10 batch 256, {} thread(s): {:.2} ms/step, {:.1} GFLOP/s, JIT {:.1} ms",
            t,
            s * 1e3,
            flop_per_step / s / 1e9,
            out.jit_seconds * 1e3
        );
    }
}
