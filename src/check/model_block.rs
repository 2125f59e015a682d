//! `model NAME { ... }` blocks: `input`, `dense` and `loss` statements,
//! layer names, and the rules tying the last layer to the loss.

use super::image::{check_conv, check_flatten, check_pool, infer_shapes};
use super::model::{
    Activation, Builtin, FeatureShape, Init, Layer, LayerKind, Loss, Model, Padding, PoolMode,
};
use super::values::{Seen, boolean, choice, describe, invalid, options, positional, whole};
use super::{BUILTIN_FUNCTIONS, BUILTIN_LOSSES, TRAIN_STATEMENTS};
use crate::diag::{Diagnostic, Span, suggest, thousands};
use crate::syntax::ast::{Block, Stmt, Value, ValueKind};
use std::collections::{HashMap, HashSet};

/// The widest layer (and largest input) accepted.
pub const MAX_WIDTH: u64 = 1_000_000;

/// The most trainable scalars a model may have: 2^26, 256 MiB of float32
/// weights. Training holds several copies (weights, gradients, optimizer
/// state, the f64 gradcheck), so 2^30 (4 GiB each) ran out of memory and
/// aborted instead of reporting; a CPU trainer of small networks needs far
/// less.
pub const MAX_PARAMETERS: usize = 1 << 26;

const DENSE_USAGE: &str =
    "dense N [ACTIVATION] [init=glorot|he|standard|zeros] [bias=true|false] [name=NAME]";

/// The activation and loss items a model may name.
pub(super) struct ItemNames<'a> {
    /// Names of `activation` items.
    pub activations: Vec<&'a str>,
    /// Names of `loss` items.
    pub losses: Vec<&'a str>,
    /// The same names as sets: each layer looks its activation up in
    /// constant time (the lists keep the order for suggestions).
    pub activation_set: HashSet<&'a str>,
    /// The names of `loss` items as a set.
    pub loss_set: HashSet<&'a str>,
}

/// What a layer statement sets, as far as it could be checked.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum RawKind {
    /// `dense N`.
    Dense { width: usize },
    /// `conv N KxK ...`.
    Conv {
        filters: usize,
        kernel: usize,
        stride: usize,
        padding: Padding,
    },
    /// `maxpool KxK` or `avgpool KxK`.
    Pool {
        mode: PoolMode,
        kernel: usize,
        stride: usize,
    },
    /// `flatten`.
    Flatten,
}

/// A layer statement as far as it could be checked.
pub(super) struct RawLayer {
    /// Its kind and settings (meaningful only when `ok`).
    pub kind: RawKind,
    /// True when the statement had no error.
    pub ok: bool,
    pub activation: Option<Activation>,
    pub activation_span: Span,
    pub init: Option<Init>,
    pub bias: bool,
    pub name: Option<(String, Span)>,
    pub span: Span,
}

impl RawLayer {
    /// A layer of `kind` with no activation (identity), bias on, default init.
    pub fn new(stmt: &Stmt, kind: RawKind) -> RawLayer {
        RawLayer {
            kind,
            ok: false,
            activation: Some(Activation::Builtin(Builtin::Identity)),
            activation_span: stmt.span,
            init: None,
            bias: true,
            name: None,
            span: stmt.span,
        }
    }

    /// The statement keyword (for default names: `dense1`, `conv1`, ...).
    fn keyword(&self) -> &'static str {
        match self.kind {
            RawKind::Dense { .. } => "dense",
            RawKind::Conv { .. } => "conv",
            RawKind::Pool { mode, .. } => mode.keyword(),
            RawKind::Flatten => "flatten",
        }
    }
}

