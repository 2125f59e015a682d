//! Differential testing of the whole compiler: random well-formed models
//! (custom activations from the full expression language, random widths,
//! every loss) built from a byte string, and the checks that every stage
//! agrees with an independent oracle. Shared by `tests/compiler_stress.rs`
//! (a seeded loop in `cargo test`) and `fuzz/fuzz_targets/compile_models.rs`
//! (libFuzzer chooses the bytes).
//!
//! For each model: the f64 JIT gradient equals the interpreter's
//! (`graph::eval`) and, for smooth formulas, central differences of the f64
//! JIT loss; the f32 JIT gradient is close to the f64 one; printing with
//! `syntax::fmt`, re-parsing and compiling again gives the same values.

#![allow(dead_code)]

use slope::check::BuiltinFunction;
use slope::codegen::{Element, Jit};
use slope::graph::eval::{Env, Tensor, eval};
use slope::train::layout::Role;
use slope::train::tasks::{LossGrad, param_values};
use slope::{check, pipeline, syntax, train};

/// Reads choices from bytes; past the end every choice is 0 (the smallest).
pub struct Bytes<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> Bytes<'a> {
    /// Choices from `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Bytes { data, at: 0 }
    }

    fn byte(&mut self) -> u8 {
        let b = self.data.get(self.at).copied().unwrap_or(0);
        self.at += 1;
        b
    }

    /// A number in `0..n` (`n > 0`).
    fn below(&mut self, n: usize) -> usize {
        usize::from(self.byte()) % n
    }
}

/// A generated model's source and what the generator knows about it.
pub struct Case {
    /// The `.nn` text.
    pub src: String,
    /// False when a formula uses something with kinks or jumps (`abs`,
    /// comparisons, ...), where central differences need not agree.
    pub smooth: bool,
    /// Random inputs and parameters seed.
    pub seed: u64,
}

/// Functions that are smooth everywhere they are defined.
const SMOOTH: &[&str] = &[
    "exp", "log", "sqrt", "sin", "cos", "identity", "tanh", "sigmoid", "softplus", "gelu", "swish",
    "mish",
];

struct Gen<'b, 'a> {
    b: &'b mut Bytes<'a>,
    smooth: bool,
}

impl Gen<'_, '_> {
    /// A random expression over `vars`, at most `depth` levels deep.
    fn expr(&mut self, vars: &[&str], depth: usize, out: &mut String) {
        let choice = if depth == 0 {
            self.b.below(3)
        } else {
            self.b.below(12)
        };
        match choice {
            0 | 1 => out.push_str(vars[self.b.below(vars.len())]),
            2 => {
                let consts = ["0.5", "2", "1", "3", "0.25", "e", "pi", "1e-1", ".75"];
                out.push_str(consts[self.b.below(consts.len())]);
            }
            3..=5 => {
                // A chain, sometimes long (flat sums and products).
                let long = self.b.below(8) == 0;
                let n = if long {
                    30 + self.b.below(60)
                } else {
                    2 + self.b.below(3)
                };
                let ops: &[&str] = if self.b.below(2) == 0 {
                    &[" + ", " - "]
                } else {
                    &["*", "/"]
                };
                out.push('(');
                for k in 0..n {
                    if k > 0 {
                        let op = ops[self.b.below(2)];
                        out.push_str(op);
                    }
                    self.expr(vars, if long { 0 } else { depth - 1 }, out);
                }
                out.push(')');
            }
            6 => {
                out.push_str("-(");
                self.expr(vars, depth - 1, out);
                out.push(')');
            }
            7 => {
                out.push('(');
                self.expr(vars, depth - 1, out);
                out.push_str(")^");
                let pows = ["2", "3", "0.5", "(-1)", "1.5"];
                out.push_str(pows[self.b.below(pows.len())]);
            }
            8 => {
                let cmp = ["<", ">", "<=", ">="];
                self.smooth = false;
                out.push_str("where(");
                self.expr(vars, depth - 1, out);
                out.push_str(cmp[self.b.below(4)]);
                self.expr(vars, depth - 1, out);
                out.push_str(", ");
                self.expr(vars, depth - 1, out);
                out.push_str(", ");
                self.expr(vars, depth - 1, out);
                out.push(')');
            }
            _ => {
                let all = BuiltinFunction::ALL;
                let f = all[self.b.below(all.len())];
                if f.name() == "where" {
                    return self.expr(vars, depth, out);
                }
                if !SMOOTH.contains(&f.name()) {
                    self.smooth = false;
                }
                out.push_str(f.name());
                out.push('(');
                for k in 0..f.arity() {
                    if k > 0 {
                        out.push_str(", ");
                    }
                    self.expr(vars, depth - 1, out);
                }
                out.push(')');
            }
        }
    }
}

