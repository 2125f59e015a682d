//! Network gradients: lower a model, differentiate the loss by every
//! parameter, and compare with central finite differences of the loss in f64.

use slope::check::model::{
    Activation, Builtin, FeatureShape, Function, Init, Layer, Loss, Model, Program,
};
use slope::diag::Span;
use slope::diff::grad;
use slope::graph::eval::{Env, Tensor, eval};
use slope::graph::verify::verify;
use slope::lower::{Network, lower_model};
use slope::syntax::ast::{BinOp, Expr, ExprKind, Ident};

const SP: Span = Span { start: 0, end: 0 };

fn ex(kind: ExprKind) -> Expr {
    Expr { kind, span: SP }
}
fn num(v: f64) -> Expr {
    ex(ExprKind::Number {
        value: v,
        text: v.to_string(),
    })
}
fn var(n: &str) -> Expr {
    ex(ExprKind::Var(n.to_string()))
}
fn bin(op: BinOp, a: Expr, b: Expr) -> Expr {
    ex(ExprKind::Binary {
        op,
        lhs: Box::new(a),
        rhs: Box::new(b),
    })
}
fn call(f: &str, args: Vec<Expr>) -> Expr {
    ex(ExprKind::Call {
        func: Ident {
            name: f.to_string(),
            span: SP,
        },
        args,
    })
}
fn func(name: &str, params: &[&str], body: Expr) -> Function {
    Function {
        name: name.to_string(),
        params: params.iter().map(|p| p.to_string()).collect(),
        body,
        span: SP,
    }
}

fn model(input: usize, layers: &[(usize, Activation)], loss: Loss) -> Model {
    let mut prev = input;
    let layers = layers
        .iter()
        .enumerate()
        .map(|(i, (w, act))| {
            let l = Layer::dense(
                &format!("dense{}", i + 1),
                FeatureShape::flat(prev),
                *w,
                act.clone(),
                Init::Glorot,
                true,
            );
            prev = *w;
            l
        })
        .collect();
    Model {
        name: "m".to_string(),
        input: FeatureShape::flat(input),
        layers,
        loss,
        span: SP,
        input_span: SP,
        loss_span: SP,
    }
}

fn program(activations: Vec<Function>, losses: Vec<Function>, m: &Model) -> Program {
    Program {
        activations,
        losses,
        models: vec![m.clone()],
        train: None,
    }
}

/// A small deterministic generator (xorshift) for weights and data.
struct Rng(u64);
impl Rng {
    fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        lo + (hi - lo) * ((self.0 >> 11) as f64 / (1u64 << 53) as f64)
    }
    fn tensor(&mut self, shape: Vec<usize>, lo: f64, hi: f64) -> Tensor {
        let n = shape.iter().product();
        Tensor {
            shape,
            data: (0..n).map(|_| self.uniform(lo, hi)).collect(),
        }
    }
}

const BATCH: usize = 5;

/// Random parameters, inputs and targets suiting the model's loss.
fn environment(net: &Network, m: &Model, seed: u64) -> Env {
    let mut rng = Rng(seed);
    let mut env = Env::new();
    for p in &net.params {
        env.insert(p.name.clone(), rng.tensor(p.shape.clone(), -1.0, 1.0));
    }
    env.insert(
        "x".into(),
        rng.tensor(vec![BATCH, m.input.features()], -2.0, 2.0),
    );
    let k = m.output_width();
    let t = match m.loss {
        Loss::CrossEntropy => Tensor {
            shape: vec![BATCH],
            data: (0..BATCH).map(|i| (i % k) as f64).collect(),
        },
        Loss::Bce => Tensor {
            shape: vec![BATCH, k],
            data: (0..BATCH * k)
                .map(|i| ((i * 7) % 3 == 0) as u8 as f64)
                .collect(),
        },
        _ => rng.tensor(vec![BATCH, k], -1.0, 1.0),
    };
    env.insert("t".into(), t);
    env
}