/// Checks one model block; returns the model when it has no errors.
pub(super) fn check_model(
    block: &Block,
    items: &ItemNames,
    diags: &mut Vec<Diagnostic>,
) -> Option<Model> {
    let n_before = diags.len();
    let (name, name_span) = match &block.name {
        Some(ident) => (ident.name.clone(), ident.span),
        None => (String::new(), block.keyword.span),
    };
    let mut seen = Seen::default();
    let block_desc = format!("model '{name}'");
    let mut input: Option<(FeatureShape, Span)> = None;
    let mut input_seen = false;
    let mut layers: Vec<RawLayer> = Vec::new();
    let mut loss: Option<(Loss, Span)> = None;
    let mut loss_seen = false;

    for (i, stmt) in block.stmts.iter().enumerate() {
        match stmt.keyword.name.as_str() {
            "input" => {
                if !seen.first(stmt, &block_desc, diags) {
                    continue;
                }
                input_seen = true;
                if i != 0 {
                    diags.push(
                        Diagnostic::error("'input' must be the first statement", stmt.span)
                            .with_label("comes after other statements")
                            .with_secondary(block.stmts[0].span, "the model starts here")
                            .with_help("move 'input N' to the top of the model"),
                    );
                }
                input = check_input(stmt, diags).map(|shape| (shape, stmt.span));
            }
            "dense" => layers.push(check_dense(stmt, items, diags)),
            "conv" => layers.push(check_conv(stmt, items, diags)),
            "maxpool" => layers.push(check_pool(stmt, PoolMode::Max, diags)),
            "avgpool" => layers.push(check_pool(stmt, PoolMode::Avg, diags)),
            "flatten" => layers.push(check_flatten(stmt, diags)),
            "loss" => {
                if !seen.first(stmt, &block_desc, diags) {
                    continue;
                }
                loss_seen = true;
                options(stmt, &[], &[], diags);
                if let Some(values) = positional(stmt, 1, 1, "loss NAME", diags) {
                    loss = check_loss(&values[0], items, diags).map(|l| (l, values[0].span));
                }
            }
            other => diags.push(unknown_statement(stmt, other)),
        }
    }

    if !input_seen {
        diags.push(
            Diagnostic::error(
                format!("model '{name}' has no 'input' statement"),
                name_span,
            )
            .with_label("input width unknown")
            .with_help("add 'input N' as the first statement, N being the number of features"),
        );
    }
    if layers.is_empty() {
        diags.push(
            Diagnostic::error(format!("model '{name}' has no layers"), name_span)
                .with_label("no 'dense' statement")
                .with_help("add a layer, such as 'dense 1 sigmoid'"),
        );
    }
    if !loss_seen {
        diags.push(
            Diagnostic::error(format!("model '{name}' has no loss"), name_span)
                .with_label("no 'loss' statement")
                .with_help("add 'loss mse' (or bce, cross_entropy, or a loss item of the file)"),
        );
    }
    check_softmax_placement(&layers, diags);
    if let Some((loss, span)) = &loss {
        check_loss_fits(loss, *span, &layers, diags);
    }
    let names = layer_names(&layers, diags);
    if let Some((input, span)) = &input
        && layers.iter().all(|l| l.ok)
    {
        infer_shapes(input, *span, &layers, diags);
    }

    if diags.len() > n_before {
        return None;
    }
    let (input, input_span) = input.expect("no diagnostics means 'input' was checked");
    let (loss, loss_span) = loss.expect("no diagnostics means 'loss' was checked");
    let mut shape = input.clone();
    let mut out = Vec::new();
    for (raw, name) in layers.into_iter().zip(names) {
        let activation = raw
            .activation
            .expect("no diagnostics means activations resolved");
        let init = raw.init.unwrap_or(match &activation {
            Activation::Builtin(b) => b.default_init(),
            Activation::Softmax | Activation::Custom(_) => Init::Glorot,
        });
        let layer = Layer {
            name,
            kind: layer_kind(raw.kind, activation, init, raw.bias),
            input: shape,
            span: raw.span,
            activation_span: raw.activation_span,
        };
        shape = layer.output_shape();
        out.push(layer);
    }
    let model = Model {
        name,
        input,
        layers: out,
        loss,
        span: block.span,
        input_span,
        loss_span,
    };
    if model.parameter_count() > MAX_PARAMETERS {
        diags.push(
            Diagnostic::error(
                format!(
                    "model '{}' has {} parameters, more than slope supports",
                    model.name,
                    thousands(model.parameter_count() as u64)
                ),
                name_span,
            )
            .with_label("too large")
            .with_note(format!(
                "the limit is {} parameters",
                thousands(MAX_PARAMETERS as u64)
            )),
        );
        return None;
    }
    Some(model)
}

