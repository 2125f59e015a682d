//! Image layers in `model` blocks: the `conv`, `maxpool`, `avgpool` and
//! `flatten` statements and their options, and the walk that infers each
//! layer's input shape and reports windows that do not fit (spec §5).

use super::layer::geometry;
use super::model::{Activation, FeatureShape, Init, Padding, PoolMode};
use super::model_block::{ItemNames, MAX_WIDTH, RawKind, RawLayer, check_activation};
use super::values::{boolean, choice, describe, options, whole};
use crate::diag::{Diagnostic, Span, thousands};
use crate::syntax::ast::{Stmt, Value, ValueKind};

const CONV_USAGE: &str = "conv N KxK [ACTIVATION] [stride=S] [padding=valid|same] \
                          [init=glorot|he|standard|zeros] [bias=true|false] [name=NAME]";

/// A kernel or window side: `3` or `3x3` (square only).
fn kernel_size(v: &Value, what: &str, diags: &mut Vec<Diagnostic>) -> Option<usize> {
    match &v.kind {
        ValueKind::Size { dims, text } => {
            let d = if dims.len() != 2 {
                Diagnostic::error(format!("invalid {what} {text}"), v.span)
                    .with_label(format!("expected K x K, found {} numbers", dims.len()))
            } else if dims[0] != dims[1] {
                Diagnostic::error(format!("invalid {what} {text}"), v.span)
                    .with_label("kernels and windows are square")
            } else if dims[0] == 0 || dims[0] > MAX_WIDTH {
                Diagnostic::error(format!("invalid {what} {text}"), v.span)
                    .with_label(format!("the side must be between 1 and {MAX_WIDTH}"))
            } else {
                return Some(dims[0] as usize);
            };
            diags.push(d.with_help(format!("write a square size such as 3x3 for the {what}")));
            None
        }
        _ => whole(v, what, 1, MAX_WIDTH, diags).map(|k| k as usize),
    }
}

/// `stride=S` with S ≥ 1; stride 0 would never move the window.
fn stride(v: &Value, diags: &mut Vec<Diagnostic>) -> Option<usize> {
    let n = diags.len();
    let s = whole(v, "stride", 1, MAX_WIDTH, diags);
    if diags.len() > n
        && let Some(d) = diags.last_mut()
    {
        *d = d
            .clone()
            .with_help("the stride is how far the window moves each step: 1 or more");
    }
    s.map(|s| s as usize)
}

/// `name=ID` for a layer.
fn layer_name(v: &Value, diags: &mut Vec<Diagnostic>) -> Option<(String, Span)> {
    match &v.kind {
        ValueKind::Ident(n) => Some((n.clone(), v.span)),
        _ => {
            diags.push(
                Diagnostic::error(format!("invalid layer name {}", describe(v)), v.span)
                    .with_label("expected a name such as 'features' or 'conv_a'"),
            );
            None
        }
    }
}

/// A statement's positional values past `max`, reported once.
fn extra_values(stmt: &Stmt, max: usize, usage: &str, diags: &mut Vec<Diagnostic>) {
    if stmt.values.len() > max {
        let extra = &stmt.values[max..];
        let span = extra[0].span.to(extra[extra.len() - 1].span);
        let keyword = &stmt.keyword.name;
        diags.push(
            Diagnostic::error(format!("unexpected value for '{keyword}'"), span)
                .with_label(format!("'{keyword}' takes at most {max} values"))
                .with_help(format!("write it as: {usage}")),
        );
    }
}

