//! The matrix equations of `slope grad`: forward pass, each activation's
//! derivative, and backprop, in the textbook per-sample convention
//! (column vectors: `z1 = W1·x + b1`).
//!
//! Every right-hand side is printed from the simplified gradient graph, not
//! from a template: `δ2 = y - t` is what the ordinary rules give for the
//! stable bce lowering, and a custom activation prints its real derivative.
//! Lowering names the forward nodes (`z1`, `a1`, `y`); here we name the
//! parameters (`W1`, `b1`) and the adjoints of the pre-activations (`δ1`).
//!
//! The LaTeX layout (a fragment that compiles) is in `equations/latex.rs`;
//! the worked numbers of `--sample` (values computed by the caller's
//! compiled code, laid out here) in `equations/worked.rs`.

use crate::check::layer::ParamRole;
use crate::check::model::{Activation, Builtin, LayerKind, Loss, Model};
use crate::graph::print::{Printer, Style};
use crate::graph::{Dim, Graph, NodeId, Op};
use crate::pipeline::{self, Derived, Focus, Network};
use crate::simplify::Simplified;

mod latex;
mod worked;

pub use worked::Sample;

/// One equation `lhs = rhs`, with an optional note printed before it.
struct Line {
    lhs_text: String,
    lhs_latex: String,
    rhs: NodeId,
    note: Option<String>,
    /// Print `mean(rhs)`: the loss is the mean of a per-element formula.
    mean: bool,
    /// The node whose value the worked numbers show: `rhs`, or the loss
    /// itself for the `mean(...)` line.
    value: NodeId,
}

impl Line {
    fn text(&self, p: &Printer, style: Style) -> String {
        let rhs = p.root(self.rhs);
        match (self.mean, style) {
            (false, _) => rhs,
            (true, Style::Text) => format!("mean({rhs})"),
            (true, Style::Latex) => format!("\\operatorname{{mean}}\\left({rhs}\\right)"),
        }
    }

    fn lhs(&self, style: Style) -> &str {
        match style {
            Style::Text => &self.lhs_text,
            Style::Latex => &self.lhs_latex,
        }
    }
}

/// The equations of one network, ready to print in either style.
pub struct Equations {
    /// The differentiated network; its graph holds every right-hand side.
    net: Network,
    forward: Vec<Line>,
    derivatives: Vec<Line>,
    backward: Vec<Line>,
    notes: Vec<String>,
    legend: Vec<String>,
}

/// Differentiates and simplifies the network, then collects its equations.
pub fn derive(mut net: Network, model: &Model) -> Equations {
    let mut legend = name_params(&mut net);
    legend.extend(window_legend(model));
    let Derived {
        network: mut net,
        deltas,
        activation_derivatives,
        simplified: s,
        ..
    } = pipeline::derive(net, Focus::Equations);
    let deltas: Vec<Option<NodeId>> = deltas.iter().map(|d| d.map(|d| s.get(d))).collect();
    name_deltas(&mut net.graph, &deltas);
    let mut forward = forward_lines(&net, &s);
    forward.push(loss_line(&net.graph, net.loss, model));
    let act_derivs = activation_derivatives.iter().map(|d| d.map(|d| s.get(d)));
    let derivatives = derivative_lines(act_derivs, model);
    let backward = backward_lines(&net, &deltas, model);
    let mut notes = Vec::new();
    if let Some(Some(d)) = deltas.last() {
        let per_row = matches!(model.loss, Loss::CrossEntropy);
        let k = model.output_width();
        notes.push(batch_note(&net.graph, *d, k, per_row, net.layers.len()));
    }
    Equations {
        net,
        forward,
        derivatives,
        backward,
        notes,
        legend,
    }
}

/// Names each parameter `W1`, `b1`, ... in the graph and returns the
/// legend lines that say which tensor each name stands for.
fn name_params(net: &mut Network) -> Vec<String> {
    let mut legend = Vec::new();
    for p in &net.params {
        let short = match p.role {
            ParamRole::Weight => "W",
            ParamRole::Bias => "b",
        };
        let name = format!("{short}{}", p.layer + 1);
        let dims: Vec<String> = p.shape.iter().map(|d| d.to_string()).collect();
        legend.push(format!("{name} = {} [{}]", p.name, dims.join(", ")));
        net.graph.names.insert(p.node, name);
    }
    legend
}