/// Lowers, differentiates and compares every parameter element's gradient
/// with a central difference of the loss.
fn check_model(prog: &Program, m: &Model) -> Network {
    let mut net = lower_model(prog, m).expect("the model lowers");
    verify(&net.graph).expect("lowered graph is well-formed");
    let wrt: Vec<_> = net.params.iter().map(|p| p.node).collect();
    let grads = grad(&mut net.graph, net.loss, &wrt);
    verify(&net.graph).expect("gradient graph is well-formed");
    for seed in [1u64, 0x9e3779b97f4a7c15] {
        let env = environment(&net, m, seed);
        let got = eval(&net.graph, &grads.grads, &env, BATCH).unwrap();
        let loss_at = |env: &Env| eval(&net.graph, &[net.loss], env, BATCH).unwrap()[0].item();
        assert!(loss_at(&env).is_finite());
        for (p, g) in net.params.iter().zip(&got) {
            assert_eq!(g.shape, p.shape, "{}", p.name);
            for i in 0..g.data.len() {
                let h = 1e-6;
                let mut plus = env.clone();
                plus.get_mut(&p.name).unwrap().data[i] += h;
                let mut minus = env.clone();
                minus.get_mut(&p.name).unwrap().data[i] -= h;
                let fd = (loss_at(&plus) - loss_at(&minus)) / (2.0 * h);
                let sym = g.data[i];
                assert!(
                    (sym - fd).abs() <= 1e-6 * (1.0 + fd.abs()),
                    "{}[{i}]: symbolic {sym} vs finite difference {fd}",
                    p.name
                );
            }
        }
    }
    net
}

use Activation::Builtin as B;

#[test]
fn xor_tanh_sigmoid_bce() {
    let m = model(
        2,
        &[(4, B(Builtin::Tanh)), (1, B(Builtin::Sigmoid))],
        Loss::Bce,
    );
    check_model(&program(vec![], vec![], &m), &m);
}

#[test]
fn softmax_cross_entropy() {
    let m = model(
        3,
        &[(5, B(Builtin::Relu)), (4, Activation::Softmax)],
        Loss::CrossEntropy,
    );
    check_model(&program(vec![], vec![], &m), &m);
}

#[test]
fn relu_mse_and_three_layers() {
    let m = model(
        3,
        &[
            (4, B(Builtin::Relu)),
            (3, B(Builtin::Sigmoid)),
            (2, B(Builtin::Identity)),
        ],
        Loss::Mse,
    );
    check_model(&program(vec![], vec![], &m), &m);
}

#[test]
fn every_builtin_activation() {
    for b in Builtin::ALL {
        let m = model(2, &[(3, B(b)), (2, B(Builtin::Identity))], Loss::Mse);
        check_model(&program(vec![], vec![], &m), &m);
    }
}

#[test]
fn custom_activation_and_custom_loss() {
    // activation cube(x) = x^3 / 3 + swish(x)
    let cube = func(
        "cube",
        &["x"],
        bin(
            BinOp::Add,
            bin(BinOp::Div, bin(BinOp::Pow, var("x"), num(3.0)), num(3.0)),
            call("swish", vec![var("x")]),
        ),
    );
    // activation wrap(u) = cube(u) - e*u  (an activation calling another)
    let wrap = func(
        "wrap",
        &["u"],
        bin(
            BinOp::Sub,
            call("cube", vec![var("u")]),
            bin(BinOp::Mul, var("e"), var("u")),
        ),
    );
    // loss half(y, t) = (y - t)^2 / 2 + max(y, t)
    let half = func(
        "half",
        &["y", "t"],
        bin(
            BinOp::Add,
            bin(
                BinOp::Div,
                bin(BinOp::Pow, bin(BinOp::Sub, var("y"), var("t")), num(2.0)),
                num(2.0),
            ),
            call("max", vec![var("y"), var("t")]),
        ),
    );
    let m = model(
        2,
        &[
            (3, Activation::Custom("wrap".into())),
            (2, Activation::Custom("cube".into())),
        ],
        Loss::Custom("half".into()),
    );
    check_model(&program(vec![cube, wrap], vec![half], &m), &m);
}

