//! Printing graphs for people: plain text that is valid `.nn` expression
//! syntax, and LaTeX.
//!
//! The graph holds canonical forms (`a - b` is `a + (-1)*b`, `a/b` is
//! `a*(1/b)`); the printer turns them back into the readable ones and puts
//! only the parentheses that the precedence of spec §4 needs:
//! comparison (1) < `+ -` (2) < `* /` (3) < unary `-` (4) < `^` (5) < atoms (6).
//! Nodes with a name (`a1`, `y`) print as that name, unless they are the
//! expression being defined. Tensor-only ops print in textbook notation
//! (`W1·x`, `a1ᵀ`, `⊙`), which is not `.nn` syntax: those appear only in the
//! matrix equations of `slope grad`.

use super::{Graph, NodeId, Op, WindowOp};

/// Output notation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Style {
    /// `.nn` expression syntax (plus `·`, `ᵀ`, `⊙` for tensor ops).
    Text,
    /// LaTeX math mode.
    Latex,
}

/// A printer over one graph.
pub struct Printer<'g> {
    g: &'g Graph,
    style: Style,
    /// When false, named nodes print by their formula (names of leaves stay).
    use_names: bool,
    /// Print batch tensors as one sample's column vectors (textbook form).
    per_sample: bool,
}

/// The expression of `id` as `.nn` text, named nodes printed by name except `id` itself.
pub fn text(g: &Graph, id: NodeId) -> String {
    Printer::new(g, Style::Text).root(id)
}

/// The expression of `id` as LaTeX, named nodes printed by name except `id` itself.
pub fn latex(g: &Graph, id: NodeId) -> String {
    Printer::new(g, Style::Latex).root(id)
}

/// Precedence levels of spec §4.
const CMP: u8 = 1;
const SUM: u8 = 2;
const PROD: u8 = 3;
const NEG: u8 = 4;
const POW: u8 = 5;
const ATOM: u8 = 6;

impl<'g> Printer<'g> {
    /// A printer in the given style that prints named nodes by name.
    pub fn new(g: &'g Graph, style: Style) -> Printer<'g> {
        Printer {
            g,
            style,
            use_names: true,
            per_sample: false,
        }
    }

    /// Prints `[B, n]` tensors as one sample's column vectors: `a·Wᵀ`
    /// becomes `W·a`, a batch-summed `aᵀ·δ` becomes `δ·aᵀ`, a sum over the
    /// batch or a factor holding the batch size `B` (the mean's `1/B`) is
    /// left out. The caller states the batch scaling once, in words.
    pub fn per_sample(mut self) -> Printer<'g> {
        self.per_sample = true;
        self
    }

