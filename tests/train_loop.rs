//! The training loop on a hand-built network (linear regression with mse,
//! gradients written by hand as graph nodes), against trajectories derived
//! in f64 below. Independent of `lower` and `diff`: this checks batching,
//! the optimizers' exact formulas, the epoch metrics and the NaN guard.

use slope::check::layer::ParamRole;
use slope::check::model::{
    Activation, Builtin, FeatureShape, Init, Layer, Loss, Model, Optimizer, Setting,
};
use slope::data::Dataset;
use slope::diag::Span;
use slope::graph::{Axes, Dim, Graph, LeafKind, Op, Shape};
use slope::pipeline::{Network, ParamNode};
use slope::train::weights::{Tensor, Weights};
use slope::train::{self, Settings, TrainError};

const X: [[f64; 2]; 3] = [[1.0, 2.0], [0.5, -1.0], [-1.5, 0.25]];
const T: [f64; 3] = [1.0, 0.0, 2.0];
const W0: [f64; 2] = [0.1, -0.2];
const B0: f64 = 0.05;

fn model() -> Model {
    Model {
        name: "lin".into(),
        input: FeatureShape::flat(2),
        layers: vec![Layer::dense(
            "dense1",
            FeatureShape::flat(2),
            1,
            Activation::Builtin(Builtin::Identity),
            Init::Glorot,
            true,
        )],
        loss: Loss::Mse,
        span: Span::default(),
        input_span: Span::default(),
        loss_span: Span::default(),
    }
}

fn dataset() -> Dataset {
    Dataset {
        columns: vec!["a".into(), "b".into(), "y".into()],
        feature_names: vec!["a".into(), "b".into()],
        target_names: vec!["y".into()],
        rows: 3,
        features: X.iter().flatten().map(|&v| v as f32).collect(),
        targets: T.iter().map(|&v| v as f32).collect(),
    }
}

fn weights(w: [f64; 2], b: f64) -> Weights {
    Weights {
        tensors: vec![
            Tensor {
                name: "dense1.weight".into(),
                shape: vec![1, 2],
                data: w.iter().map(|&v| v as f32).collect(),
            },
            Tensor {
                name: "dense1.bias".into(),
                shape: vec![1],
                data: vec![b as f32],
            },
        ],
    }
}

/// z = x·Wᵀ + b, loss = mean((z - t)^2); dz = 2(z - t)/B, dW = dzᵀ·x, db = Σ dz.
fn network() -> Network {
    let mut g = Graph::new();
    let bdim = Shape(vec![Dim::Batch, Dim::Fixed(1)]);
    let x = g.leaf("x", LeafKind::Input, Shape(vec![Dim::Batch, Dim::Fixed(2)]));
    let t = g.leaf("t", LeafKind::Target, bdim.clone());
    let w = g.leaf(
        "dense1.weight",
        LeafKind::Param,
        Shape(vec![Dim::Fixed(1), Dim::Fixed(2)]),
    );
    let b = g.leaf("dense1.bias", LeafKind::Param, Shape(vec![Dim::Fixed(1)]));
    let wt = g.add(Op::Transpose, &[w]).unwrap();
    let xw = g.add(Op::MatMul, &[x, wt]).unwrap();
    let bb = g.broadcast(b, Axes(1), bdim.clone()).unwrap();
    let z = g.add(Op::Add, &[xw, bb]).unwrap();
    let m1 = g.constant(-1.0);
    let m1 = g.broadcast(m1, Axes(3), bdim.clone()).unwrap();
    let neg_t = g.add(Op::Mul, &[m1, t]).unwrap();
    let d = g.add(Op::Add, &[z, neg_t]).unwrap();
    let d2 = g.add(Op::Mul, &[d, d]).unwrap();
    let s = g.add(Op::Sum(Axes(3)), &[d2]).unwrap();
    let n = g.add(Op::BatchSize, &[]).unwrap();
    let inv_n = g.add(Op::Recip, &[n]).unwrap();
    let loss = g.add(Op::Mul, &[s, inv_n]).unwrap();
    let two = g.constant(2.0);
    let two_over_n = g.add(Op::Mul, &[two, inv_n]).unwrap();
    let k = g.broadcast(two_over_n, Axes(3), bdim).unwrap();
    let dz = g.add(Op::Mul, &[k, d]).unwrap();
    let dzt = g.add(Op::Transpose, &[dz]).unwrap();
    let dw = g.add(Op::MatMul, &[dzt, x]).unwrap();
    let db = g.add(Op::Sum(Axes(1)), &[dz]).unwrap();
    let param = |name: &str, node, shape, role| ParamNode {
        name: name.into(),
        node,
        shape,
        layer: 0,
        role,
    };
    Network {
        graph: g,
        x,
        t,
        params: vec![
            param("dense1.weight", w, vec![1, 2], ParamRole::Weight),
            param("dense1.bias", b, vec![1], ParamRole::Bias),
        ],
        layers: vec![],
        y: z,
        grads: vec![dw, db],
        loss,
        correct: None,
        divisors: vec![],
    }
}

