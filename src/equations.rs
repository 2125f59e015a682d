//! The matrix equations of `slope grad`: forward pass, each activation's
//! derivative, and backprop, in the textbook per-sample convention
//! (column vectors: `z1 = W1·x + b1`).
//!
//! Every right-hand side is printed from the simplified gradient graph, not
//! from a template: `δ2 = y - t` is what the ordinary rules give for the
//! stable bce lowering, and a custom activation prints its real derivative.
//! Lowering names the forward nodes (`z1`, `a1`, `y`); here we name the
//! parameters (`W1`, `b1`) and the adjoints of the pre-activations (`δ1`).

use crate::check::layer::ParamRole;
use crate::check::model::{Activation, Builtin, LayerKind, Loss, Model};
use crate::graph::print::{Printer, Style};
use crate::graph::{Graph, NodeId, Op};
use crate::pipeline::{self, Derived, Focus, Network};

/// One equation `lhs = rhs`, with an optional note printed before it.
struct Line {
    lhs_text: String,
    lhs_latex: String,
    rhs: NodeId,
    note: Option<String>,
    /// Print `mean(rhs)`: the loss is the mean of a per-element formula.
    mean: bool,
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
}

/// The equations of one network, ready to print in either style.
pub struct Equations {
    graph: Graph,
    forward: Vec<Line>,
    derivatives: Vec<Line>,
    backward: Vec<Line>,
    notes: Vec<String>,
    legend: Vec<String>,
}

/// Differentiates and simplifies the network, then collects its equations.
pub fn derive(mut net: Network, model: &Model) -> Equations {
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
    legend.extend(window_legend(model));
    let Derived {
        network:
            Network {
                mut graph,
                params,
                layers,
                loss,
                grads,
                ..
            },
        deltas,
        activation_derivatives: act_derivs,
        simplified: s,
        ..
    } = pipeline::derive(net, Focus::Equations);
    let g = &mut graph;
    let n_layers = layers.len();

    for (i, d) in deltas.iter().enumerate() {
        if let Some(d) = d {
            let d = s.get(*d);
            let plain = matches!(g.node(d).op, Op::Leaf(_) | Op::Const(_));
            if !plain && !g.names.contains_key(&d) {
                g.names.insert(d, format!("δ{}", i + 1));
            }
        }
    }

    let mut forward = Vec::new();
    for (i, (l, layer)) in layers.iter().zip(&model.layers).enumerate() {
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
            let _ = layer;
            forward.push(line(&lhs, s.get(l.a), None));
        }
    }
    let loss_note = match &model.loss {
        Loss::Bce if last_is(model, &Activation::Builtin(Builtin::Sigmoid)) => Some(
            "bce, in its stable form from the logits: -(t*log(y) + (1 - t)*log(1 - y))".to_string(),
        ),
        Loss::CrossEntropy if last_is(model, &Activation::Softmax) => {
            Some("cross_entropy, in its stable form: -log(y[t]) with y = softmax(z)".to_string())
        }
        _ => None,
    };
    // The loss is `sum(per-element loss) * (1/count)`: print the mean of the per-element loss.
    let l = loss;
    let per = g
        .node(l)
        .args
        .iter()
        .copied()
        .find(|&a| matches!(g.node(a).op, Op::Sum(_)));
    match per {
        Some(sum) => {
            let per = g.node(sum).args[0];
            forward.push(Line {
                lhs_text: "ℓ".to_string(),
                lhs_latex: "\\ell".to_string(),
                rhs: per,
                note: loss_note,
                mean: true,
            });
        }
        None => forward.push(line("ℓ", l, loss_note)),
    }

    let mut derivatives = Vec::new();
    for (i, (d, layer)) in act_derivs.iter().zip(&model.layers).enumerate() {
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
                rhs: s.get(*d),
                note: None,
                mean: false,
            });
        }
    }

    let mut backward = Vec::new();
    let fusion = match &model.loss {
        Loss::Bce if last_is(model, &Activation::Builtin(Builtin::Sigmoid)) => {
            Some("sigmoid + bce")
        }
        Loss::CrossEntropy if last_is(model, &Activation::Softmax) => {
            Some("softmax + cross_entropy")
        }
        _ => None,
    };
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
                rhs: s.get(d),
                note,
                mean: false,
            });
        }
        for (p, &gr) in params.iter().zip(&grads) {
            if p.layer == i {
                let short = g.names[&p.node].clone();
                backward.push(Line {
                    lhs_text: format!("∂ℓ/∂{short}"),
                    lhs_latex: format!(
                        "\\frac{{\\partial \\ell}}{{\\partial {}}}",
                        crate::graph::print::latex_name(&short)
                    ),
                    rhs: gr,
                    note: None,
                    mean: false,
                });
            }
        }
    }

    let mut notes = Vec::new();
    if let Some(Some(d)) = deltas.last() {
        let per_row = matches!(model.loss, Loss::CrossEntropy);
        notes.push(batch_note(
            g,
            s.get(*d),
            model.output_width(),
            per_row,
            n_layers,
        ));
    }
    Equations {
        graph,
        forward,
        derivatives,
        backward,
        notes,
        legend,
    }
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
    /// The equations as text (or LaTeX lines), sections separated by blank lines.
    pub fn render(&self, style: Style) -> String {
        let p = Printer::new(&self.graph, style).per_sample();
        let mut out = String::new();
        let sections = [
            ("forward", &self.forward),
            ("activation derivatives", &self.derivatives),
            ("backprop", &self.backward),
        ];
        for (title, lines) in sections {
            if lines.is_empty() {
                continue;
            }
            out += &format!("# {title}\n");
            for l in lines {
                if let Some(note) = &l.note {
                    out += &format!("# {note}\n");
                }
                let lhs = match style {
                    Style::Text => &l.lhs_text,
                    Style::Latex => &l.lhs_latex,
                };
                out += &format!("{lhs} = {}\n", l.text(&p, style));
            }
            out += "\n";
        }
        for n in &self.notes {
            out += &format!("# {n}\n");
        }
        out += "# where\n";
        for l in &self.legend {
            out += &format!("#   {l}\n");
        }
        out
    }

    /// The equations as one JSON object.
    pub fn json(&self, style: Style) -> String {
        let p = Printer::new(&self.graph, style).per_sample();
        let eqs = |lines: &Vec<Line>| -> serde_json::Value {
            lines
                .iter()
                .map(|l| {
                    let lhs = match style {
                        Style::Text => &l.lhs_text,
                        Style::Latex => &l.lhs_latex,
                    };
                    let mut m = serde_json::Map::new();
                    m.insert("lhs".into(), lhs.clone().into());
                    m.insert("rhs".into(), l.text(&p, style).into());
                    if let Some(n) = &l.note {
                        m.insert("note".into(), n.clone().into());
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
        serde_json::Value::Object(m).to_string()
    }
}
