//! Stage 6b: ONNX export, beside the code generator. The forward graph
//! ([`lower::lower_model`]) or the simplified gradient graph
//! ([`pipeline::compile`]) is written as an ONNX model (opset
//! [`OPSET`], IR version [`IR_VERSION`]) that any ONNX engine runs: the
//! weights are initializers under their safetensors names, every op is a
//! standard ONNX operator (the mapping is the one `match` in `emit.rs`).
//!
//! **Architecture Invariant:** `export` imports `check`, `graph`, `lower`,
//! `pipeline` and `diag` (and the stages those chain), never `codegen`,
//! `train` or `cli`: it reads graphs and writes bytes; the command line
//! reads the weights and writes the file.

// Every stage reports a `Diagnostic` by value (the agreed interface).
#![allow(clippy::result_large_err)]

mod emit;
pub mod proto;

use crate::check::model::{Loss, Model, Program};
use crate::diag::Diagnostic;
use crate::graph::{Dim, NodeId, Shape};
use crate::{lower, pipeline};
use emit::{Elem, Emitter};
use prost::Message;
use proto::{
    GraphProto, ModelProto, OperatorSetIdProto, StringStringEntryProto, TensorProto,
    TensorShapeProto, TypeProto, ValueInfoProto, data_type, tensor_shape_proto, type_proto,
};
use std::collections::{HashMap, HashSet};
use std::fmt;

/// The ONNX operator set written: the lowest with a native `Gelu`, so a
/// later mapping can use it without raising the requirement.
pub const OPSET: i64 = 20;
/// The IR version that goes with [`OPSET`] (ONNX 1.15): read by onnxruntime 1.17 and later.
pub const IR_VERSION: i64 = 9;
/// The name of the symbolic batch dimension of inputs and outputs.
pub const BATCH: &str = "batch";

/// One parameter's values, as read from a weights file.
#[derive(Clone, Copy, Debug)]
pub struct ParamValue<'a> {
    /// `NAME.weight` or `NAME.bias`.
    pub name: &'a str,
    /// Its shape (`[out, in]` for a dense weight).
    pub shape: &'a [usize],
    /// Row-major float32 values.
    pub data: &'a [f32],
}

/// Why a model could not be exported.
#[derive(Clone, Debug)]
pub enum ExportError {
    /// The model did not lower (a diagnostic pointing into the `.nn` file).
    Lower(Diagnostic),
    /// The weights do not fit the model.
    Weights(String),
    /// A graph op or leaf with no ONNX mapping yet.
    Unsupported(String),
    /// A broken invariant of the exporter itself.
    Internal(String),
}

impl fmt::Display for ExportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExportError::Lower(d) => write!(f, "{}", d.message),
            ExportError::Weights(why) => write!(f, "{why}"),
            ExportError::Unsupported(what) => write!(f, "not exportable yet: {what}"),
            ExportError::Internal(why) => write!(f, "internal error in the ONNX export: {why}"),
        }
    }
}

impl std::error::Error for ExportError {}

/// The forward pass of `model` at `params`: input `x` (`[batch, features]`,
/// or `[batch, C, H, W]` for an image input), output `y` as `slope predict`
/// prints it and, when the last layer has an activation, its
/// pre-activation `logits`.
pub fn forward(
    program: &Program,
    model: &Model,
    params: &[ParamValue],
) -> Result<ModelProto, ExportError> {
    let net = pipeline::lower(program, model).map_err(ExportError::Lower)?;
    check_params(&net, params)?;
    let mut outputs = vec![("y".to_string(), net.y)];
    if let Some(last) = net.layers.last().filter(|l| l.z != net.y) {
        outputs.push(("logits".to_string(), last.z));
    }
    let doc = format!(
        "The forward pass of model '{}' (slope predict): y from x.",
        model.name
    );
    build(&net, model, params, &outputs, false, doc)
}