/// `conv N KxK [ACT] [stride=S] [padding=valid|same] [init=…] [bias=…] [name=ID]`.
pub(super) fn check_conv(stmt: &Stmt, items: &ItemNames, diags: &mut Vec<Diagnostic>) -> RawLayer {
    let n_before = diags.len();
    let mut layer = RawLayer::new(stmt, RawKind::Flatten);
    let (mut filters, mut kernel, mut step, mut padding) = (None, None, Some(1), Padding::Valid);
    match stmt.values.first() {
        None => diags.push(
            Diagnostic::error(
                "'conv' needs a number of filters and a kernel size",
                stmt.span,
            )
            .with_label("filters and kernel missing")
            .with_help("write it as: conv 16 3x3 relu"),
        ),
        Some(v) => filters = whole(v, "number of filters", 1, MAX_WIDTH, diags),
    }
    match stmt.values.get(1) {
        Some(v) => kernel = kernel_size(v, "kernel size", diags),
        None if !stmt.values.is_empty() => diags.push(
            Diagnostic::error("'conv' needs a kernel size", stmt.span)
                .with_label("kernel size missing")
                .with_help("write it after the number of filters: conv 16 3x3 relu"),
        ),
        None => {}
    }
    layer.activation = Some(Activation::Builtin(super::model::Builtin::Identity));
    if let Some(v) = stmt.values.get(2) {
        layer.activation_span = v.span;
        layer.activation = check_activation(v, items, diags);
        if layer.activation == Some(Activation::Softmax) {
            diags.push(
                Diagnostic::error("'softmax' is not allowed on a conv layer", v.span)
                    .with_label("softmax normalises a vector of class scores")
                    .with_help("use an element-wise activation such as relu here, and end the network with 'dense K softmax'"),
            );
            // Reported once: not again as a softmax before the last layer.
            layer.activation = None;
        }
    }
    extra_values(stmt, 3, CONV_USAGE, diags);
    for opt in options(
        stmt,
        &["stride", "padding", "init", "bias", "name"],
        &[],
        diags,
    ) {
        let v = &opt.value;
        match opt.key.name.as_str() {
            "stride" => step = stride(v, diags),
            "padding" => {
                padding = match choice(v, "padding", &["valid", "same"], diags) {
                    Some("same") => Padding::Same,
                    _ => Padding::Valid,
                }
            }
            "init" => {
                let names = Init::ALL.map(Init::name);
                layer.init = choice(v, "init", &names, diags).and_then(Init::from_name);
            }
            "bias" => layer.bias = boolean(v, "bias", diags).unwrap_or(true),
            _ => layer.name = layer_name(v, diags),
        }
    }
    if let (Some(filters), Some(kernel), Some(stride)) = (filters, kernel, step) {
        layer.kind = RawKind::Conv {
            filters: filters as usize,
            kernel,
            stride,
            padding,
        };
    }
    layer.ok = diags.len() == n_before;
    layer
}

/// `maxpool KxK [stride=S]`, `avgpool KxK [stride=S]` (stride defaults to K).
pub(super) fn check_pool(stmt: &Stmt, mode: PoolMode, diags: &mut Vec<Diagnostic>) -> RawLayer {
    let n_before = diags.len();
    let keyword = mode.keyword();
    let mut layer = RawLayer::new(stmt, RawKind::Flatten);
    let kernel = match stmt.values.first() {
        None => {
            diags.push(
                Diagnostic::error(format!("'{keyword}' needs a window size"), stmt.span)
                    .with_label("window size missing")
                    .with_help(format!("write it as: {keyword} 2x2")),
            );
            None
        }
        Some(v) => kernel_size(v, "window size", diags),
    };
    extra_values(stmt, 1, &format!("{keyword} KxK [stride=S]"), diags);
    let mut step = None;
    for opt in options(stmt, &["stride", "name"], &[], diags) {
        match opt.key.name.as_str() {
            "stride" => step = Some(stride(&opt.value, diags)),
            _ => layer.name = layer_name(&opt.value, diags),
        }
    }
    if let Some(kernel) = kernel
        && let Some(stride) = step.unwrap_or(Some(kernel))
    {
        layer.kind = RawKind::Pool {
            mode,
            kernel,
            stride,
        };
    }
    layer.ok = diags.len() == n_before;
    layer
}

/// `flatten` (no values; `name=` allowed).
pub(super) fn check_flatten(stmt: &Stmt, diags: &mut Vec<Diagnostic>) -> RawLayer {
    let n_before = diags.len();
    let mut layer = RawLayer::new(stmt, RawKind::Flatten);
    extra_values(stmt, 0, "flatten", diags);
    for opt in options(stmt, &["name"], &[], diags) {
        layer.name = layer_name(&opt.value, diags);
    }
    layer.ok = diags.len() == n_before;
    layer
}

