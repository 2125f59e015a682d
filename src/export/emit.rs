//! Graph nodes to ONNX nodes: one exhaustive `match` over [`Op`], like the
//! printer and the code generator's translator, so a new op does not
//! compile until its ONNX form (or its "not exportable yet" error) is
//! written here.
//!
//! Each graph value is written in the element type its consumers need and
//! converted lazily: comparisons make `bool` tensors (a `where` reads them
//! as they are, arithmetic through a `Cast`), class indices are `int64`
//! (`OneHot` reads them as they are). Two patterns are fused: a matrix
//! product whose operand is a transpose used nowhere else becomes `Gemm`
//! with `transA`/`transB`, and `matmul + broadcast(bias)` becomes `Gemm`
//! with `C` — a dense layer is one `Gemm(a, W, b, transB=1)`, as PyTorch
//! exports it. Scalar constants that only feed element-wise ops next to a
//! full-shape operand rely on ONNX's broadcasting instead of an `Expand`.

use super::ExportError;
use super::proto::{AttributeProto, NodeProto, TensorProto, attribute_type, data_type};
use crate::graph::{Axes, Dim, Graph, NodeId, Op, Shape, Window};
use std::collections::{HashMap, HashSet};

mod window;

/// The element types a value can be written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Elem {
    /// float32: every value of the graph's arithmetic.
    Float,
    /// int64: class indices.
    Int64,
    /// bool: comparison results.
    Bool,
}

impl Elem {
    /// The ONNX `TensorProto.DataType` of this element type.
    pub fn onnx_type(self) -> i32 {
        match self {
            Elem::Float => data_type::FLOAT,
            Elem::Int64 => data_type::INT64,
            Elem::Bool => data_type::BOOL,
        }
    }

    fn onnx(self) -> i64 {
        i64::from(self.onnx_type())
    }
}

/// The ONNX values written for one graph node, by element type.
#[derive(Clone, Debug, Default)]
struct Forms {
    float: Option<String>,
    int64: Option<String>,
    boolean: Option<String>,
}

impl Forms {
    fn get(&self, e: Elem) -> Option<&String> {
        match e {
            Elem::Float => self.float.as_ref(),
            Elem::Int64 => self.int64.as_ref(),
            Elem::Bool => self.boolean.as_ref(),
        }
    }

    fn set(&mut self, e: Elem, name: String) {
        match e {
            Elem::Float => self.float = Some(name),
            Elem::Int64 => self.int64 = Some(name),
            Elem::Bool => self.boolean = Some(name),
        }
    }
}

/// An attribute of a node.
pub enum Attr {
    /// An integer.
    Int(i64),
    /// A list of integers.
    Ints(Vec<i64>),
    /// A float.
    Float(f32),
    /// A string.
    Str(&'static str),
    /// A constant tensor.
    Tensor(TensorProto),
}

/// Builds the node list of one ONNX graph from graph nodes.
pub struct Emitter<'g> {
    g: &'g Graph,
    /// The nodes written so far, in topological order.
    pub nodes: Vec<NodeProto>,
    forms: HashMap<NodeId, Forms>,
    used: HashSet<String>,
    /// Per base name, the first suffix [`Emitter::fresh`] has not tried.
    next_suffix: HashMap<String, usize>,
    /// Roots that must carry an output name, and their names.
    outputs: HashMap<NodeId, Vec<String>>,
    /// Roots whose value already carries their output name.
    named: HashSet<NodeId>,
    /// Nodes a fused neighbour computes (never written themselves).
    absorbed: HashSet<NodeId>,
    /// Scalar-constant broadcasts ONNX broadcasting makes unnecessary.
    elided: HashSet<NodeId>,
    /// `Add` nodes written as `Gemm` with a bias.
    gemm_add: HashSet<NodeId>,
    /// `Add` nodes written as `Conv` with a bias.
    conv_add: HashSet<NodeId>,
    /// The graph's input rows, the ONNX image input they were flattened
    /// from and its `[C, H, W]`: an `unflatten` of the rows to that shape
    /// reads the image as is.
    pub image_input: Option<(NodeId, String, [u32; 3])>,
    /// Max pooling's `Indices` output, by selector node and window.
    indices: HashMap<(NodeId, Window), String>,
    /// The 1-D int64 `[batch]` tensor, made once from the input `x`.
    batch: Option<String>,
    /// The input whose first dimension is the batch.
    batch_source: String,
    shapes: HashMap<Shape, String>,
}

