//! The checks run on every generated model: the f64 JIT gradient against
//! the interpreter and (for smooth formulas) central differences, the f32
//! JIT gradient against the f64 one within a running rounding-error bound
//! (`bound.rs`), and printing → re-parsing → the same values.
//!
//! Each model is compiled twice (f64 and f32) in one JIT; the central
//! differences rerun the f64 function, and the reprinted model is checked
//! through the interpreter, so one case costs two compilations.

use super::{Case, Outcome, Rng, bound};
use slope::codegen::{Element, Jit};
use slope::graph::NodeId;
use slope::graph::eval::{Env, Tensor, eval};
use slope::train::layout::Role;
use slope::train::tasks::{LossGrad, param_values};
use slope::{check, pipeline, syntax, train};
use std::collections::HashMap;

const ROWS: usize = 3;

/// How many times its running error bound an f32 value may stray from the
/// f64 one. The bound is first order and sums worst cases, so it is rarely
/// reached; the factor covers the second-order terms it leaves out.
const SLACK: f64 = 2.0;

/// A model's inputs, targets and parameters.
struct Data {
    x: Vec<f64>,
    t: Vec<f64>,
    w: Vec<Vec<f64>>,
}

/// Random inputs (f32-exact), targets fit for the loss, and initial weights.
fn data(model: &check::model::Model, seed: u64) -> Data {
    let mut rng = Rng(seed);
    let x: Vec<f64> = (0..ROWS * model.input.features())
        .map(|_| f64::from(rng.uniform(-1.0, 1.0) as f32))
        .collect();
    let k = model.output_width();
    let t: Vec<f64> = match model.loss {
        check::model::Loss::CrossEntropy => (0..ROWS)
            .map(|_| rng.uniform(0.0, k as f64).floor())
            .collect(),
        check::model::Loss::Bce => (0..ROWS * k)
            .map(|_| rng.uniform(0.0, 1.0).round())
            .collect(),
        _ => (0..ROWS * k)
            .map(|_| f64::from(rng.uniform(-1.0, 1.0) as f32))
            .collect(),
    };
    let w = param_values::<f64>(&train::weights::init(model, seed));
    Data { x, t, w }
}

/// The compiled loss and gradients of `net` in `T`.
fn compile<T: Element>(jit: &mut Jit, net: &pipeline::Network, d: &Data) -> LossGrad<T> {
    let to = |v: &[f64]| v.iter().map(|&a| T::from_f64(a)).collect::<Vec<T>>();
    LossGrad::<T>::new(jit, net, (true, true), ROWS, to(&d.x), to(&d.t))
        .expect("a checked model compiles")
}

/// Loss and gradients (flattened, parameter order) of `lg` at `w`.
fn values<T: Element>(lg: &mut LossGrad<T>, w: &[Vec<f64>]) -> Vec<f64> {
    let params: Vec<Vec<T>> = w
        .iter()
        .map(|p| p.iter().map(|&a| T::from_f64(a)).collect())
        .collect();
    let mut outs = lg.outputs();
    lg.run(&params, &mut outs).expect("it runs");
    let mut all = vec![outs[lg.entry.output(Role::Loss).expect("a loss")][0].to_f64()];
    for i in 0..w.len() {
        let slot = lg.entry.output(Role::Grad(i)).expect("a gradient");
        all.extend(outs[slot].iter().map(|v| v.to_f64()));
    }
    all
}

/// Loss and gradients by the interpreter, and the error bound of each in
/// f32 and in f64.
fn interpret(net: &pipeline::Network, d: &Data) -> (Vec<f64>, [Vec<f64>; 2]) {
    let g = &net.graph;
    let mut env = Env::new();
    let shape = |id| slope::graph::eval::concrete(&g.node(id).shape, ROWS);
    env.insert(
        "x".into(),
        Tensor::new(shape(net.x), d.x.clone()).expect("x"),
    );
    env.insert(
        "t".into(),
        Tensor::new(shape(net.t), d.t.clone()).expect("t"),
    );
    for (p, v) in net.params.iter().zip(&d.w) {
        let t = Tensor::new(p.shape.clone(), v.clone()).expect("p");
        env.insert(p.name.clone(), t);
    }
    let mut roots = vec![net.loss];
    roots.extend(&net.grads);
    let all = g.topo_order(&roots);
    let values = eval(g, &all, &env, ROWS).expect("the interpreter evaluates");
    let at: HashMap<NodeId, &Tensor> = all.iter().copied().zip(&values).collect();
    let out = roots.iter().flat_map(|r| at[r].data.iter().copied());
    let err = |t| {
        let bounds = bound::bounds(t, g, &all, &at);
        let e = roots.iter().flat_map(|r| bounds[r].iter().copied());
        e.collect()
    };
    (out.collect(), [err(bound::F32), err(bound::F64)])
}

/// `a` and `b` agree to `rel` relative to the larger of them and `floor`.
fn close(a: f64, b: f64, rel: f64, floor: f64) -> bool {
    (a - b).abs() <= rel * a.abs().max(b.abs()).max(floor)
}