    /// Whether named nodes print by name (default) or by formula.
    pub fn with_names(mut self, use_names: bool) -> Printer<'g> {
        self.use_names = use_names;
        self
    }

    /// The formula of `id` (even if `id` itself has a name).
    pub fn root(&self, id: NodeId) -> String {
        self.formula(id).0
    }

    /// `id` as an operand: its name if it has one, else its formula.
    pub fn expr(&self, id: NodeId) -> String {
        self.p(id).0
    }

    /// A name for people in this style: `a1` stays `a1` in text and becomes
    /// `a_{1}` in LaTeX, `δ2` becomes `\delta_{2}`.
    pub fn name(&self, name: &str) -> String {
        match self.style {
            Style::Text => name.to_string(),
            Style::Latex => latex_name(name),
        }
    }

    fn p(&self, id: NodeId) -> (String, u8) {
        if self.use_names
            && let Some(name) = self.g.names.get(&id)
        {
            return (self.name(name), ATOM);
        }
        self.formula(id)
    }

    fn paren(&self, s: String) -> String {
        match self.style {
            Style::Text => format!("({s})"),
            Style::Latex => format!("\\left({s}\\right)"),
        }
    }

    /// `id` printed so that it binds at least as tightly as `min`.
    fn at(&self, id: NodeId, min: u8) -> String {
        let (s, prec) = self.p(id);
        if prec < min { self.paren(s) } else { s }
    }

    /// A window op: correlations as `x ⋆ W` (`⋆ᵀ` transposed), pooling
    /// as a call (`maxpool(x)` when it selects and reads the same tensor).
    fn window(&self, w: WindowOp, a: &[NodeId]) -> (String, u8) {
        let star = match (w, self.style) {
            (WindowOp::ConvBackInput, Style::Text) => " ⋆ᵀ ",
            (WindowOp::ConvBackInput, Style::Latex) => " \\star^{\\top} ",
            (_, Style::Text) => " ⋆ ",
            (_, Style::Latex) => " \\star ",
        };
        match w {
            WindowOp::Conv | WindowOp::ConvBackInput | WindowOp::ConvBackKernel => (
                format!("{}{star}{}", self.at(a[0], NEG), self.at(a[1], NEG)),
                PROD,
            ),
            WindowOp::MaxPool if a[0] == a[1] => self.call(w.name(), &a[..1]),
            WindowOp::MaxPool
            | WindowOp::MaxPoolBack
            | WindowOp::AvgPool
            | WindowOp::AvgPoolBack => self.call(w.name(), a),
        }
    }

    fn call(&self, name: &str, args: &[NodeId]) -> (String, u8) {
        let inner: Vec<String> = args.iter().map(|&a| self.p(a).0).collect();
        let head = match self.style {
            Style::Text => name.to_string(),
            Style::Latex => latex_func(name),
        };
        (format!("{head}{}", self.paren(inner.join(", "))), ATOM)
    }

    fn formula(&self, id: NodeId) -> (String, u8) {
        if self.per_sample
            && let Some(out) = self.sample_form(id)
        {
            return out;
        }
        let n = self.g.node(id);
        let a = &n.args;
        match n.op {
            Op::Const(c) => self.number(c.value()),
            Op::Leaf(l) => (self.name(&self.g.leaf_info(l).name), ATOM),
            Op::BatchSize => ("B".to_string(), ATOM),
            Op::Neg => self.negate(self.p(a[0])),
            Op::Recip | Op::Mul => self.product(id),
            Op::Pow if self.negative_exponent(id).is_some() => self.product(id),
            Op::Pow => self.power(self.at(a[0], ATOM), a[1]),
            Op::Add => self.sum(a),
            Op::Sqrt if self.style == Style::Latex => {
                (format!("\\sqrt{{{}}}", self.p(a[0]).0), ATOM)
            }
            Op::Abs if self.style == Style::Latex => {
                (format!("\\left|{}\\right|", self.p(a[0]).0), ATOM)
            }
            Op::Exp
            | Op::Log
            | Op::Sqrt
            | Op::Abs
            | Op::Sin
            | Op::Cos
            | Op::Tanh
            | Op::Sigmoid
            | Op::Relu
            | Op::Softplus
            | Op::Max
            | Op::Min
            | Op::Where
            | Op::Eq
            | Op::Softmax
            | Op::LogSumExp
            | Op::ArgMax => self.call(n.op.name(), a),
            Op::OneHot(_) => self.call("onehot", a),
            Op::Window(w, _) => self.window(w, a),
            Op::Flatten | Op::Unflatten(_) => self.call(n.op.name(), a),
            Op::Lt | Op::Le | Op::Gt | Op::Ge => {
                let sym = match (n.op, self.style) {
                    (Op::Lt, _) => "<",
                    (Op::Gt, _) => ">",
                    (Op::Le, Style::Text) => "<=",
                    (Op::Ge, Style::Text) => ">=",
                    (Op::Le, Style::Latex) => "\\le",
                    _ => "\\ge",
                };
                (
                    format!("{} {sym} {}", self.at(a[0], SUM), self.at(a[1], SUM)),
                    CMP,
                )
            }
            Op::MatMul => {
                let dot = match self.style {
                    Style::Text => "·",
                    Style::Latex => " ",
                };
                (
                    format!("{}{dot}{}", self.at(a[0], NEG), self.at(a[1], NEG)),
                    PROD,
                )
            }
            Op::Transpose => {
                let t = match self.style {
                    Style::Text => "ᵀ",
                    Style::Latex => "^{\\top}",
                };
                (format!("{}{t}", self.at(a[0], ATOM)), POW)
            }
            // A broadcast is indexing, not arithmetic: print what is repeated.
            Op::Broadcast(_) => self.p(a[0]),
            Op::Sum(axes) => {
                let (s, _) = self.p(a[0]);
                let ax: Vec<String> = (0..8)
                    .filter(|i| axes.0 & (1 << i) != 0)
                    .map(|i| i.to_string())
                    .collect();
                match self.style {
                    Style::Text => (format!("sum({s}, axis={})", ax.join("+")), ATOM),
                    Style::Latex => (
                        format!("\\sum_{{{}}} {}", ax.join(","), self.paren(s)),
                        PROD,
                    ),
                }
            }
        }
    }

    /// The per-sample (column-vector) reading of a batch tensor op.
    fn sample_form(&self, id: NodeId) -> Option<(String, u8)> {
        let n = self.g.node(id);
        let a = &n.args;
        let dot = match self.style {
            Style::Text => "·",
            Style::Latex => " ",
        };
        match n.op {
            Op::MatMul if self.batched(a[0]) && !self.batched(a[1]) => {
                // Rows a_i·M are the columns Mᵀ·a_i.
                Some((
                    format!("{}{dot}{}", self.transposed(a[1]), self.at(a[0], NEG)),
                    PROD,
                ))
            }
            Op::MatMul if self.is_batch_transpose(a[0]) && self.batched(a[1]) => {
                // Aᵀ·D = Σ_i a_i·d_iᵀ: one sample's term is a·dᵀ.
                let p = self.g.node(a[0]).args[0];
                Some((
                    format!("{}{dot}{}", self.at(p, NEG), self.transposed(a[1])),
                    PROD,
                ))
            }
            Op::Transpose if self.g.node(a[0]).op == Op::MatMul => {
                let m = self.g.node(a[0]);
                if self.is_batch_transpose(m.args[0]) && self.batched(m.args[1]) {
                    // (Aᵀ·D)ᵀ = Σ_i d_i·a_iᵀ.
                    let p = self.g.node(m.args[0]).args[0];
                    return Some((
                        format!("{}{dot}{}", self.at(m.args[1], NEG), self.transposed(p)),
                        PROD,
                    ));
                }
                None
            }
            Op::Sum(axes) if axes.0 & 1 != 0 && self.batched(a[0]) => {
                if axes.0 == 1 {
                    Some(self.p(a[0]))
                } else {
                    // Summing the other axes too: a sum over one sample's elements.
                    let (s, _) = self.p(a[0]);
                    Some(self.call_text("sum", s))
                }
            }
            Op::Sum(axes) if axes.0 == 0b10 && self.batched(a[0]) => {
                let (s, _) = self.p(a[0]);
                Some(self.call_text("sum", s))
            }
            _ => None,
        }
    }

    fn call_text(&self, name: &str, inner: String) -> (String, u8) {
        let head = match self.style {
            Style::Text => name.to_string(),
            Style::Latex => latex_func(name),
        };
        (format!("{head}{}", self.paren(inner)), ATOM)
    }

    /// True for a tensor whose first axis is the batch.
    fn batched(&self, id: NodeId) -> bool {
        self.g.node(id).shape.0.first() == Some(&super::Dim::Batch)
    }

    fn is_batch_transpose(&self, id: NodeId) -> bool {
        let n = self.g.node(id);
        n.op == Op::Transpose && self.batched(n.args[0])
    }

    /// `Mᵀ`, printing `(Wᵀ)ᵀ` as `W`.
    fn transposed(&self, id: NodeId) -> String {
        let n = self.g.node(id);
        if n.op == Op::Transpose && !self.is_named(id) {
            return self.at(n.args[0], NEG);
        }
        let t = match self.style {
            Style::Text => "ᵀ",
            Style::Latex => "^{\\top}",
        };
        format!("{}{t}", self.at(id, ATOM))
    }

    /// True for a scalar factor that holds the batch size (the mean's `1/B`),
    /// left out of per-sample equations.
    pub fn is_batch_scale(&self, id: NodeId) -> bool {
        let n = self.g.node(id);
        if !n.shape.0.is_empty() {
            return matches!(n.op, Op::Broadcast(_)) && self.is_batch_scale(n.args[0]);
        }
        self.g
            .topo_order(&[id])
            .iter()
            .any(|&m| self.g.node(m).op == Op::BatchSize)
    }

    fn number(&self, v: f64) -> (String, u8) {
        if let Some(k) = named_constant(v) {
            return match (k.over, self.style) {
                (false, _) => (self.constant_text(k), ATOM),
                (true, Style::Text) => (format!("1/{}", self.constant_text(k)), PROD),
                (true, Style::Latex) => (format!("\\frac{{1}}{{{}}}", k.latex), ATOM),
            };
        }
        if !v.is_finite() {
            // Not expressible as a literal; these are their IEEE values.
            let s = if v.is_nan() {
                "0/0"
            } else if v > 0.0 {
                "1/0"
            } else {
                "-1/0"
            };
            return (self.paren(s.to_string()), ATOM);
        }
        if v < 0.0 {
            return self.negate(self.number(-v));
        }
        // A multiple of a named constant (`sqrt(2)/2`); short decimals are
        // left alone, which also keeps the multiple itself from recursing.
        if number_text(v).len() > 8 && scaled_constant(v).is_some() {
            return self.product_of(v, &[]);
        }
        if let Some((p, q)) = small_fraction(v).filter(|_| number_text(v).len() > 8) {
            // 1/3 reads better than 0.3333333333333333, and reads back the same.
            let (p, q) = (number_text(p), number_text(q));
            return match self.style {
                Style::Text => (format!("{p}/{q}"), PROD),
                Style::Latex => (format!("\\frac{{{p}}}{{{q}}}"), ATOM),
            };
        }
        (number_text(v), ATOM)
    }

    /// A named constant's text in this style (without any `1/`).
    fn constant_text(&self, k: NamedConstant) -> String {
        match self.style {
            Style::Text => k.text.to_string(),
            Style::Latex => k.latex.to_string(),
        }
    }

    /// Puts the coefficient `coef` of a product into `num` and `den`:
    /// `sqrt(2/pi)`, `x/sqrt(2*pi)`, `0.134145*x/sqrt(2*pi)`, `2/3`, `x/4`.
    fn coefficient(&self, coef: f64, num: &mut Vec<String>, den: &mut Vec<(String, u8)>) {
        if coef == 1.0 {
            return;
        }
        if let Some((r, k)) = scaled_constant(coef) {
            let s = self.constant_text(k);
            if k.over {
                den.insert(0, (s, ATOM));
            } else {
                num.insert(0, s);
            }
            let inv = 1.0 / r;
            if r < 1.0 && inv.fract() == 0.0 && 1.0 / inv == r {
                // sqrt(2)*x/2 reads better than 0.5*sqrt(2)*x.
                den.insert(0, self.number(inv));
            } else if r != 1.0 {
                num.insert(0, self.number(r).0);
            }
            return;
        }
        let inv = 1.0 / coef;
        if coef < 1.0 && inv.fract() == 0.0 && 1.0 / inv == coef && inv < 1e15 {
            den.insert(0, self.number(inv));
        } else if let Some((p, q)) = small_fraction(coef) {
            // 2/3 reads better than 0.6666666666666666.
            num.insert(0, self.number(p).0);
            den.insert(0, self.number(q));
        } else {
            num.insert(0, self.number(coef).0);
        }
    }

    /// `-s` given `s` and its precedence.
    fn negate(&self, (s, prec): (String, u8)) -> (String, u8) {
        if prec < PROD {
            (format!("-{}", self.paren(s)), NEG)
        } else if prec >= NEG {
            (format!("-{s}"), NEG)
        } else {
            (format!("-{s}"), PROD)
        }
    }

    /// The constant exponent of `x^k` when `k < 0`.
    fn negative_exponent(&self, id: NodeId) -> Option<f64> {
        let n = self.g.node(id);
        if n.op != Op::Pow {
            return None;
        }
        const_value(self.g, n.args[1]).filter(|&k| k < 0.0)
    }

    fn power(&self, base: String, exponent: NodeId) -> (String, u8) {
        match self.style {
            Style::Text => (format!("{base}^{}", self.at(exponent, POW)), POW),
            Style::Latex => (format!("{base}^{{{}}}", self.p(exponent).0), POW),
        }
    }

    /// Splits a term of a sum into its sign and magnitude: `(-3)*x` is
    /// `(true, 3, [x])`, `x*y` is `(false, 1, [x, y])`.
    fn signed(&self, id: NodeId) -> (bool, f64, Vec<NodeId>) {
        if !self.is_named(id) {
            if let Some(c) = const_value(self.g, id) {
                return (c < 0.0, c.abs(), vec![]);
            }
            let n = self.g.node(id);
            if n.op == Op::Mul
                && let Some(c) = const_value(self.g, n.args[0])
            {
                return (c < 0.0, c.abs(), n.args[1..].to_vec());
            }
        }
        (false, 1.0, vec![id])
    }

    /// True for `1/x` and `x^-k`, which print as denominators.
    fn is_denominator(&self, id: NodeId) -> bool {
        !self.is_named(id)
            && (self.g.node(id).op == Op::Recip || self.negative_exponent(id).is_some())
    }

    fn is_named(&self, id: NodeId) -> bool {
        self.use_names && self.g.names.contains_key(&id)
    }

    fn sum(&self, terms: &[NodeId]) -> (String, u8) {
        let mut split: Vec<(bool, f64, Vec<NodeId>)> =
            terms.iter().map(|&t| self.signed(t)).collect();
        // Positive terms first reads as `y - t`, not `-t + y`; a textbook
        // puts the constant last (`log(x) + 1`, `6*x^2 - 4`) unless it is
        // the only positive term (`1 - a^2`, not `-a^2 + 1`).
        let lead = !split.iter().any(|(neg, _, f)| !neg && !f.is_empty());
        split.sort_by_key(|(neg, _, f)| match (f.is_empty(), neg) {
            (true, false) if lead => 0,
            (false, false) => 1,
            (false, true) => 2,
            (true, false) => 3,
            (true, true) => 4,
        });
        let mut out = String::new();
        for (i, (neg, c, factors)) in split.into_iter().enumerate() {
            let (s, prec) = self.magnitude(c, &factors);
            if i == 0 {
                if neg {
                    out = self.negate((s, prec)).0;
                } else {
                    out = if prec < SUM { self.paren(s) } else { s };
                }
            } else if neg {
                out += " - ";
                out += &(if prec < PROD { self.paren(s) } else { s });
            } else {
                out += " + ";
                out += &(if prec <= SUM { self.paren(s) } else { s });
            }
        }
        (out, SUM)
    }

    /// `c * factors...` with `c >= 0`.
    fn magnitude(&self, c: f64, factors: &[NodeId]) -> (String, u8) {
        let kept: Vec<NodeId>;
        let factors = if self.per_sample {
            kept = factors
                .iter()
                .copied()
                .filter(|&f| !self.is_batch_scale(f))
                .collect();
            &kept[..]
        } else {
            factors
        };
        match factors {
            [] => self.number(c),
            [f] if c == 1.0 && !self.is_denominator(*f) => self.p(*f),
            _ => self.product_of(c, factors),
        }
    }

    /// A product node (`Mul`, `Recip`, or `Pow` with a negative exponent).
    fn product(&self, id: NodeId) -> (String, u8) {
        let n = self.g.node(id);
        let (mut coef, factors) = match n.op {
            Op::Mul => (1.0, n.args.clone()),
            _ => (1.0, vec![id]),
        };
        let mut rest = Vec::new();
        for f in factors {
            if self.per_sample && self.is_batch_scale(f) {
                continue;
            }
            match const_value(self.g, f) {
                Some(c) if !self.is_named(f) => coef *= c,
                _ => rest.push(f),
            }
        }
        if coef < 0.0 {
            return self.negate(self.magnitude(-coef, &rest));
        }
        self.magnitude(coef, &rest)
    }

    fn product_of(&self, coef: f64, factors: &[NodeId]) -> (String, u8) {
        let mut num: Vec<String> = Vec::new();
        let mut den: Vec<(String, u8)> = Vec::new();
        let mut num_ids: Vec<NodeId> = Vec::new();
        let tensor_mul = factors.iter().any(|&f| self.is_tensor_expr(f));
        for &f in factors {
            let n = self.g.node(f);
            if !self.is_named(f) && n.op == Op::Recip {
                den.push(self.p(n.args[0]));
            } else if !self.is_named(f)
                && let Some(k) = self.negative_exponent(f)
            {
                let base = self.at(n.args[0], ATOM);
                den.push(self.power_const(base, -k));
            } else {
                num.push(self.at(f, NEG + 1));
                num_ids.push(f);
            }
        }
        let lone = (num_ids.len() == 1).then(|| num_ids[0]);
        self.coefficient(coef, &mut num, &mut den);
        // A lone numerator of a LaTeX fraction needs no parentheses:
        // \frac{\tanh(u) + 1}{2}, not \frac{\left(\tanh(u) + 1\right)}{2}.
        if let Some(f) = lone
            && self.style == Style::Latex
            && !den.is_empty()
            && num.len() == 1
        {
            num[0] = self.p(f).0;
        }
        let join = match (self.style, tensor_mul) {
            (Style::Text, false) => "*",
            (Style::Text, true) => " ⊙ ",
            (Style::Latex, false) => " \\cdot ",
            (Style::Latex, true) => " \\odot ",
        };
        let top = if num.is_empty() {
            "1".to_string()
        } else {
            num.join(join)
        };
        if den.is_empty() {
            return (top, PROD);
        }
        match self.style {
            Style::Latex => {
                let bottom: Vec<String> = den.into_iter().map(|(s, _)| s).collect();
                (format!("\\frac{{{top}}}{{{}}}", bottom.join(join)), ATOM)
            }
            Style::Text => {
                let bottom = if den.len() == 1 {
                    let (s, prec) = den.remove(0);
                    if prec < POW { self.paren(s) } else { s }
                } else {
                    let parts: Vec<String> = den
                        .into_iter()
                        .map(|(s, prec)| if prec <= NEG { self.paren(s) } else { s })
                        .collect();
                    self.paren(parts.join(join))
                };
                (format!("{top}/{bottom}"), PROD)
            }
        }
    }

    fn power_const(&self, base: String, k: f64) -> (String, u8) {
        if k == 1.0 {
            return (base, ATOM);
        }
        let (e, prec) = self.number(k);
        match self.style {
            Style::Text if prec < POW => (format!("{base}^({e})"), POW),
            Style::Text => (format!("{base}^{e}"), POW),
            Style::Latex => (format!("{base}^{{{e}}}"), POW),
        }
    }

    /// True for a tensor-valued factor that is not element-wise (`W2ᵀ·δ2`),
    /// which makes the product a Hadamard product `⊙` in the printout.
    fn is_tensor_expr(&self, id: NodeId) -> bool {
        let n = self.g.node(id);
        !n.shape.0.is_empty()
            && !self.is_named(id)
            && matches!(
                n.op,
                Op::MatMul | Op::Transpose | Op::Sum(_) | Op::OneHot(_)
            )
    }
}