fn settings(optimizer: Optimizer, epochs: usize) -> Settings {
    Settings {
        epochs,
        batch: 2,
        shuffle: false,
        seed: 0,
        validation: 0.0,
        optimizer,
        threads: 1,
    }
}

/// The f64 reference: batches [0, 1] and [2] in order, `update` applied to
/// the parameter vector p = [w0, w1, b] with gradient g.
fn reference(
    epochs: usize,
    mut update: impl FnMut(&mut [f64; 3], [f64; 3]),
) -> ([f64; 3], Vec<f64>) {
    let mut p = [W0[0], W0[1], B0];
    let mut losses = Vec::new();
    for _ in 0..epochs {
        let mut batch_losses = Vec::new();
        for rows in [&[0usize, 1][..], &[2][..]] {
            let n = rows.len() as f64;
            let (mut loss, mut g) = (0.0, [0.0; 3]);
            for &r in rows {
                let z = p[0] * X[r][0] + p[1] * X[r][1] + p[2];
                let e = z - T[r];
                loss += e * e / n;
                g[0] += 2.0 * e / n * X[r][0];
                g[1] += 2.0 * e / n * X[r][1];
                g[2] += 2.0 * e / n;
            }
            batch_losses.push(loss);
            update(&mut p, g);
        }
        losses.push(batch_losses.iter().sum::<f64>() / batch_losses.len() as f64);
    }
    (p, losses)
}

fn run(optimizer: Optimizer, epochs: usize) -> train::Outcome {
    let mut seen = Vec::new();
    let out = train::train(
        &model(),
        network(),
        &settings(optimizer, epochs),
        &dataset(),
        weights(W0, B0),
        &mut |r| seen.push(r.epoch),
    )
    .expect("the linear model trains");
    assert_eq!(seen, (1..=epochs).collect::<Vec<_>>());
    out
}

fn assert_close(got: f64, want: f64, what: &str) {
    assert!(
        (got - want).abs() <= 2e-6 * (1.0 + want.abs()),
        "{what}: got {got}, want {want}"
    );
}

fn check(out: &train::Outcome, p: [f64; 3], losses: &[f64]) {
    let w = &out.weights.tensors;
    assert_close(f64::from(w[0].data[0]), p[0], "w0");
    assert_close(f64::from(w[0].data[1]), p[1], "w1");
    assert_close(f64::from(w[1].data[0]), p[2], "b");
    for (r, want) in out.epochs.iter().zip(losses) {
        assert_close(r.loss, *want, &format!("epoch {} loss", r.epoch));
        assert_eq!(r.accuracy, None);
        assert_eq!(r.val_loss, None);
    }
}

#[test]
fn sgd_with_momentum_follows_the_formula() {
    let (lr, m) = (0.1, 0.9);
    let opt = Optimizer::Sgd {
        lr: Setting::given(lr),
        momentum: Setting::given(m),
    };
    // v = M*v + g; w -= lr*v, v from 0.
    let mut v = [0.0; 3];
    let (p, losses) = reference(2, |p, g| {
        for i in 0..3 {
            v[i] = m * v[i] + g[i];
            p[i] -= lr * v[i];
        }
    });
    let out = run(opt, 2);
    assert_eq!(out.steps, 4);
    check(&out, p, &losses);
}