/// Names each layer's (simplified) `δ` unless it is a leaf, a constant or
/// already named (`δ2 = y - t` may be a node with its own name).
fn name_deltas(g: &mut Graph, deltas: &[Option<NodeId>]) {
    for (i, d) in deltas.iter().enumerate() {
        if let Some(d) = *d {
            let plain = matches!(g.node(d).op, Op::Leaf(_) | Op::Const(_));
            if !plain && !g.names.contains_key(&d) {
                g.names.insert(d, format!("δ{}", i + 1));
            }
        }
    }
}

/// `z_k = ...` and `a_k = ...` of every layer (the last `a` is `y`).
fn forward_lines(net: &Network, s: &Simplified) -> Vec<Line> {
    let n_layers = net.layers.len();
    let mut forward = Vec::new();
    for (i, l) in net.layers.iter().enumerate() {
        let k = i + 1;
        let lhs = if l.a == l.z && k == n_layers {
            format!("y = z{k}")
        } else {
            format!("z{k}")
        };
        forward.push(line(&lhs, s.get(l.z), None));
        if l.a != l.z {
            let lhs = if k == n_layers {
                "y".to_string()
            } else {
                format!("a{k}")
            };
            forward.push(line(&lhs, s.get(l.a), None));
        }
    }
    forward
}

/// The loss line: the loss is `sum(per-element loss) * (1/count)`, printed
/// as the mean of the per-element loss.
fn loss_line(g: &Graph, loss: NodeId, model: &Model) -> Line {
    let note = match &model.loss {
        Loss::Bce if last_is(model, &Activation::Builtin(Builtin::Sigmoid)) => Some(
            "bce, in its stable form from the logits: -(t*log(y) + (1 - t)*log(1 - y))".to_string(),
        ),
        Loss::CrossEntropy if last_is(model, &Activation::Softmax) => {
            Some("cross_entropy, in its stable form: -log(y[t]) with y = softmax(z)".to_string())
        }
        _ => None,
    };
    let args = g.node(loss).args.iter().copied();
    match args
        .into_iter()
        .find(|&a| matches!(g.node(a).op, Op::Sum(_)))
    {
        Some(sum) => Line {
            lhs_text: "ℓ".to_string(),
            lhs_latex: "\\ell".to_string(),
            rhs: g.node(sum).args[0],
            note,
            mean: true,
            value: loss,
        },
        None => line("ℓ", loss, note),
    }
}

/// `act'(z_k) = ...` for every element-wise activation other than identity.
fn derivative_lines(act_derivs: impl Iterator<Item = Option<NodeId>>, model: &Model) -> Vec<Line> {
    let mut derivatives = Vec::new();
    for (i, (d, layer)) in act_derivs.zip(&model.layers).enumerate() {
        if let Some(d) = d {
            let name = match layer.activation() {
                Activation::Builtin(b) => b.name().to_string(),
                Activation::Softmax => "softmax".to_string(),
                Activation::Custom(n) => n.clone(),
            };
            let lhs = format!("{name}'(z{})", i + 1);
            let latex = format!("\\mathrm{{{}}}'(z_{{{}}})", name.replace('_', "\\_"), i + 1);
            derivatives.push(Line {
                lhs_text: lhs,
                lhs_latex: latex,
                rhs: d,
                note: None,
                mean: false,
                value: d,
            });
        }
    }
    derivatives
}

/// Backprop, last layer first: `δ_k`, then the gradients of its parameters.
fn backward_lines(net: &Network, deltas: &[Option<NodeId>], model: &Model) -> Vec<Line> {
    let n_layers = net.layers.len();
    let fusion = match &model.loss {
        Loss::Bce if last_is(model, &Activation::Builtin(Builtin::Sigmoid)) => {
            Some("sigmoid + bce")
        }
        Loss::CrossEntropy if last_is(model, &Activation::Softmax) => {
            Some("softmax + cross_entropy")
        }
        _ => None,
    };
    // Each layer's parameters, gathered once: a scan of every parameter per
    // layer was quadratic in depth.
    let mut of_layer: Vec<Vec<usize>> = vec![Vec::new(); n_layers];
    for (j, p) in net.params.iter().enumerate() {
        if let Some(list) = of_layer.get_mut(p.layer) {
            list.push(j);
        }
    }
    let mut backward = Vec::new();
    for i in (0..n_layers).rev() {
        let k = i + 1;
        if let Some(d) = deltas[i] {
            let note = (k == n_layers)
                .then(|| fusion.map(|f| format!("{f}: the ordinary rules on the stable loss give")))
                .flatten();
            backward.push(Line {
                lhs_text: format!("δ{k} = ∂ℓ/∂z{k}"),
                lhs_latex: format!(
                    "\\delta_{{{k}}} = \\frac{{\\partial \\ell}}{{\\partial z_{{{k}}}}}"
                ),
                rhs: d,
                note,
                mean: false,
                value: d,
            });
        }
        for &j in &of_layer[i] {
            let (p, Some(&gr)) = (&net.params[j], net.grads.get(j)) else {
                continue;
            };
            let short = &net.graph.names[&p.node];
            backward.push(Line {
                lhs_text: format!("∂ℓ/∂{short}"),
                lhs_latex: format!(
                    "\\frac{{\\partial \\ell}}{{\\partial {}}}",
                    crate::graph::print::latex_name(short)
                ),
                rhs: gr,
                note: None,
                mean: false,
                value: gr,
            });
        }
    }
    backward
}