#[test]
fn no_bias_layer() {
    let mut m = model(
        2,
        &[(3, B(Builtin::Tanh)), (2, B(Builtin::Identity))],
        Loss::Mse,
    );
    m.layers[0] = Layer::dense(
        "dense1",
        FeatureShape::flat(2),
        3,
        B(Builtin::Tanh),
        Init::Glorot,
        false,
    );
    let net = check_model(&program(vec![], vec![], &m), &m);
    let names: Vec<&str> = net.params.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["dense1.weight", "dense2.weight", "dense2.bias"]);
}

/// `bce` on a sigmoid layer and `cross_entropy` on a softmax layer give the
/// textbook `δ = (y - t)/n` at the last pre-activation, through the forward `y` node.
#[test]
fn textbook_output_deltas() {
    for (act, loss, k) in [
        (B(Builtin::Sigmoid), Loss::Bce, 2),
        (Activation::Softmax, Loss::CrossEntropy, 3),
    ] {
        let m = model(3, &[(4, B(Builtin::Tanh)), (k, act)], loss.clone());
        let mut net = lower_model(&program(vec![], vec![], &m), &m).unwrap();
        let z = net.layers[1].z;
        let wrt: Vec<_> = net.params.iter().map(|p| p.node).collect();
        let grads = grad(&mut net.graph, net.loss, &wrt);
        let delta = grads.adjoint(z).expect("z2 is on the path to the weights");
        assert!(
            net.graph.topo_order(&[delta]).contains(&net.y),
            "δ2 does not use y"
        );
        let env = environment(&net, &m, 7);
        let out = eval(&net.graph, &[delta, net.y], &env, BATCH).unwrap();
        let t = &env["t"];
        let n = if loss == Loss::Bce {
            (BATCH * k) as f64
        } else {
            BATCH as f64
        };
        for i in 0..BATCH * k {
            let target = if loss == Loss::Bce {
                t.data[i]
            } else {
                (t.data[i / k] as usize == i % k) as u8 as f64
            };
            let want = (out[1].data[i] - target) / n;
            assert!(
                (out[0].data[i] - want).abs() < 1e-14,
                "{:?}: {} vs {want}",
                loss,
                out[0].data[i]
            );
        }
    }
}

#[test]
fn accuracy_counts() {
    let m = model(2, &[(3, Activation::Softmax)], Loss::CrossEntropy);
    let net = lower_model(&program(vec![], vec![], &m), &m).unwrap();
    let mut env = environment(&net, &m, 3);
    let y = eval(&net.graph, &[net.y], &env, BATCH).unwrap().remove(0);
    // Make the targets the arg-max of rows 0, 1, 2 and wrong for rows 3, 4.
    let argmax = |r: usize| {
        let row = &y.data[r * 3..r * 3 + 3];
        (0..3).fold(0, |b, i| if row[i] > row[b] { i } else { b })
    };
    let t: Vec<f64> = (0..BATCH)
        .map(|r| {
            if r < 3 {
                argmax(r) as f64
            } else {
                ((argmax(r) + 1) % 3) as f64
            }
        })
        .collect();
    env.insert(
        "t".into(),
        Tensor {
            shape: vec![BATCH],
            data: t,
        },
    );
    let c = eval(&net.graph, &[net.correct.unwrap()], &env, BATCH).unwrap();
    assert_eq!(c[0].item(), 3.0);
}

#[test]
fn names_for_people() {
    let m = model(
        2,
        &[(4, B(Builtin::Tanh)), (1, B(Builtin::Sigmoid))],
        Loss::Bce,
    );
    let net = lower_model(&program(vec![], vec![], &m), &m).unwrap();
    let name = |n| net.graph.names.get(&n).map(String::as_str);
    assert_eq!(name(net.layers[0].z), Some("z1"));
    assert_eq!(name(net.layers[0].a), Some("a1"));
    assert_eq!(name(net.layers[1].z), Some("z2"));
    assert_eq!(name(net.y), Some("y"));
    assert_eq!(name(net.loss), Some("loss"));
}