#[test]
fn plain_sgd_follows_the_formula() {
    let lr = 0.05;
    let opt = Optimizer::Sgd {
        lr: Setting::given(lr),
        momentum: Setting::default(0.0),
    };
    let (p, losses) = reference(3, |p, g| {
        for i in 0..3 {
            p[i] -= lr * g[i];
        }
    });
    check(&run(opt, 3), p, &losses);
}

#[test]
fn adam_follows_the_formula_with_the_step_count_across_epochs() {
    let (lr, b1, b2, e) = (0.01, 0.9, 0.999, 1e-8);
    let opt = Optimizer::Adam {
        lr: Setting::given(lr),
        beta1: Setting::default(b1),
        beta2: Setting::default(b2),
        eps: Setting::default(e),
    };
    // s from 1, continuing across epochs:
    // m = B1*m + (1-B1)*g; v = B2*v + (1-B2)*g^2;
    // w -= lr * (m/(1-B1^s)) / (sqrt(v/(1-B2^s)) + E)
    let (mut m, mut v, mut s) = ([0.0; 3], [0.0; 3], 0);
    let (p, losses) = reference(2, |p, g| {
        s += 1;
        for i in 0..3 {
            m[i] = b1 * m[i] + (1.0 - b1) * g[i];
            v[i] = b2 * v[i] + (1.0 - b2) * g[i] * g[i];
            let m_hat = m[i] / (1.0 - f64::powi(b1, s));
            let v_hat = v[i] / (1.0 - f64::powi(b2, s));
            p[i] -= lr * m_hat / (v_hat.sqrt() + e);
        }
    });
    check(&run(opt, 2), p, &losses);
}

#[test]
fn adamw_decays_weights_but_not_biases() {
    let (lr, b1, b2, e, d) = (0.01, 0.9, 0.999, 1e-8, 0.1);
    let opt = Optimizer::AdamW {
        lr: Setting::given(lr),
        beta1: Setting::default(b1),
        beta2: Setting::default(b2),
        eps: Setting::default(e),
        weight_decay: Setting::given(d),
    };
    // w -= lr*D*w on the weight (p[0], p[1]), not the bias, then Adam.
    let (mut m, mut v, mut s) = ([0.0; 3], [0.0; 3], 0);
    let (p, losses) = reference(2, |p, g| {
        s += 1;
        for i in 0..3 {
            m[i] = b1 * m[i] + (1.0 - b1) * g[i];
            v[i] = b2 * v[i] + (1.0 - b2) * g[i] * g[i];
            if i < 2 {
                p[i] -= lr * d * p[i];
            }
            let m_hat = m[i] / (1.0 - f64::powi(b1, s));
            let v_hat = v[i] / (1.0 - f64::powi(b2, s));
            p[i] -= lr * m_hat / (v_hat.sqrt() + e);
        }
    });
    check(&run(opt, 2), p, &losses);
}

#[test]
fn rmsprop_follows_the_formula() {
    let (lr, r, e) = (0.01, 0.9, 1e-8);
    let opt = Optimizer::RmsProp {
        lr: Setting::given(lr),
        rho: Setting::default(r),
        eps: Setting::default(e),
    };
    // v = R*v + (1-R)*g^2; w -= lr*g/(sqrt(v) + E), v from 0.
    let mut v = [0.0; 3];
    let (p, losses) = reference(2, |p, g| {
        for i in 0..3 {
            v[i] = r * v[i] + (1.0 - r) * g[i] * g[i];
            p[i] -= lr * g[i] / (v[i].sqrt() + e);
        }
    });
    check(&run(opt, 2), p, &losses);
}

#[test]
fn adamw_without_decay_is_adam_bit_for_bit() {
    let adam = Optimizer::default_of("adam").unwrap();
    let mut adamw = Optimizer::default_of("adamw").unwrap();
    *adamw.setting_mut("weight_decay").unwrap() = Setting::given(0.0);
    let (a, b) = (run(adam, 2), run(adamw, 2));
    assert_eq!(a.weights, b.weights);
}