/// Runs every check on `case`; panics (with the source) on a disagreement.
pub fn run(case: &Case) -> Outcome {
    // Failures name the source and the seed of its inputs and weights.
    let src = &format!("{}(seed {})", case.src, case.seed);
    let (file, diags) = syntax::parse(&case.src);
    assert!(
        diags.is_empty(),
        "the generator wrote a syntax error:\n{src}\n{diags:?}"
    );
    let (program, diags) = check::check(&file);
    if let Some(d) = diags.first() {
        return Outcome::Refused(d.message.clone());
    }
    let model = &program.models[0];
    let Ok((net, _)) = pipeline::compile(&program, model) else {
        return Outcome::Refused("compile".into());
    };
    let d = data(model, case.seed);
    let mut jit = Jit::new(1).expect("a JIT");
    let mut lg = compile::<f64>(&mut jit, &net, &d);
    let f64s = values(&mut lg, &d.w);
    if f64s.iter().any(|v| !v.is_finite() || v.abs() > 1e6) {
        return Outcome::Skipped;
    }
    // The simplifier may change a value only where it was NaN or ±inf
    // (`simplify/rules.rs`): a loss undefined before simplification (a
    // division by `x + -x`) may come out 0 with a gradient that is not its
    // derivative. Nothing is defined there to compare.
    let unsimplified = slope::lower::lower_model(&program, model).expect("lowered once already");
    if !interpret(&unsimplified, &d).0[0].is_finite() {
        return Outcome::Skipped;
    }
    // Values far below the largest are compared absolutely: summation
    // order differs (GEMM blocks, n-ary sums) and cancellation leaves noise.
    let scale = f64s.iter().fold(1.0f64, |m, v| m.max(v.abs()));
    let (oracle, [bounds, bounds64]) = interpret(&net, &d);
    for (i, (a, b)) in f64s.iter().zip(&oracle).enumerate() {
        // Sums in another order differ by rounding, which an ill-conditioned
        // value (`sin` of 1e33) turns into any difference: its bound says so.
        // An infinite bound (a pole or a NaN on the way, where one order
        // gives NaN and another a number) is not compared.
        let within = SLACK * bounds64[i];
        assert!(
            close(*a, *b, 1e-9, scale) || within.is_infinite() || (a - b).abs() <= within,
            "f64 JIT {a} vs interpreter {b} at {i} (bound {}):\n{src}",
            bounds64[i]
        );
    }
    let f32s = values(&mut compile::<f32>(&mut jit, &net, &d), &d.w);
    for (i, ((a, b), o)) in f32s.iter().zip(&f64s).zip(&oracle).enumerate() {
        // An infinite bound (f32's range or a NaN on the way), or an
        // interpreter NaN where the f64 JIT has a number: not compared.
        let within = SLACK * bounds[i] + (b - o).abs();
        assert!(
            within.is_infinite() || within.is_nan() || (a - b).abs() <= within,
            "f32 JIT {a} vs f64 JIT {b} at {i} (bound {}):\n{src}",
            bounds[i]
        );
    }
    if case.smooth {
        central_differences(&mut lg, &d.w, (&f64s, &bounds64), src);
    }
    reprinted(&file, &case.src, &oracle, &d);
    Outcome::Agreed
}

/// The f64 gradient against central differences of the f64 JIT loss.
/// `got` and its f64 rounding bounds: a gradient that is cancellation
/// noise (`z·(1/z)` differentiated where z is tiny) is judged by its bound.
fn central_differences(
    lg: &mut LossGrad<f64>,
    w: &[Vec<f64>],
    (got, bounds): (&[f64], &[f64]),
    src: &str,
) {
    let scale = got.iter().fold(1.0f64, |m, v| m.max(v.abs()));
    let slot = lg.entry.output(Role::Loss).expect("a loss");
    let mut outs = lg.outputs();
    let mut params = w.to_vec();
    let mut at = 1;
    for p in 0..params.len() {
        for i in 0..params[p].len() {
            let v = params[p][i];
            let mut fd = |h: f64| {
                params[p][i] = v + h;
                lg.run(&params, &mut outs).expect("runs");
                let up = outs[slot][0];
                params[p][i] = v - h;
                lg.run(&params, &mut outs).expect("runs");
                let down = outs[slot][0];
                params[p][i] = v;
                (up - down) / (2.0 * h)
            };
            let h = 1e-5 * v.abs().max(1.0);
            let (coarse, fine) = (fd(h), fd(h / 4.0));
            let g = got[at];
            at += 1;
            // Central differences of a smooth loss agree to about h²·f''':
            // where two step sizes disagree (near a pole of `1/x`, say) the
            // differences are what is wrong, and the element is not compared.
            if !coarse.is_finite() || !fine.is_finite() || !close(coarse, fine, 1e-5, scale) {
                continue;
            }
            assert!(
                close(g, fine, 1e-4, scale) || (g - fine).abs() <= SLACK * bounds[at - 1],
                "f64 gradient {g} vs central difference {fine} (param {p}, element {i}):\n{src}"
            );
        }
    }
}

/// Printing, re-parsing and compiling again gives the same values, to the
/// bit: the same file must give the same graph.
fn reprinted(file: &syntax::ast::File, src: &str, want: &[f64], d: &Data) {
    let printed = syntax::fmt::format(file, src);
    let (again, diags) = syntax::parse(&printed);
    assert!(
        diags.is_empty(),
        "the printed file does not parse:\n{printed}\n{diags:?}"
    );
    assert_eq!(
        syntax::sexp::file_bare(&again),
        syntax::sexp::file_bare(file),
        "{printed}"
    );
    assert_eq!(
        syntax::fmt::format(&again, &printed),
        printed,
        "fmt is not idempotent"
    );
    let (program, diags) = check::check(&again);
    assert!(
        diags.is_empty(),
        "the printed file does not check:\n{printed}\n{diags:?}"
    );
    let (net, _) = pipeline::compile(&program, &program.models[0]).expect("compiles again");
    let (got, _) = interpret(&net, d);
    let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(
        bits(&got),
        bits(want),
        "reprinted values differ:\n{printed}"
    );
}