/// Walks the layers from the input shape, reporting image layers that see
/// flat features and windows that do not fit. Returns false on an error.
pub(super) fn infer_shapes(
    input: &FeatureShape,
    input_span: Span,
    layers: &[RawLayer],
    diags: &mut Vec<Diagnostic>,
) -> bool {
    let mut shape = input.clone();
    let mut from = (input_span, format!("the input is {}", described(input)));
    for layer in layers {
        let next = match &layer.kind {
            RawKind::Dense { width } => FeatureShape::flat(*width),
            RawKind::Flatten => FeatureShape::flat(shape.features()),
            RawKind::Conv { .. } | RawKind::Pool { .. } => {
                let Some(next) = image_step(&shape, layer, &from, diags) else {
                    return false;
                };
                next
            }
        };
        if next.features() as u64 > MAX_WIDTH {
            diags.push(
                Diagnostic::error(
                    format!(
                        "this layer outputs {} values per example",
                        thousands(next.features() as u64)
                    ),
                    layer.span,
                )
                .with_label(format!("output {next}"))
                .with_note(format!("the limit is {} per layer", thousands(MAX_WIDTH)))
                .with_help("use fewer filters or a larger stride"),
            );
            return false;
        }
        from = (
            layer.span,
            format!("this layer outputs {}", described(&next)),
        );
        shape = next;
    }
    true
}

/// `64 features` or `1x8x8 images`, for labels.
fn described(shape: &FeatureShape) -> String {
    if shape.is_image() {
        format!("{shape} images")
    } else {
        format!("{} features", shape.features())
    }
}

/// The output shape of a conv or pooling layer over `shape`, or the error.
fn image_step(
    shape: &FeatureShape,
    layer: &RawLayer,
    from: &(Span, String),
    diags: &mut Vec<Diagnostic>,
) -> Option<FeatureShape> {
    let (kernel, stride, padding, channels, keyword) = match layer.kind {
        RawKind::Conv {
            filters,
            kernel,
            stride,
            padding,
        } => (kernel, stride, padding, Some(filters), "conv"),
        RawKind::Pool {
            mode,
            kernel,
            stride,
        } => (kernel, stride, Padding::Valid, None, mode.keyword()),
        RawKind::Dense { .. } | RawKind::Flatten => unreachable!("called for image layers"),
    };
    let &[c, h, w] = shape.dims() else {
        let n = shape.features();
        let side = (1..=n).find(|s| s * s >= n).unwrap_or(1);
        let help = if !from.1.starts_with("the input") {
            format!(
                "put '{keyword}' layers before the dense layers; a dense layer's output has no height or width"
            )
        } else if side * side == n {
            format!("declare the input as an image: input 1x{side}x{side}")
        } else {
            "declare the input as an image: input CxHxW (channels x height x width)".to_string()
        };
        diags.push(
            Diagnostic::error(format!("'{keyword}' needs an image input"), layer.span)
                .with_label(format!(
                    "{} features have no height and width",
                    shape.features()
                ))
                .with_secondary(from.0, from.1.clone())
                .with_help(help),
        );
        return None;
    };
    if let Some(g) = geometry(h, w, kernel, stride, padding) {
        return Some(FeatureShape::image(
            channels.unwrap_or(c),
            g.out[0],
            g.out[1],
        ));
    }
    let d = if channels.is_some() {
        Diagnostic::error(
            format!("the {kernel}x{kernel} kernel is larger than its {h}x{w} input"),
            layer.span,
        )
        .with_label("no position of the kernel fits inside the input")
        .with_help("use padding=same, or a kernel no larger than the input")
    } else {
        Diagnostic::error(
            format!("a {kernel}x{kernel} window over a {h}x{w} input leaves an empty output"),
            layer.span,
        )
        .with_label("no window fits inside the input")
        .with_help(format!(
            "remove this '{keyword}' or use a window of at most {0}x{0}",
            h.min(w)
        ))
    };
    diags.push(d.with_secondary(from.0, from.1.clone()));
    None
}