impl<'g> Emitter<'g> {
    /// An emitter over `g`; `batch_source` names the input whose first
    /// dimension is the batch; `reserved` are names taken by graph inputs,
    /// outputs and initializers.
    pub fn new(g: &'g Graph, batch_source: &str, reserved: &[String]) -> Self {
        Emitter {
            g,
            nodes: Vec::new(),
            forms: HashMap::new(),
            used: reserved.iter().cloned().collect(),
            next_suffix: HashMap::new(),
            outputs: HashMap::new(),
            named: HashSet::new(),
            absorbed: HashSet::new(),
            elided: HashSet::new(),
            gemm_add: HashSet::new(),
            conv_add: HashSet::new(),
            indices: HashMap::new(),
            image_input: None,
            batch: None,
            batch_source: batch_source.to_string(),
            shapes: HashMap::new(),
        }
    }

    /// Says that graph node `id` (a leaf) is the ONNX value `name` of type `elem`.
    pub fn bind(&mut self, id: NodeId, name: &str, elem: Elem) {
        self.forms
            .entry(id)
            .or_default()
            .set(elem, name.to_string());
    }

    /// A fresh value name starting with `base`.
    pub fn fresh(&mut self, base: &str) -> String {
        // Names are never released, so the suffixes tried before for this
        // base are still taken: resume after them (probing from 1 each time
        // was quadratic in the number of values sharing a base).
        let mut n = self.next_suffix.get(base).copied().unwrap_or(0);
        let mut name = if n == 0 {
            base.to_string()
        } else {
            format!("{base}_{n}")
        };
        while !self.used.insert(name.clone()) {
            n += 1;
            name = format!("{base}_{n}");
        }
        self.next_suffix.insert(base.to_string(), n + 1);
        name
    }