/// The training graph of `model` from slope's simplified symbolic gradient:
/// inputs `x` and `t` (float32 `[batch, K]`, or int64 `[batch]` class
/// indices for `cross_entropy`), outputs `loss` (the mean loss) and
/// `NAME.grad` for each parameter (`slope grad --weights --data --out`).
/// The parameters are inputs too, defaulting to `params`.
pub fn gradient(
    program: &Program,
    model: &Model,
    params: &[ParamValue],
) -> Result<ModelProto, ExportError> {
    let (net, _) = pipeline::compile(program, model).map_err(ExportError::Lower)?;
    check_params(&net, params)?;
    let mut outputs = vec![("loss".to_string(), net.loss)];
    for (p, &g) in net.params.iter().zip(&net.grads) {
        outputs.push((format!("{}.grad", p.name), g));
    }
    let doc = format!(
        "The mean loss of model '{}' and its gradient with respect to every parameter, \
         as slope derives and simplifies them (slope grad --weights --data --out).",
        model.name
    );
    build(&net, model, params, &outputs, true, doc)
}

/// The model's bytes.
pub fn encode(model: &ModelProto) -> Vec<u8> {
    model.encode_to_vec()
}

/// Checks that `params` are exactly the network's parameters, in any order.
fn check_params(net: &pipeline::Network, params: &[ParamValue]) -> Result<(), ExportError> {
    // By name, not by scanning: a deep model has thousands of tensors.
    let wanted: HashMap<&str, &lower::ParamNode> =
        net.params.iter().map(|w| (w.name.as_str(), w)).collect();
    let given: HashSet<&str> = params.iter().map(|p| p.name).collect();
    for p in params {
        let Some(want) = wanted.get(p.name) else {
            return Err(ExportError::Weights(format!(
                "unexpected tensor '{}' not in the model",
                p.name
            )));
        };
        if want.shape != p.shape {
            return Err(ExportError::Weights(format!(
                "'{}' has shape {:?}, the model needs {:?}",
                p.name, p.shape, want.shape
            )));
        }
        if p.data.len() != p.shape.iter().product::<usize>() {
            return Err(ExportError::Weights(format!(
                "'{}' has {} values for shape {:?}",
                p.name,
                p.data.len(),
                p.shape
            )));
        }
    }
    if let Some(missing) = net.params.iter().find(|w| !given.contains(w.name.as_str())) {
        return Err(ExportError::Weights(format!(
            "'{}' is missing; the model needs shape {:?}",
            missing.name, missing.shape
        )));
    }
    Ok(())
}