/// The checked kind of a layer from its statement's settings.
fn layer_kind(raw: RawKind, activation: Activation, init: Init, bias: bool) -> LayerKind {
    match raw {
        RawKind::Dense { width } => LayerKind::Dense {
            width,
            activation,
            init,
            bias,
        },
        RawKind::Conv {
            filters,
            kernel,
            stride,
            padding,
        } => LayerKind::Conv {
            filters,
            kernel,
            stride,
            padding,
            activation,
            init,
            bias,
        },
        RawKind::Pool {
            mode,
            kernel,
            stride,
        } => LayerKind::Pool {
            mode,
            kernel,
            stride,
        },
        RawKind::Flatten => LayerKind::Flatten,
    }
}

/// `input N` (features) or `input CxHxW` (an image, spec §5).
fn check_input(stmt: &Stmt, diags: &mut Vec<Diagnostic>) -> Option<FeatureShape> {
    options(stmt, &[], &[], diags);
    if let Some(d) = spaced_size(stmt) {
        diags.push(d);
        return None;
    }
    let values = positional(stmt, 1, 1, "input N", diags)?;
    let v = &values[0];
    let ValueKind::Size { dims, .. } = &v.kind else {
        let n = whole(v, "input width", 1, MAX_WIDTH, diags)?;
        return Some(FeatureShape::flat(n as usize));
    };
    let bad = |expected: String| invalid(v, "input size", &expected);
    let d = if dims.len() != 3 {
        bad(format!("expected C x H x W, found {} numbers", dims.len()))
            .with_note("an image input is channels x height x width, such as 1x8x8")
    } else if dims.contains(&0) {
        bad("each dimension must be at least 1".to_string())
    } else {
        match dims.iter().try_fold(1u64, |p, &d| p.checked_mul(d)) {
            Some(n) if n <= MAX_WIDTH => {
                let [c, h, w] = [dims[0], dims[1], dims[2]].map(|d| d as usize);
                return Some(FeatureShape::image(c, h, w));
            }
            _ => bad(format!(
                "C·H·W must be at most {} features",
                thousands(MAX_WIDTH)
            )),
        }
    };
    let help = match &v.kind {
        ValueKind::Size { dims, text } if dims.len() == 2 => {
            format!("for one channel of {text}, write: input 1x{text}")
        }
        _ => "write it as: input N, or input CxHxW such as input 1x8x8".to_string(),
    };
    diags.push(d.with_help(help));
    None
}

/// `input 1 x 8 x 8`: a size written with spaces is numbers and `x` names;
/// say how to write it rather than reporting extra values.
fn spaced_size(stmt: &Stmt) -> Option<Diagnostic> {
    let values = &stmt.values;
    let is_number = |v: &Value| matches!(v.kind, ValueKind::Number { .. });
    let spaced = values.len() >= 3
        && values.len() % 2 == 1
        && values.iter().enumerate().all(|(k, v)| match &v.kind {
            ValueKind::Ident(x) => k % 2 == 1 && x == "x",
            _ => k % 2 == 0 && is_number(v),
        });
    if !spaced {
        return None;
    }
    let span = values[0].span.to(values[values.len() - 1].span);
    let joined: Vec<String> = values.iter().step_by(2).map(describe).collect();
    Some(
        Diagnostic::error("a size is written without spaces", span)
            .with_label("spaces around 'x'")
            .with_help(format!(
                "write it as: {} {}",
                stmt.keyword.name,
                joined.join("x")
            )),
    )
}

fn unknown_statement(stmt: &Stmt, keyword: &str) -> Diagnostic {
    let mut d = Diagnostic::error(
        format!("unknown statement '{keyword}' in a model"),
        stmt.keyword.span,
    )
    .with_label("not a model statement");
    if TRAIN_STATEMENTS.contains(&keyword) {
        d = d.with_help(format!("'{keyword}' belongs in the 'train' block"));
    } else if let Some(s) = suggest(
        keyword,
        [
            "input", "dense", "conv", "maxpool", "avgpool", "flatten", "loss",
        ],
    ) {
        d = d.with_help(format!("did you mean '{s}'?"));
    }
    d.with_note("a model holds 'input N', then 'dense' layers, and a 'loss'")
}