    /// Appends the node `op_type(inputs) -> outputs` with its attributes.
    pub fn node(
        &mut self,
        op_type: &str,
        inputs: &[&str],
        outputs: &[&str],
        attrs: Vec<(&str, Attr)>,
    ) {
        let attribute = attrs
            .into_iter()
            .map(|(name, a)| {
                let mut p = AttributeProto {
                    name: Some(name.to_string()),
                    ..Default::default()
                };
                match a {
                    Attr::Int(i) => (p.r#type, p.i) = (Some(attribute_type::INT), Some(i)),
                    Attr::Ints(v) => (p.r#type, p.ints) = (Some(attribute_type::INTS), v),
                    Attr::Float(f) => (p.r#type, p.f) = (Some(attribute_type::FLOAT), Some(f)),
                    Attr::Str(v) => {
                        (p.r#type, p.s) = (Some(attribute_type::STRING), Some(v.into()))
                    }
                    Attr::Tensor(t) => (p.r#type, p.t) = (Some(attribute_type::TENSOR), Some(t)),
                }
                p
            })
            .collect();
        self.nodes.push(NodeProto {
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: outputs.iter().map(|s| s.to_string()).collect(),
            name: Some(outputs[0].to_string()),
            op_type: Some(op_type.to_string()),
            attribute,
            ..Default::default()
        });
    }

    /// A new value `op_type(inputs)` named after `base`.
    fn op(
        &mut self,
        base: &str,
        op_type: &str,
        inputs: &[&str],
        attrs: Vec<(&str, Attr)>,
    ) -> String {
        let out = self.fresh(base);
        self.node(op_type, inputs, &[&out], attrs);
        out
    }

    /// A `Constant` int64 vector.
    fn ints(&mut self, base: &str, v: &[i64]) -> String {
        let t = TensorProto {
            dims: vec![v.len() as i64],
            data_type: Some(data_type::INT64),
            int64_data: v.to_vec(),
            ..Default::default()
        };
        self.op(base, "Constant", &[], vec![("value", Attr::Tensor(t))])
    }

    /// Writes every node `roots` depend on and names each root's value as
    /// given (`Identity` nodes where one node is two outputs, or a leaf).
    pub fn emit(&mut self, roots: &[(String, NodeId)]) -> Result<(), ExportError> {
        let ids: Vec<NodeId> = roots.iter().map(|r| r.1).collect();
        let order = self.g.topo_order(&ids);
        for (name, id) in roots {
            self.outputs.entry(*id).or_default().push(name.clone());
        }
        self.plan(&order, &ids);
        for &id in &order {
            if !self.absorbed.contains(&id) && !self.elided.contains(&id) {
                self.write(id)?;
            }
        }
        for (name, id) in roots {
            let v = self.float(*id)?;
            if v != *name {
                self.node("Identity", &[&v], &[name], vec![]);
            }
        }
        self.prune();
        Ok(())
    }

    /// Drops nodes whose values nothing reads (the flattened image input
    /// when every layer reads the image), last to first.
    fn prune(&mut self) {
        let mut read: HashSet<String> = self.outputs.values().flatten().cloned().collect();
        let mut keep = vec![true; self.nodes.len()];
        for (i, n) in self.nodes.iter().enumerate().rev() {
            if n.output.iter().any(|o| read.contains(o)) {
                read.extend(n.input.iter().cloned());
            } else {
                keep[i] = false;
            }
        }
        let mut keep = keep.into_iter();
        self.nodes.retain(|_| keep.next().unwrap_or(true));
    }

    /// The fusions and elisions, decided before anything is written: a
    /// node is absorbed only when its one user is the node that absorbs it.
    fn plan(&mut self, order: &[NodeId], roots: &[NodeId]) {
        let mut uses: HashMap<NodeId, usize> = HashMap::new();
        for &id in order {
            for &a in &self.g.node(id).args {
                *uses.entry(a).or_default() += 1;
            }
        }
        for &r in roots {
            *uses.entry(r).or_default() += 1;
        }
        let single = |id: NodeId| uses.get(&id) == Some(&1);
        for &id in order {
            let n = self.g.node(id);
            match n.op {
                Op::MatMul => {
                    for &a in &n.args {
                        if self.g.node(a).op == Op::Transpose && single(a) {
                            self.absorbed.insert(a);
                        }
                    }
                }
                Op::Add if n.args.len() == 2 => {
                    if let Some((mm, bias)) = self.dense_parts(id)
                        && single(mm)
                        && single(bias)
                    {
                        self.absorbed.extend([mm, bias]);
                        self.gemm_add.insert(id);
                    } else if let Some((conv, bias)) = self.conv_parts(id)
                        && single(conv)
                        && single(bias)
                    {
                        self.absorbed.extend([conv, bias]);
                        self.conv_add.insert(id);
                    }
                }
                _ => {}
            }
        }
        self.plan_elisions(order, roots);
    }

    /// For `matmul(..) + broadcast(b)` (either order) with `b` a vector
    /// repeated down the rows: the matmul and broadcast nodes.
    fn dense_parts(&self, add: NodeId) -> Option<(NodeId, NodeId)> {
        let args = &self.g.node(add).args;
        let is_bias = |id: NodeId| {
            let n = self.g.node(id);
            n.op == Op::Broadcast(Axes(0b01)) && self.g.node(n.args[0]).shape.0.len() == 1
        };
        let is_mm = |id: NodeId| self.g.node(id).op == Op::MatMul;
        match (args[0], args[1]) {
            (m, b) if is_mm(m) && is_bias(b) => Some((m, b)),
            (b, m) if is_mm(m) && is_bias(b) => Some((m, b)),
            _ => None,
        }
    }

    /// Broadcasts of a scalar constant are left to ONNX's broadcasting when
    /// every user is element-wise and has an operand of full shape that is
    /// not itself such a broadcast; a root keeps its shape.
    fn plan_elisions(&mut self, order: &[NodeId], roots: &[NodeId]) {
        let splat = |id: NodeId| {
            let n = self.g.node(id);
            matches!(n.op, Op::Broadcast(_)) && matches!(self.g.node(n.args[0]).op, Op::Const(_))
        };
        let mut candidates: HashSet<NodeId> =
            order.iter().copied().filter(|&id| splat(id)).collect();
        for r in roots {
            candidates.remove(r);
        }
        for &id in order {
            let n = self.g.node(id);
            let keeps = !n.op.is_elementwise() || n.args.iter().all(|a| candidates.contains(a));
            if keeps {
                for a in &n.args {
                    candidates.remove(a);
                }
            }
        }
        self.elided = candidates;
    }

    /// The float32 value of graph node `id` (converting another form).
    pub fn float(&mut self, id: NodeId) -> Result<String, ExportError> {
        self.form(id, Elem::Float)
    }

    /// The value of `id` as `elem`, made by a `Cast` from another form
    /// when needed (and remembered).
    fn form(&mut self, id: NodeId, elem: Elem) -> Result<String, ExportError> {
        if self.elided.contains(&id) {
            let c = self.g.node(id).args[0];
            return self.form(c, elem);
        }
        let forms = self.forms.get(&id).cloned().unwrap_or_default();
        if let Some(v) = forms.get(elem) {
            return Ok(v.clone());
        }
        let from = [Elem::Float, Elem::Bool, Elem::Int64]
            .into_iter()
            .find_map(|e| forms.get(e).cloned())
            .ok_or_else(|| ExportError::Internal(format!("graph node {id:?} was not written")))?;
        let base = format!("{from}_{}", elem_suffix(elem));
        let v = self.op(
            &base,
            "Cast",
            &[&from],
            vec![("to", Attr::Int(elem.onnx()))],
        );
        self.forms.entry(id).or_default().set(elem, v.clone());
        Ok(v)
    }

    /// The name the value of `id` is written under: its output name when it
    /// is a root, the graph's name for it (`z1`, `a1`) or its op's name.
    fn name_for(&mut self, id: NodeId) -> String {
        if let Some(names) = self.outputs.get(&id)
            && self.named.insert(id)
        {
            return names[0].clone();
        }
        let base = match self.g.names.get(&id) {
            Some(n) => n.clone(),
            None => self.g.node(id).op.name().to_string(),
        };
        self.fresh(&base)
    }

    /// Writes node `id` as `op_type` on the float forms of its operands.
    fn simple(
        &mut self,
        id: NodeId,
        op_type: &str,
        attrs: Vec<(&str, Attr)>,
    ) -> Result<(), ExportError> {
        let args = self.operands(id)?;
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = self.name_for(id);
        self.node(op_type, &refs, &[&out], attrs);
        self.bind(id, &out, Elem::Float);
        Ok(())
    }

    fn operands(&mut self, id: NodeId) -> Result<Vec<String>, ExportError> {
        let args = self.g.node(id).args.clone();
        args.into_iter().map(|a| self.float(a)).collect()
    }

    /// Writes graph node `id`: the one exhaustive match over ops.
    fn write(&mut self, id: NodeId) -> Result<(), ExportError> {
        let node = self.g.node(id);
        let op = node.op;
        match op {
            Op::Const(c) => self.constant(id, c.value())?,
            Op::Leaf(_) => self.leaf(id)?,
            Op::BatchSize => self.batch_size(id)?,
            Op::Neg => self.simple(id, "Neg", vec![])?,
            Op::Recip => self.simple(id, "Reciprocal", vec![])?,
            Op::Exp => self.simple(id, "Exp", vec![])?,
            Op::Log => self.simple(id, "Log", vec![])?,
            Op::Sqrt => self.simple(id, "Sqrt", vec![])?,
            Op::Abs => self.simple(id, "Abs", vec![])?,
            Op::Sin => self.simple(id, "Sin", vec![])?,
            Op::Cos => self.simple(id, "Cos", vec![])?,
            Op::Tanh => self.simple(id, "Tanh", vec![])?,
            Op::Sigmoid => self.simple(id, "Sigmoid", vec![])?,
            Op::Relu => self.simple(id, "Relu", vec![])?,
            // Softplus, as slope computes it, is finite for large |x|: so is
            // ONNX Runtime's (softplus(100) = 100, softplus(-100) = 3.8e-44).
            Op::Softplus => self.simple(id, "Softplus", vec![])?,
            Op::Add if self.gemm_add.contains(&id) => self.gemm(id)?,
            Op::Add if self.conv_add.contains(&id) => self.conv_bias(id)?,
            Op::Add if node.args.len() == 2 => self.simple(id, "Add", vec![])?,
            // ONNX's `Sum` adds any number of tensors.
            Op::Add => self.simple(id, "Sum", vec![])?,
            Op::Mul => self.product(id)?,
            Op::Pow => self.simple(id, "Pow", vec![])?,
            Op::Max => self.simple(id, "Max", vec![])?,
            Op::Min => self.simple(id, "Min", vec![])?,
            Op::Lt => self.compare(id, "Less")?,
            Op::Le => self.compare(id, "LessOrEqual")?,
            Op::Gt => self.compare(id, "Greater")?,
            Op::Ge => self.compare(id, "GreaterOrEqual")?,
            Op::Eq => self.compare(id, "Equal")?,
            Op::Where => self.select(id)?,
            Op::MatMul => self.gemm(id)?,
            Op::Transpose => {
                self.simple(id, "Transpose", vec![("perm", Attr::Ints(vec![1, 0]))])?
            }
            Op::Broadcast(axes) => self.broadcast(id, axes)?,
            Op::Sum(axes) => self.reduce_sum(id, axes)?,
            Op::Softmax => self.simple(id, "Softmax", vec![("axis", Attr::Int(-1))])?,
            Op::LogSumExp => self.log_sum_exp(id)?,
            Op::OneHot(k) => self.one_hot(id, k)?,
            Op::ArgMax => self.arg_max(id)?,
            Op::Window(wop, w) => self.window(id, wop, w)?,
            Op::Flatten => self.simple(id, "Flatten", vec![("axis", Attr::Int(1))])?,
            Op::Unflatten(chw) => self.unflatten(id, chw)?,
        }
        Ok(())
    }

    /// A scalar constant as a `Constant` node.
    fn constant(&mut self, id: NodeId, v: f64) -> Result<(), ExportError> {
        let out = self.name_for(id);
        let attrs = vec![("value_float", Attr::Float(v as f32))];
        self.node("Constant", &[], &[&out], attrs);
        self.bind(id, &out, Elem::Float);
        Ok(())
    }

    /// A leaf is a graph input or an initializer, bound before emission;
    /// any other leaf (optimizer state, a formula's scalar) has no input.
    fn leaf(&mut self, id: NodeId) -> Result<(), ExportError> {
        match self.g.node(id).op {
            Op::Leaf(leaf) if !self.forms.contains_key(&id) => {
                let l = self.g.leaf_info(leaf);
                Err(ExportError::Unsupported(format!(
                    "the {:?} leaf '{}' has no ONNX input",
                    l.kind, l.name
                )))
            }
            _ => Ok(()),
        }
    }

    /// The batch size as a float scalar: `Squeeze(Cast(Shape(x)[0:1]))`.
    fn batch_size(&mut self, id: NodeId) -> Result<(), ExportError> {
        let b = self.batch();
        let to_float = vec![("to", Attr::Int(Elem::Float.onnx()))];
        let f = self.op("batch_f", "Cast", &[&b], to_float);
        let axes = self.ints("axes", &[0]);
        let out = self.name_for(id);
        self.node("Squeeze", &[&f, &axes], &[&out], vec![]);
        self.bind(id, &out, Elem::Float);
        Ok(())
    }

    /// `where(c, a, b)`: `a` where `c` is non-zero; a Cast to bool says the
    /// same (NaN is true in both), and a comparison's bool is used as is.
    fn select(&mut self, id: NodeId) -> Result<(), ExportError> {
        let args = self.g.node(id).args.clone();
        let c = self.form(args[0], Elem::Bool)?;
        let (a, b) = (self.float(args[1])?, self.float(args[2])?);
        let out = self.name_for(id);
        self.node("Where", &[&c, &a, &b], &[&out], vec![]);
        self.bind(id, &out, Elem::Float);
        Ok(())
    }

    /// A sum over axes: `ReduceSum` with the axes as an input (opset 13+).
    fn reduce_sum(&mut self, id: NodeId, axes: Axes) -> Result<(), ExportError> {
        let a = self.float(self.g.node(id).args[0])?;
        let out = self.name_for(id);
        if axes.0 == 0 {
            // ReduceSum with no axes would sum over all of them.
            self.node("Identity", &[&a], &[&out], vec![]);
        } else {
            let list = self.ints("axes", &axis_list(axes));
            let attrs = vec![("keepdims", Attr::Int(0))];
            self.node("ReduceSum", &[&a, &list], &[&out], attrs);
        }
        self.bind(id, &out, Elem::Float);
        Ok(())
    }

    /// Class indices (int64) to one-hot float rows of width `k`.
    fn one_hot(&mut self, id: NodeId, k: u32) -> Result<(), ExportError> {
        let idx = self.form(self.g.node(id).args[0], Elem::Int64)?;
        let depth = self.ints("depth", &[i64::from(k)]);
        let values = self.floats("onehot_values", &[0.0, 1.0]);
        let out = self.name_for(id);
        let attrs = vec![("axis", Attr::Int(-1))];
        self.node("OneHot", &[&idx, &depth, &values], &[&out], attrs);
        self.bind(id, &out, Elem::Float);
        Ok(())
    }

    /// The first largest element's index along the last axis, as int64
    /// (a float `Cast` when arithmetic or an output reads it).
    fn arg_max(&mut self, id: NodeId) -> Result<(), ExportError> {
        let a = self.float(self.g.node(id).args[0])?;
        let out = self.fresh("argmax");
        let attrs = vec![
            ("axis", Attr::Int(-1)),
            ("keepdims", Attr::Int(0)),
            ("select_last_index", Attr::Int(0)),
        ];
        self.node("ArgMax", &[&a], &[&out], attrs);
        self.bind(id, &out, Elem::Int64);
        if self.outputs.contains_key(&id) {
            let f = self.name_for(id);
            self.node(
                "Cast",
                &[&out],
                &[&f],
                vec![("to", Attr::Int(Elem::Float.onnx()))],
            );
            self.bind(id, &f, Elem::Float);
        }
        Ok(())
    }

    /// A `Constant` float32 vector.
    fn floats(&mut self, base: &str, v: &[f32]) -> String {
        let t = TensorProto {
            dims: vec![v.len() as i64],
            data_type: Some(data_type::FLOAT),
            float_data: v.to_vec(),
            ..Default::default()
        };
        self.op(base, "Constant", &[], vec![("value", Attr::Tensor(t))])
    }

    /// A comparison: a bool tensor (converted to 1.0/0.0 when arithmetic reads it).
    fn compare(&mut self, id: NodeId, op_type: &str) -> Result<(), ExportError> {
        let args = self.operands(id)?;
        let out = if self.outputs.contains_key(&id) {
            self.fresh(op_type)
        } else {
            self.name_for(id)
        };
        self.node(op_type, &[&args[0], &args[1]], &[&out], vec![]);
        self.bind(id, &out, Elem::Bool);
        if self.outputs.contains_key(&id) {
            let f = self.name_for(id);
            self.node(
                "Cast",
                &[&out],
                &[&f],
                vec![("to", Attr::Int(Elem::Float.onnx()))],
            );
            self.bind(id, &f, Elem::Float);
        }
        Ok(())
    }

    /// `a * b * ...` as a chain of `Mul` (ONNX's `Mul` takes two operands).
    fn product(&mut self, id: NodeId) -> Result<(), ExportError> {
        let args = self.operands(id)?;
        let mut acc = args[0].clone();
        for (i, a) in args.iter().enumerate().skip(1) {
            let out = if i + 1 == args.len() {
                self.name_for(id)
            } else {
                self.fresh("mul")
            };
            self.node("Mul", &[&acc, a], &[&out], vec![]);
            acc = out;
        }
        self.bind(id, &acc, Elem::Float);
        Ok(())
    }

    /// A matrix product (`MatMul`, or an `Add` of one and a bias) as `Gemm`,
    /// absorbed transposes becoming `transA`/`transB`.
    fn gemm(&mut self, id: NodeId) -> Result<(), ExportError> {
        let (mm, bias) = match self.g.node(id).op {
            Op::Add => self
                .dense_parts(id)
                .map_or((id, None), |(m, b)| (m, Some(b))),
            _ => (id, None),
        };
        let args = self.g.node(mm).args.clone();
        let mut inputs = Vec::new();
        let mut attrs = Vec::new();
        for (a, flag) in args.iter().zip(["transA", "transB"]) {
            if self.absorbed.contains(a) {
                inputs.push(self.float(self.g.node(*a).args[0])?);
                attrs.push((flag, Attr::Int(1)));
            } else {
                inputs.push(self.float(*a)?);
            }
        }
        if let Some(b) = bias {
            inputs.push(self.float(self.g.node(b).args[0])?);
        }
        let refs: Vec<&str> = inputs.iter().map(String::as_str).collect();
        let out = self.name_for(id);
        self.node("Gemm", &refs, &[&out], attrs);
        self.bind(id, &out, Elem::Float);
        Ok(())
    }

    /// `broadcast(a)` along `axes`: `Unsqueeze` at the new axes (unless they
    /// lead, where ONNX broadcasting aligns the rest), then `Expand` to the
    /// node's shape.
    fn broadcast(&mut self, id: NodeId, axes: Axes) -> Result<(), ExportError> {
        let node = self.g.node(id);
        let (arg, shape) = (node.args[0], node.shape.clone());
        let mut a = self.float(arg)?;
        let list = axis_list(axes);
        let leading = list.iter().enumerate().all(|(i, &ax)| i as i64 == ax);
        if !leading {
            let ax = self.ints("axes", &list);
            a = self.op("unsqueeze", "Unsqueeze", &[&a, &ax], vec![]);
        }
        let s = self.shape(&shape);
        let out = self.name_for(id);
        self.node("Expand", &[&a, &s], &[&out], vec![]);
        self.bind(id, &out, Elem::Float);
        Ok(())
    }

    /// `log(sum(exp(a)))` over the last axis written stably, as slope
    /// computes it: `m + log(sum(exp(a - m)))` with `m` the row maximum (the
    /// standard `ReduceLogSumExp` is defined without the shift, and some
    /// engines overflow for large logits).
    fn log_sum_exp(&mut self, id: NodeId) -> Result<(), ExportError> {
        let a = self.float(self.g.node(id).args[0])?;
        let last = self.ints("axes", &[-1]);
        let keep = |k| vec![("keepdims", Attr::Int(k))];
        let m = self.op("row_max", "ReduceMax", &[&a, &last], keep(1));
        let d = self.op("shifted", "Sub", &[&a, &m], vec![]);
        let e = self.op("exp", "Exp", &[&d], vec![]);
        let s = self.op("sum_exp", "ReduceSum", &[&e, &last], keep(0));
        let l = self.op("log_sum_exp", "Log", &[&s], vec![]);
        let m0 = self.op("row_max", "Squeeze", &[&m, &last], vec![]);
        let out = self.name_for(id);
        self.node("Add", &[&l, &m0], &[&out], vec![]);
        self.bind(id, &out, Elem::Float);
        Ok(())
    }

    /// The 1-D int64 `[batch]`: the first dimension of the batch input.
    fn batch(&mut self) -> String {
        if let Some(b) = &self.batch {
            return b.clone();
        }
        let src = self.batch_source.clone();
        let attrs = vec![("start", Attr::Int(0)), ("end", Attr::Int(1))];
        let b = self.op("batch", "Shape", &[&src], attrs);
        self.batch = Some(b.clone());
        b
    }

    /// A 1-D int64 tensor holding `shape`: a constant, or a `Concat` with the
    /// batch size when the shape has the batch axis.
    fn shape(&mut self, shape: &Shape) -> String {
        if let Some(s) = self.shapes.get(shape) {
            return s.clone();
        }
        let fixed = |d: &Dim| match d {
            Dim::Fixed(n) => Some(*n as i64),
            Dim::Batch => None,
        };
        let s = if shape.0.iter().all(|d| fixed(d).is_some()) {
            let dims: Vec<i64> = shape.0.iter().filter_map(fixed).collect();
            self.ints("shape", &dims)
        } else {
            let mut parts = Vec::new();
            let mut run: Vec<i64> = Vec::new();
            for d in &shape.0 {
                match fixed(d) {
                    Some(n) => run.push(n),
                    None => {
                        if !run.is_empty() {
                            parts.push(self.ints("dims", &std::mem::take(&mut run)));
                        }
                        parts.push(self.batch());
                    }
                }
            }
            if !run.is_empty() {
                parts.push(self.ints("dims", &run));
            }
            let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
            self.op("shape", "Concat", &refs, vec![("axis", Attr::Int(0))])
        };
        self.shapes.insert(shape.clone(), s.clone());
        s
    }
}

/// The axes of a set, ascending.
fn axis_list(axes: Axes) -> Vec<i64> {
    (0..8).filter(|i| axes.0 & (1 << i) != 0).collect()
}

fn elem_suffix(e: Elem) -> &'static str {
    match e {
        Elem::Float => "float",
        Elem::Int64 => "int64",
        Elem::Bool => "bool",
    }
}