/// What the symbols of image layers mean, when the model has any.
fn window_legend(model: &Model) -> Vec<String> {
    let has = |f: fn(&LayerKind) -> bool| model.layers.iter().any(|l| f(&l.kind));
    let mut out = Vec::new();
    if has(|k| matches!(k, LayerKind::Conv { .. })) {
        out.push("x ⋆ W = cross-correlation of image x with kernel W (PyTorch's Conv2d)".into());
        out.push("δ ⋆ᵀ W = its transpose (the gradient with respect to the image)".into());
        out.push(
            "x ⋆ δ = the correlation of the image with δ (the gradient with respect to the kernel)"
                .into(),
        );
        out.push("sum(δ) of a conv bias = the sum over batch, height and width".into());
    }
    if has(|k| matches!(k, LayerKind::Pool { .. } | LayerKind::Flatten)) {
        out.push("maxpool_back(a, δ) = δ routed to each window's arg-max in a; avgpool_back(δ) spreads δ evenly".into());
        out.push("flatten/unflatten = [B, C, H, W] ↔ [B, C·H·W] in (C, H, W) order".into());
    }
    out
}

fn last_is(model: &Model, a: &Activation) -> bool {
    model.layers.last().map(|l| l.activation()) == Some(a)
}

fn line(lhs: &str, rhs: NodeId, note: Option<String>) -> Line {
    Line {
        lhs_text: lhs.to_string(),
        // `y = z3` names one node twice: each name is its own LaTeX symbol.
        lhs_latex: lhs
            .split(" = ")
            .map(|n| crate::graph::print::latex_name(n).replace('ℓ', "\\ell"))
            .collect::<Vec<_>>()
            .join(" = "),
        rhs,
        note,
        mean: false,
        value: rhs,
    }
}

/// How the batch mean scales the per-sample gradients, read from the scale
/// factor that the mean left in the last layer's `δ`. With `K > 1` outputs
/// and a per-element loss (mse, bce, a `loss` item) the loss is a mean over
/// B·K elements, `ℓ = (1/B)·Σ_rows (1/K)·Σ_k loss(y_k, t_k)`: the printed
/// per-sample equations are the gradients of one row's mean over its K
/// outputs (the `1/K` is in `δ_L`), and the batch takes the mean over rows.
fn batch_note(g: &Graph, delta: NodeId, k: usize, per_row: bool, last: usize) -> String {
    let p = Printer::new(g, Style::Text);
    let scale = g
        .topo_order(&[delta])
        .into_iter()
        .find(|&f| !g.node(f).shape.0.is_empty() && p.is_batch_scale(f))
        .map(|f| p.expr(f))
        .unwrap_or_default();
    match scale.as_str() {
        "" => "the equations are per sample; a batch's gradient is the sum of its rows' gradients"
            .to_string(),
        "1/B" if per_row || k == 1 => {
            "for a batch of B rows, each gradient is the mean of the per-sample gradients"
                .to_string()
        }
        "1/B" => format!(
            "the loss is the mean over all B·K = B·{k} elements: the equations are per sample, for \
             that row's mean over its K = {k} outputs (the 1/{k} is in δ{last}); for a batch of B rows, \
             each gradient is the mean of the per-sample gradients"
        ),
        s => format!(
            "for a batch of B rows, each gradient is the sum of the per-sample gradients times {s} \
             (the loss is the mean over all B·K elements)"
        ),
    }
}