/// Assembles the ONNX model: inputs, initializers, the emitted nodes and
/// the outputs, with slope's name and version as producer.
fn build(
    net: &pipeline::Network,
    model: &Model,
    params: &[ParamValue],
    outputs: &[(String, NodeId)],
    training: bool,
    doc: String,
) -> Result<ModelProto, ExportError> {
    let g = &net.graph;
    let mut reserved: Vec<String> = vec!["x".into(), "t".into()];
    reserved.extend(outputs.iter().map(|o| o.0.clone()));
    reserved.extend(net.params.iter().map(|p| p.name.clone()));
    let mut e = Emitter::new(g, "x", &reserved);

    // The input as the user has it; an image is flattened the way slope
    // reads its pixels (C, H, W order), unless the graph takes it as is.
    let dims = model.input.dims();
    let mut x_dims = vec![Dim::Batch];
    x_dims.extend(dims.iter().map(|&d| Dim::Fixed(d)));
    let x_shape = Shape(x_dims);
    let mut inputs = vec![value_info("x", Elem::Float, &x_shape)];
    if g.node(net.x).shape.0.len() == x_shape.0.len() {
        e.bind(net.x, "x", Elem::Float);
    } else {
        let flat = e.fresh("x_flat");
        e.node(
            "Flatten",
            &["x"],
            &[&flat],
            vec![("axis", emit::Attr::Int(1))],
        );
        e.bind(net.x, &flat, Elem::Float);
        // Unflattened to the input's own [C, H, W], the rows are `x` itself.
        if let &[c, h, w] = dims {
            let chw = [c, h, w].map(|d| d as u32);
            e.image_input = Some((net.x, "x".into(), chw));
        }
    }
    if training {
        let (elem, shape) = match model.loss {
            Loss::CrossEntropy => (Elem::Int64, Shape(vec![Dim::Batch])),
            Loss::Mse | Loss::Bce | Loss::Custom(_) => (Elem::Float, g.node(net.t).shape.clone()),
        };
        inputs.push(value_info("t", elem, &shape));
        e.bind(net.t, "t", elem);
    }
    let by_name: HashMap<&str, &ParamValue> = params.iter().map(|v| (v.name, v)).collect();
    let mut initializer = Vec::new();
    for p in &net.params {
        let v = by_name
            .get(p.name.as_str())
            .copied()
            .ok_or_else(|| ExportError::Internal(format!("'{}' was checked", p.name)))?;
        initializer.push(tensor(v));
        e.bind(p.node, &p.name, Elem::Float);
        if training {
            // An input with an initializer is a default the caller may
            // override: the gradient at other weights, as a training loop needs.
            let shape = Shape(p.shape.iter().map(|&d| Dim::Fixed(d)).collect());
            inputs.push(value_info(&p.name, Elem::Float, &shape));
        }
    }
    e.emit(outputs)?;
    let output = outputs
        .iter()
        .map(|(name, id)| value_info(name, Elem::Float, &g.node(*id).shape))
        .collect();
    let graph = GraphProto {
        node: std::mem::take(&mut e.nodes),
        name: Some(if training {
            format!("{}_gradient", model.name)
        } else {
            model.name.clone()
        }),
        initializer,
        doc_string: Some(doc),
        input: inputs,
        output,
        value_info: vec![],
    };
    Ok(ModelProto {
        ir_version: Some(IR_VERSION),
        opset_import: vec![OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(OPSET),
        }],
        producer_name: Some("slope".into()),
        producer_version: Some(env!("CARGO_PKG_VERSION").into()),
        domain: None,
        model_version: Some(1),
        doc_string: Some(format!("Exported by slope {}.", env!("CARGO_PKG_VERSION"))),
        graph: Some(graph),
        metadata_props: vec![
            entry("slope.model", &model.name),
            entry("slope.graph", if training { "gradient" } else { "forward" }),
        ],
    })
}

fn entry(key: &str, value: &str) -> StringStringEntryProto {
    StringStringEntryProto {
        key: Some(key.into()),
        value: Some(value.into()),
    }
}

/// An initializer: little-endian float32 bytes, as PyTorch writes them.
fn tensor(p: &ParamValue) -> TensorProto {
    TensorProto {
        dims: p.shape.iter().map(|&d| d as i64).collect(),
        data_type: Some(data_type::FLOAT),
        name: Some(p.name.to_string()),
        raw_data: Some(p.data.iter().flat_map(|v| v.to_le_bytes()).collect()),
        ..Default::default()
    }
}

/// A typed graph input or output; the batch axis is the named dimension [`BATCH`].
fn value_info(name: &str, elem: Elem, shape: &Shape) -> ValueInfoProto {
    use tensor_shape_proto::{Dimension, dimension::Value};
    let dim = shape
        .0
        .iter()
        .map(|d| Dimension {
            value: Some(match d {
                Dim::Batch => Value::DimParam(BATCH.into()),
                Dim::Fixed(n) => Value::DimValue(*n as i64),
            }),
            denotation: None,
        })
        .collect();
    ValueInfoProto {
        name: Some(name.into()),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: Some(elem.onnx_type()),
                shape: Some(TensorShapeProto { dim }),
            })),
            denotation: None,
        }),
        doc_string: None,
    }
}
