//! Differential testing of the whole compiler: random well-formed models
//! (custom activations from the full expression language, random widths,
//! every loss) built from a byte string, and the checks that every stage
//! agrees with an independent oracle. Shared by `tests/compiler_stress.rs`
//! (a seeded loop in `cargo test`) and `fuzz/fuzz_targets/compile_models.rs`
//! (libFuzzer chooses the bytes).
//!
//! For each model: the f64 JIT gradient equals the interpreter's
//! (`graph::eval`) and, for smooth formulas, central differences of the f64
//! JIT loss; the f32 JIT gradient is within a running rounding-error bound
//! of the f64 one (`bound.rs`); printing with `syntax::fmt`, re-parsing and
//! compiling again gives the same values (`oracle.rs`).

#![allow(dead_code)]

mod bound;
mod oracle;

pub use oracle::run;
use slope::check;
use slope::check::BuiltinFunction;

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