fn check_dense(stmt: &Stmt, items: &ItemNames, diags: &mut Vec<Diagnostic>) -> RawLayer {
    let n_before = diags.len();
    let mut layer = RawLayer::new(stmt, RawKind::Dense { width: 0 });
    layer.activation = None;
    let values = &stmt.values;
    match values.first() {
        None => diags.push(
            Diagnostic::error("'dense' needs a width", stmt.span)
                .with_label("width missing")
                .with_help("write the number of units, such as 'dense 4 tanh'"),
        ),
        Some(v) if is_activation_name(v, items) => {
            // `dense tanh 4`: say it once, rather than also calling 4 a bad activation.
            let width = match values.get(1).map(|w| &w.kind) {
                Some(ValueKind::Number { text, .. }) => text.clone(),
                _ => "N".to_string(),
            };
            diags.push(
                Diagnostic::error("'dense' needs a width before its activation", v.span)
                    .with_label("this is the activation")
                    .with_help(format!(
                        "write the number of units first: dense {width} {}",
                        describe_bare(v)
                    )),
            );
            return layer;
        }
        Some(v) => {
            if let Some(n) = whole(v, "layer width", 1, MAX_WIDTH, diags) {
                layer.kind = RawKind::Dense { width: n as usize };
            }
        }
    }
    if let Some(v) = values.get(1) {
        layer.activation_span = v.span;
        layer.activation = check_activation(v, items, diags);
    } else {
        layer.activation = Some(Activation::Builtin(Builtin::Identity));
    }
    if values.len() > 2 {
        let extra = &values[2..];
        let span = extra[0].span.to(extra[extra.len() - 1].span);
        let mut d = Diagnostic::error("unexpected value for 'dense'", span)
            .with_label("'dense' takes a width and an activation");
        d = match &extra[0].kind {
            ValueKind::Ident(s) if Init::from_name(s).is_some() => {
                d.with_help(format!("write it as an option: init={s}"))
            }
            ValueKind::Bool(b) => d.with_help(format!("write it as an option: bias={b}")),
            _ => d.with_help(format!("write it as: {DENSE_USAGE}")),
        };
        diags.push(d);
    }
    for opt in options(stmt, &["init", "bias", "name"], &[], diags) {
        match opt.key.name.as_str() {
            "init" => {
                let names = Init::ALL.map(Init::name);
                layer.init = choice(&opt.value, "init", &names, diags).and_then(Init::from_name);
            }
            "bias" => layer.bias = boolean(&opt.value, "bias", diags).unwrap_or(true),
            _ => match &opt.value.kind {
                ValueKind::Ident(n) => layer.name = Some((n.clone(), opt.value.span)),
                _ => diags.push(
                    Diagnostic::error(
                        format!("invalid layer name {}", describe(&opt.value)),
                        opt.value.span,
                    )
                    .with_label("expected a name such as 'hidden' or 'out'"),
                ),
            },
        }
    }
    layer.ok = diags.len() == n_before;
    layer
}

/// Whether `v` names an activation (so `dense tanh` forgot the width).
fn is_activation_name(v: &Value, items: &ItemNames) -> bool {
    match &v.kind {
        ValueKind::Ident(n) => {
            Builtin::from_name(n).is_some()
                || n == "softmax"
                || items.activation_set.contains(n.as_str())
        }
        _ => false,
    }
}

fn describe_bare(v: &Value) -> String {
    match &v.kind {
        ValueKind::Ident(n) => n.clone(),
        _ => describe(v),
    }
}