/// A random model from `bytes`.
pub fn case(bytes: &[u8]) -> Case {
    let mut b = Bytes::new(bytes);
    let mut g = Gen {
        b: &mut b,
        smooth: true,
    };
    let mut src = String::new();
    let acts = g.b.below(3);
    for k in 0..acts {
        src.push_str(&format!("activation act{k}(x) = "));
        let depth = 1 + g.b.below(4);
        g.expr(&["x"], depth, &mut src);
        src.push('\n');
    }
    let loss = g.b.below(4);
    if loss == 3 {
        src.push_str("loss custom(y, t) = ");
        let depth = 1 + g.b.below(3);
        g.expr(&["y", "t"], depth, &mut src);
        src.push('\n');
    }
    let inputs = 1 + g.b.below(4);
    src.push_str(&format!("model m {{\n    input {inputs}\n"));
    let builtins = check::Builtin::ALL.map(check::Builtin::name);
    for _ in 0..g.b.below(3) {
        let width = 1 + g.b.below(4);
        let act = if acts > 0 && g.b.below(2) == 0 {
            format!("act{}", g.b.below(acts))
        } else {
            let a = builtins[g.b.below(builtins.len())];
            if !SMOOTH.contains(&a) {
                g.smooth = false;
            }
            a.to_string()
        };
        src.push_str(&format!("    dense {width} {act}\n"));
    }
    let out = 1 + g.b.below(3);
    let (last, name) = match loss {
        0 => ("identity".to_string(), "mse"),
        1 => ("sigmoid".to_string(), "bce"),
        2 => ("softmax".to_string(), "cross_entropy"),
        _ if acts > 0 => (format!("act{}", g.b.below(acts)), "custom"),
        _ => ("tanh".to_string(), "custom"),
    };
    let out = if loss == 2 { out + 1 } else { out };
    src.push_str(&format!("    dense {out} {last}\n    loss {name}\n}}\n"));
    let seed = u64::from(g.b.byte());
    let smooth = g.smooth;
    Case { src, smooth, seed }
}

/// What one case showed.
#[derive(Debug, PartialEq)]
pub enum Outcome {
    /// Every check passed.
    Agreed,
    /// The checker refused the model (with its first message): the
    /// generator's business, not a bug, but counted.
    Refused(String),
    /// Values too large or not finite to compare.
    Skipped,
}

/// A tiny deterministic generator (splitmix64) for inputs.
pub struct Rng(pub u64);

impl Rng {
    /// The next value in `[lo, hi)`.
    pub fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        lo + (hi - lo) * ((z >> 11) as f64 / (1u64 << 53) as f64)
    }

    /// Random bytes.
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.uniform(0.0, 256.0) as u8).collect()
    }
}

const ROWS: usize = 3;

/// Loss and gradients (flattened, parameter order) by the JIT in `T`.
pub fn jit<T: Element>(net: &pipeline::Network, x: &[f64], t: &[f64], w: &[Vec<f64>]) -> Vec<f64> {
    let mut j = Jit::new(1).expect("a JIT");
    let to = |v: &[f64]| v.iter().map(|&a| T::from_f64(a)).collect::<Vec<T>>();
    let mut lg = LossGrad::<T>::new(&mut j, net, (true, true), ROWS, to(x), to(t))
        .expect("a checked model compiles");
    let params: Vec<Vec<T>> = w.iter().map(|p| to(p)).collect();
    let mut outs = lg.outputs();
    lg.run(&params, &mut outs).expect("it runs");
    let mut all = vec![outs[lg.entry.output(Role::Loss).expect("a loss")][0].to_f64()];
    for i in 0..w.len() {
        let slot = lg.entry.output(Role::Grad(i)).expect("a gradient");
        all.extend(outs[slot].iter().map(|v| v.to_f64()));
    }
    all
}

/// The same by the interpreter, and the largest and smallest nonzero
/// magnitudes of any value on the way (what f32 rounding errors scale
/// with, and whether f32's range holds them).
pub fn interpret(
    net: &pipeline::Network,
    x: &[f64],
    t: &[f64],
    w: &[Vec<f64>],
) -> (Vec<f64>, (f64, f64)) {
    let g = &net.graph;
    let mut env = Env::new();
    let shape = |id| slope::graph::eval::concrete(&g.node(id).shape, ROWS);
    env.insert(
        "x".into(),
        Tensor::new(shape(net.x), x.to_vec()).expect("x"),
    );
    env.insert(
        "t".into(),
        Tensor::new(shape(net.t), t.to_vec()).expect("t"),
    );
    for (p, v) in net.params.iter().zip(w) {
        env.insert(
            p.name.clone(),
            Tensor::new(p.shape.clone(), v.clone()).expect("p"),
        );
    }
    let mut roots = vec![net.loss];
    roots.extend(&net.grads);
    let all = g.topo_order(&roots);
    let values = eval(g, &all, &env, ROWS).expect("the interpreter evaluates");
    let finite = || {
        values
            .iter()
            .flat_map(|v| v.data.iter())
            .filter(|v| v.is_finite() && **v != 0.0)
            .map(|v| v.abs())
    };
    let largest = finite().fold(0.0f64, f64::max);
    let smallest = finite().fold(f64::INFINITY, f64::min);
    let at: std::collections::HashMap<_, _> = all.iter().zip(&values).collect();
    let out = roots.iter().flat_map(|r| at[r].data.iter().copied());
    (out.collect(), (largest, smallest))
}