/// `v = p/q` with a small denominator `q` (2..=12) that is not a power of
/// two (those print exactly as decimals), when `p/q` is exactly `v`.
fn small_fraction(v: f64) -> Option<(f64, f64)> {
    if v.fract() == 0.0 {
        return None;
    }
    // The smallest denominator that works; 3/6 is 1/2, which prints as 0.5.
    let (p, q) = (2..=12).map(f64::from).find_map(|q: f64| {
        let p = (v * q).round();
        let exact = p / q == v && p.fract() == 0.0 && p.abs() < 1e6;
        (exact && (v * q - p).abs() < 1e-9).then_some((p, q))
    })?;
    (!(q as u32).is_power_of_two()).then_some((p, q))
}

/// A constant that prints by its exact formula (`sqrt(2/pi)`) instead of
/// its decimals, because the formula reads back to the very same `f64`.
#[derive(Clone, Copy)]
struct NamedConstant {
    /// `.nn` text of the constant, or of its denominator when `over`.
    text: &'static str,
    /// The same in LaTeX.
    latex: &'static str,
    /// The value is `1/text` (`1/sqrt(2*pi)`), printed as a denominator.
    over: bool,
    /// The value, computed with the very operations the evaluator performs
    /// on the parsed text (`a/b` is `a*(1/b)`), so a match is bit-exact.
    value: f64,
}