/// The activation a layer statement names, or its diagnostic.
pub(super) fn check_activation(
    v: &Value,
    items: &ItemNames,
    diags: &mut Vec<Diagnostic>,
) -> Option<Activation> {
    let name = match &v.kind {
        ValueKind::Ident(n) => n.as_str(),
        _ => {
            let mut d = Diagnostic::error(format!("invalid activation {}", describe(v)), v.span)
                .with_label("expected an activation name");
            if let ValueKind::Str(s) = &v.kind {
                d = d.with_help(format!("write it without quotes: {s}"));
            }
            diags.push(d);
            return None;
        }
    };
    if let Some(b) = Builtin::from_name(name) {
        return Some(Activation::Builtin(b));
    }
    if name == "softmax" {
        return Some(Activation::Softmax);
    }
    if items.activation_set.contains(name) {
        return Some(Activation::Custom(name.to_string()));
    }
    let d = if items.loss_set.contains(name) || BUILTIN_LOSSES.contains(&name) {
        Diagnostic::error(format!("'{name}' is a loss, not an activation"), v.span)
            .with_label("a loss")
            .with_help(format!("losses go in their own statement: loss {name}"))
    } else if BUILTIN_FUNCTIONS.iter().any(|(f, _)| *f == name) {
        Diagnostic::error(format!("'{name}' is a function, not an activation"), v.span)
            .with_label("a built-in function")
            .with_help(format!(
                "define an activation that uses it: activation {name}_act(x) = {name}(x)"
            ))
    } else {
        let candidates = Builtin::ALL
            .iter()
            .map(|b| b.name())
            .chain(["softmax"])
            .chain(items.activations.iter().copied());
        let mut d = Diagnostic::error(format!("unknown activation '{name}'"), v.span)
            .with_label("not a built-in or defined activation");
        d = match suggest(name, candidates) {
            Some(s) => d.with_help(format!("did you mean '{s}'?")),
            None => d.with_help(format!(
                "define it with 'activation {name}(x) = ...', or use a built-in: {}, softmax",
                Builtin::ALL.map(Builtin::name).join(", ")
            )),
        };
        d
    };
    diags.push(d);
    None
}

fn check_loss(v: &Value, items: &ItemNames, diags: &mut Vec<Diagnostic>) -> Option<Loss> {
    let name = match &v.kind {
        ValueKind::Ident(n) => n.as_str(),
        _ => {
            let mut d = Diagnostic::error(format!("invalid loss {}", describe(v)), v.span)
                .with_label("expected a loss name");
            if let ValueKind::Str(s) = &v.kind {
                d = d.with_help(format!("write it without quotes: {s}"));
            }
            diags.push(d);
            return None;
        }
    };
    match name {
        "mse" => return Some(Loss::Mse),
        "bce" => return Some(Loss::Bce),
        "cross_entropy" => return Some(Loss::CrossEntropy),
        _ => {}
    }
    if items.loss_set.contains(name) {
        return Some(Loss::Custom(name.to_string()));
    }
    let d = if items.activation_set.contains(name) || Builtin::from_name(name).is_some() {
        Diagnostic::error(format!("'{name}' is an activation, not a loss"), v.span)
            .with_label("an activation")
            .with_help(format!("activations go on a layer: dense N {name}"))
    } else {
        let candidates = BUILTIN_LOSSES.iter().chain(items.losses.iter()).copied();
        let mut d = Diagnostic::error(format!("unknown loss '{name}'"), v.span)
            .with_label("not a built-in or defined loss");
        d = match suggest(name, candidates) {
            Some(s) => d.with_help(format!("did you mean '{s}'?")),
            None => d.with_help(format!(
                "define it with 'loss {name}(y, t) = ...', or use mse, bce or cross_entropy"
            )),
        };
        d
    };
    diags.push(d);
    None
}

/// `softmax` normalises across a layer, so only the last layer may use it.
fn check_softmax_placement(layers: &[RawLayer], diags: &mut Vec<Diagnostic>) {
    let n = layers.len();
    for (k, layer) in layers.iter().enumerate().take(n.saturating_sub(1)) {
        if layer.activation == Some(Activation::Softmax) {
            diags.push(
                Diagnostic::error("'softmax' is only allowed on the last layer", layer.activation_span)
                    .with_label(format!("layer {} of {n}", k + 1))
                    .with_note("softmax normalises across a layer's outputs into class probabilities, so it ends the network")
                    .with_help("use an element-wise activation such as tanh or relu here"),
            );
        }
    }
}