#[test]
fn training_is_bit_for_bit_deterministic() {
    let opt = Optimizer::Adam {
        lr: Setting::given(0.05),
        beta1: Setting::default(0.9),
        beta2: Setting::default(0.999),
        eps: Setting::default(1e-8),
    };
    let mut s = settings(opt, 5);
    s.shuffle = true;
    s.seed = 9;
    let go = || {
        train::train(
            &model(),
            network(),
            &s,
            &dataset(),
            weights(W0, B0),
            &mut |_| {},
        )
        .unwrap()
        .weights
    };
    assert_eq!(go(), go());
}

#[test]
fn divergence_stops_at_the_first_non_finite_loss() {
    let opt = Optimizer::Sgd {
        lr: Setting::given(1e6),
        momentum: Setting::default(0.0),
    };
    let e = train::train(
        &model(),
        network(),
        &settings(opt, 50),
        &dataset(),
        weights(W0, B0),
        &mut |_| {},
    )
    .expect_err("lr = 1e6 diverges");
    let TrainError::Diverged(d) = e else {
        panic!("expected divergence, got {e:?}")
    };
    assert!(d.epoch < 50, "{d:?}");
    assert!(!d.loss.is_finite() || !d.tensors.is_empty(), "{d:?}");
}

#[test]
fn validation_is_measured_after_the_last_update() {
    let opt = Optimizer::Sgd {
        lr: Setting::given(0.1),
        momentum: Setting::default(0.0),
    };
    let mut s = settings(opt, 1);
    s.validation = 0.34; // 1 of 3 rows: the last one, row 2 (no shuffle)
    let out = train::train(
        &model(),
        network(),
        &s,
        &dataset(),
        weights(W0, B0),
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(out.rows, (2, 1));
    // One batch of rows 0 and 1, then the loss of row 2 at the new weights.
    let mut p = [W0[0], W0[1], B0];
    let mut g = [0.0; 3];
    for r in 0..2 {
        let e = p[0] * X[r][0] + p[1] * X[r][1] + p[2] - T[r];
        g[0] += e * X[r][0];
        g[1] += e * X[r][1];
        g[2] += e;
    }
    for i in 0..3 {
        p[i] -= 0.1 * g[i];
    }
    let e = p[0] * X[2][0] + p[1] * X[2][1] + p[2] - T[2];
    assert_close(out.epochs[0].val_loss.unwrap(), e * e, "validation loss");
}

/// The xor model of spec §1, built without the parser, through lower, diff
/// and simplify: the whole chain the CLI uses, apart from parsing.
#[test]
fn lowered_xor_trains_to_full_accuracy() {
    use slope::check::model::Program;
    let layer = |name: &str, i, o, act| {
        Layer::dense(
            name,
            FeatureShape::flat(i),
            o,
            Activation::Builtin(act),
            Init::Glorot,
            true,
        )
    };
    let model = Model {
        name: "xor".into(),
        input: FeatureShape::flat(2),
        layers: vec![
            layer("dense1", 2, 4, Builtin::Tanh),
            layer("dense2", 4, 1, Builtin::Sigmoid),
        ],
        loss: Loss::Bce,
        span: Span::default(),
        input_span: Span::default(),
        loss_span: Span::default(),
    };
    let program = Program {
        activations: vec![],
        losses: vec![],
        models: vec![model.clone()],
        train: None,
    };
    let (net, _) = slope::pipeline::compile(&program, &model).unwrap();
    let data = Dataset {
        columns: vec!["a".into(), "b".into(), "y".into()],
        feature_names: vec!["a".into(), "b".into()],
        target_names: vec!["y".into()],
        rows: 4,
        features: vec![0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 1.0, 1.0],
        targets: vec![0.0, 1.0, 1.0, 0.0],
    };
    let opt = Optimizer::Sgd {
        lr: Setting::given(0.5),
        momentum: Setting::default(0.0),
    };
    let mut s = settings(opt, 2000);
    s.batch = 4;
    s.seed = 1;
    let w = slope::train::weights::init(&model, 1);
    let out = train::train(&model, net, &s, &data, w, &mut |_| {}).unwrap();
    let last = out.epochs.last().unwrap();
    assert_eq!(last.accuracy, Some(1.0), "{last:?}");
    assert!(last.loss < 0.05, "{last:?}");
}