/// The named constants, simplest first so that the first match wins.
fn named_constants() -> [NamedConstant; 10] {
    use std::f64::consts::{E, PI};
    let k = |text, latex, over, value| NamedConstant {
        text,
        latex,
        over,
        value,
    };
    [
        k("pi", "\\pi", false, PI),
        k("e", "e", false, E),
        k("pi", "\\pi", true, 1.0 / PI),
        k("sqrt(2)", "\\sqrt{2}", false, 2f64.sqrt()),
        k("sqrt(2)", "\\sqrt{2}", true, 1.0 / 2f64.sqrt()),
        k("log(2)", "\\log 2", false, 2f64.ln()),
        k("sqrt(pi)", "\\sqrt{\\pi}", false, PI.sqrt()),
        k("sqrt(pi)", "\\sqrt{\\pi}", true, 1.0 / PI.sqrt()),
        k(
            "sqrt(2/pi)",
            "\\sqrt{2/\\pi}",
            false,
            (2.0 * (1.0 / PI)).sqrt(),
        ),
        k("sqrt(2*pi)", "\\sqrt{2\\pi}", true, 1.0 / (2.0 * PI).sqrt()),
    ]
}

/// The named constant that `v` is exactly.
fn named_constant(v: f64) -> Option<NamedConstant> {
    named_constants().into_iter().find(|k| k.value == v)
}