/// `cross_entropy` needs a softmax output and `bce` a sigmoid one. Softmax
/// with any other loss (mse, a custom loss) is allowed on purpose: fitting
/// probabilities by squared error is legitimate, if unusual.
fn check_loss_fits(loss: &Loss, span: Span, layers: &[RawLayer], diags: &mut Vec<Diagnostic>) {
    let Some(last) = layers.last() else { return };
    let Some(act) = &last.activation else { return };
    let (needed, name) = match loss {
        Loss::CrossEntropy => (Activation::Softmax, "cross_entropy"),
        Loss::Bce => (Activation::Builtin(Builtin::Sigmoid), "bce"),
        Loss::Mse | Loss::Custom(_) => return,
    };
    let needed_name = if needed == Activation::Softmax {
        "softmax"
    } else {
        "sigmoid"
    };
    if *act != needed {
        let uses = match act {
            Activation::Builtin(Builtin::Identity) if last.activation_span == last.span => {
                "the last layer has no activation (identity)".to_string()
            }
            Activation::Builtin(b) => format!("the last layer uses '{}'", b.name()),
            Activation::Softmax => "the last layer uses 'softmax'".to_string(),
            Activation::Custom(c) => format!("the last layer uses '{c}'"),
        };
        let mut d = Diagnostic::error(format!("'{name}' needs a {needed_name} output layer"), span)
            .with_label(format!("needs '{needed_name}' on the last layer"))
            .with_secondary(last.activation_span, uses)
            .with_help(format!("make the last layer 'dense K {needed_name}'"));
        if needed == Activation::Softmax {
            d = d.with_note("for a single 0/1 output, use 'dense 1 sigmoid' with 'loss bce'");
        } else if *act == Activation::Softmax {
            d = d.with_note(
                "with softmax outputs and class-index targets, use 'loss cross_entropy'",
            );
        }
        diags.push(d);
    } else if *loss == Loss::CrossEntropy && last.kind == (RawKind::Dense { width: 1 }) {
        diags.push(
            Diagnostic::error("'cross_entropy' needs at least 2 classes", span)
                .with_label("the output has one class")
                .with_secondary(last.span, "1 output")
                .with_help(
                    "for two classes use 'dense 1 sigmoid' with 'loss bce', or 'dense 2 softmax'",
                ),
        );
    }
}

/// Each layer's name (`densek` unless `name=` is given); reports repeats.
fn layer_names(layers: &[RawLayer], diags: &mut Vec<Diagnostic>) -> Vec<String> {
    // Counts per keyword and first positions per name, so that a model of a
    // million layers is named in linear time.
    let mut nth: HashMap<&str, usize> = HashMap::new();
    let names: Vec<(String, Span, bool)> = layers
        .iter()
        .map(|l| {
            // The k-th layer of each keyword: dense1, conv1, maxpool1, ...
            let count = nth.entry(l.keyword()).or_insert(0);
            *count += 1;
            match &l.name {
                Some((n, span)) => (n.clone(), *span, true),
                None => (format!("{}{}", l.keyword(), count), l.span, false),
            }
        })
        .collect();
    let mut first: HashMap<&str, usize> = HashMap::new();
    for (i, (name, span, explicit)) in names.iter().enumerate() {
        let first_k = *first.entry(name.as_str()).or_insert(i);
        if first_k == i {
            continue;
        }
        let (_, first_span, first_explicit) = &names[first_k];
        // Point at the `name=` the user wrote when only one of the two is explicit.
        let ((span, explicit, k), (first_span, first_explicit, first_k)) =
            if !explicit && *first_explicit {
                (
                    (first_span, first_explicit, first_k + 1),
                    (span, explicit, i + 1),
                )
            } else {
                (
                    (span, explicit, i + 1),
                    (first_span, first_explicit, first_k + 1),
                )
            };
        let describe = |explicit: bool, k: usize| {
            if explicit {
                format!("'{name}' is given here")
            } else {
                format!("layer {k} is named '{name}' by default")
            }
        };
        let mut d = Diagnostic::error(format!("layer name '{name}' is used twice"), *span)
            .with_label(describe(*explicit, k))
            .with_secondary(*first_span, describe(*first_explicit, first_k))
            .with_note(
                "layer names must be unique: the weights are saved as NAME.weight and NAME.bias",
            );
        if !explicit || !first_explicit {
            d = d.with_note("the k-th dense layer is named 'densek' unless it has name=");
        }
        diags.push(d.with_help("choose another name with name=..."));
    }
    names.into_iter().map(|(n, ..)| n).collect()
}