/// `a` and `b` agree to `rel` relative to the larger of them and `floor`.
fn close(a: f64, b: f64, rel: f64, floor: f64) -> bool {
    (a - b).abs() <= rel * a.abs().max(b.abs()).max(floor)
}

/// Runs every check on `src`; panics (with the source) on a disagreement.
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
    let mut rng = Rng(case.seed);
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
    let w: Vec<Vec<f64>> = param_values::<f64>(&train::weights::init(model, case.seed));

    let f64s = jit::<f64>(&net, &x, &t, &w);
    if f64s.iter().any(|v| !v.is_finite() || v.abs() > 1e6) {
        return Outcome::Skipped;
    }
    // Values far below the largest are compared absolutely: summation
    // order differs (GEMM blocks, n-ary sums) and cancellation leaves noise.
    let scale = f64s.iter().fold(1.0f64, |m, v| m.max(v.abs()));
    let (oracle, (largest, smallest)) = interpret(&net, &x, &t, &w);
    for (i, (a, b)) in f64s.iter().zip(&oracle).enumerate() {
        assert!(
            close(*a, *b, 1e-9, scale),
            "f64 JIT {a} vs interpreter {b} at {i}:\n{src}"
        );
    }
    // f32 rounding errors scale with the largest value they pass through,
    // and the derivative rule tanh' = 1 - t² cancels where tanh saturates
    // (t = 1 - 2e-7 in f32 at u = 8: sech² off by 27%), which large
    // pre-activations then multiply: measured up to 150% relative error on
    // gradients whose f64 value moves by 1e-5 under f32-sized input noise.
    // So the f32 check is loose: 1% of the largest value on the way. A
    // wrong f32 rule or kernel is off by the values themselves.
    let f32_floor = scale.max(largest);
    let f32s = jit::<f32>(&net, &x, &t, &w);
    // Values outside f32's normal range on the way (y^40 of y = 0.01)
    // over- or underflow to inf, 0 and then NaN: f32's range, not a bug.
    let in_range = largest < 1e37 && smallest > 1e-37;
    if !in_range && f32s.iter().any(|v| !v.is_finite()) {
        return Outcome::Skipped;
    }
    for (i, (a, b)) in f32s.iter().zip(&f64s).enumerate() {
        assert!(
            close(*a, *b, 1e-2, f32_floor),
            "f32 JIT {a} vs f64 JIT {b} at {i}:\n{src}"
        );
    }
    if case.smooth {
        central_differences(&net, &x, &t, &w, &f64s, src);
    }
    reprinted(&file, &case.src, &f64s, (&x, &t, &w), scale);
    Outcome::Agreed
}

/// The f64 gradient against central differences of the f64 JIT loss.
fn central_differences(
    net: &pipeline::Network,
    x: &[f64],
    t: &[f64],
    w: &[Vec<f64>],
    got: &[f64],
    src: &str,
) {
    let scale = got.iter().fold(1.0f64, |m, v| m.max(v.abs()));
    let mut j = Jit::new(1).expect("a JIT");
    let mut lg = LossGrad::<f64>::new(&mut j, net, (true, false), ROWS, x.to_vec(), t.to_vec())
        .expect("the loss compiles");
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
                close(g, fine, 1e-4, scale),
                "f64 gradient {g} vs central difference {fine} (param {p}, element {i}):\n{src}"
            );
        }
    }
}

/// Printing, re-parsing and compiling again gives the same values.
fn reprinted(
    file: &syntax::ast::File,
    src: &str,
    want: &[f64],
    (x, t, w): (&[f64], &[f64], &[Vec<f64>]),
    scale: f64,
) {
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
    let got = jit::<f64>(&net, x, t, w);
    for (a, b) in got.iter().zip(want) {
        assert!(
            close(*a, *b, 1e-9, scale),
            "reprinted {a} vs {b}:\n{printed}"
        );
    }
}