/// `v = r*k` for a named constant `k` and a short decimal or integer `r`
/// (`0.134145/sqrt(2*pi)`), checked both ways so that it is no accident of
/// rounding. `r` may be 1.
fn scaled_constant(v: f64) -> Option<(f64, NamedConstant)> {
    if !v.is_finite() || v <= 0.0 {
        return None;
    }
    if let Some(k) = named_constant(v) {
        return Some((1.0, k));
    }
    named_constants().into_iter().find_map(|k| {
        let r = v / k.value;
        let short = number_text(r).len() <= 8 || small_fraction(r).is_some();
        (short && r * k.value == v && r > 0.0).then_some((r, k))
    })
}

/// The constant value of a node: a scalar constant, or a broadcast of one.
pub fn const_value(g: &Graph, id: NodeId) -> Option<f64> {
    let mut id = id;
    loop {
        match g.node(id).op {
            Op::Const(c) => return Some(c.value()),
            Op::Broadcast(_) => id = g.node(id).args[0],
            _ => return None,
        }
    }
}

/// A finite non-negative number as the shortest text that reads back to
/// the same `f64`.
pub fn number_text(v: f64) -> String {
    if v.fract() == 0.0 && v < 1e15 {
        return format!("{}", v as i64);
    }
    let plain = format!("{v}");
    let sci = format!("{v:e}");
    if sci.len() < plain.len() { sci } else { plain }
}

fn latex_func(name: &str) -> String {
    match name {
        "exp" | "log" | "sin" | "cos" | "tanh" | "max" | "min" => format!("\\{name}"),
        "sigmoid" => "\\sigma".to_string(),
        _ => format!("\\operatorname{{{name}}}"),
    }
}

/// `a1` → `a_{1}`, `δ2` → `\delta_{2}`, `dense1.weight` → `\mathrm{dense1.weight}`.
pub fn latex_name(name: &str) -> String {
    let digits = name.len() - name.trim_end_matches(|c: char| c.is_ascii_digit()).len();
    let (head, sub) = name.split_at(name.len() - digits);
    let head = match head {
        "δ" => "\\delta".to_string(),
        "ℓ" => "\\ell".to_string(),
        h if h.chars().count() == 1 => h.to_string(),
        h => format!("\\mathrm{{{}}}", h.replace('_', "\\_")),
    };
    if sub.is_empty() {
        head
    } else {
        format!("{head}_{{{sub}}}")
    }
}