impl Equations {
    /// The three sections in print order, with their titles.
    fn sections(&self) -> [(&'static str, &[Line]); 3] {
        [
            ("forward", &self.forward),
            ("activation derivatives", &self.derivatives),
            ("backprop", &self.backward),
        ]
    }

    /// The differentiated network whose graph holds every equation's nodes
    /// (parameters named `W1`, `b1`, ...), for compiling the worked numbers.
    pub fn network(&self) -> &Network {
        &self.net
    }

    /// The node whose value each equation shows, in print order (forward,
    /// activation derivatives, backprop): what [`Sample::values`] holds.
    pub fn value_nodes(&self) -> Vec<NodeId> {
        let sections = self.sections();
        let lines = sections.iter().flat_map(|(_, lines)| lines.iter());
        lines.map(|l| l.value).collect()
    }

    /// The equations as text, or as a LaTeX fragment that compiles as it
    /// is (`%` comments, one `align*` per section).
    pub fn render(&self, style: Style) -> String {
        match style {
            Style::Text => self.text(None),
            Style::Latex => latex::render(self),
        }
    }

    /// The text equations, each followed by its value on `sample` when given.
    fn text(&self, sample: Option<&Sample>) -> String {
        let p = Printer::new(&self.net.graph, Style::Text).per_sample();
        let mut out = String::new();
        let mut values = sample.map(|s| s.values.iter());
        if let Some(s) = sample {
            out += &worked::intro(self, s);
        }
        for (title, lines) in self.sections() {
            if lines.is_empty() {
                continue;
            }
            out += &format!("# {title}\n");
            for l in lines {
                if let Some(note) = &l.note {
                    out += &format!("# {note}\n");
                }
                out += &format!("{} = {}\n", l.lhs_text, l.text(&p, Style::Text));
                if let Some(v) = values.as_mut().and_then(|v| v.next()) {
                    let pad = l.lhs_text.chars().count();
                    out += &format!("{:pad$} = {}\n", "", worked::show(&self.dims(l.value), v));
                }
            }
            out += "\n";
        }
        for n in &self.notes {
            out += &format!("# {n}\n");
        }
        out += "# where\n";
        for (i, l) in self.legend.iter().enumerate() {
            match sample.and_then(|s| s.params.get(i)) {
                Some(w) => {
                    let node = self.net.params[i].node;
                    out += &format!("#   {l} = {}\n", worked::show(&self.dims(node), w));
                }
                None => out += &format!("#   {l}\n"),
            }
        }
        if sample.is_some() {
            out += worked::LEGEND;
        }
        out
    }

    /// The equations as one JSON object.
    pub fn json(&self, style: Style) -> String {
        self.json_value(style, None).to_string()
    }

    fn json_value(&self, style: Style, sample: Option<&Sample>) -> serde_json::Value {
        let p = Printer::new(&self.net.graph, style).per_sample();
        let mut values = sample.map(|s| s.values.iter());
        let mut eqs = |lines: &[Line]| -> serde_json::Value {
            lines
                .iter()
                .map(|l| {
                    let mut m = serde_json::Map::new();
                    m.insert("lhs".into(), l.lhs(style).into());
                    m.insert("rhs".into(), l.text(&p, style).into());
                    if let Some(n) = &l.note {
                        m.insert("note".into(), n.clone().into());
                    }
                    if let Some(v) = values.as_mut().and_then(|v| v.next()) {
                        m.insert("shape".into(), self.dims(l.value).into());
                        m.insert("value".into(), v.clone().into());
                    }
                    serde_json::Value::Object(m)
                })
                .collect()
        };
        let mut m = serde_json::Map::new();
        m.insert("forward".into(), eqs(&self.forward));
        m.insert("activation_derivatives".into(), eqs(&self.derivatives));
        m.insert("backprop".into(), eqs(&self.backward));
        m.insert("notes".into(), self.notes.clone().into());
        m.insert("legend".into(), self.legend.clone().into());
        if let Some(s) = sample {
            m.insert("sample".into(), worked::json(self, s));
        }
        serde_json::Value::Object(m)
    }

    /// The shape of one row's value of `node`: its graph shape with the
    /// batch axis left out (the worked numbers are one row's).
    fn dims(&self, node: NodeId) -> Vec<usize> {
        let shape = &self.net.graph.node(node).shape.0;
        let fixed = shape.iter().filter_map(|d| match d {
            Dim::Fixed(n) => Some(*n),
            Dim::Batch => None,
        });
        fixed.collect()
    }
}
