//! The f64 reference interpreter: evaluates any graph directly, one node at
//! a time, in topological order.
//!
//! It is the oracle of the tests (JIT against interpreter, symbolic
//! derivatives against finite differences), never the engine behind
//! `train`, `predict` or `grad`. It favours obviously-correct loops and the
//! numerically stable textbook forms over speed.

use super::{Dim, Graph, NodeId, Op, Shape};
use std::collections::{BTreeMap, HashMap};

/// A dense f64 tensor, row-major. A scalar has shape `[]` and one element.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    /// The size of each axis.
    pub shape: Vec<usize>,
    /// The elements, last axis fastest.
    pub data: Vec<f64>,
}

impl Tensor {
    /// A tensor from its shape and elements.
    ///
    /// Fails when the number of elements does not match the shape.
    pub fn new(shape: Vec<usize>, data: Vec<f64>) -> Result<Tensor, EvalError> {
        let n: usize = shape.iter().product();
        if n != data.len() {
            return Err(EvalError(format!(
                "a tensor of shape {shape:?} needs {n} elements, got {}",
                data.len()
            )));
        }
        Ok(Tensor { shape, data })
    }

    /// The scalar `v`.
    pub fn scalar(v: f64) -> Tensor {
        Tensor {
            shape: vec![],
            data: vec![v],
        }
    }

    /// The tensor of the given shape filled with `v`.
    pub fn filled(shape: Vec<usize>, v: f64) -> Tensor {
        let n = shape.iter().product();
        Tensor {
            shape,
            data: vec![v; n],
        }
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// True when the tensor has no elements (an axis of size 0).
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The value of a scalar (the first element of any tensor).
    pub fn item(&self) -> f64 {
        self.data.first().copied().unwrap_or(f64::NAN)
    }
}

/// The values of the leaves, by leaf name (`x`, `t`, `dense1.weight`, ...).
pub type Env = BTreeMap<String, Tensor>;

/// Why a graph could not be evaluated: a missing or mis-shaped leaf value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EvalError(pub String);

impl std::fmt::Display for EvalError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for EvalError {}

/// The concrete sizes of a symbolic shape for a batch of `batch` rows.
pub fn concrete(shape: &Shape, batch: usize) -> Vec<usize> {
    shape
        .0
        .iter()
        .map(|d| match d {
            Dim::Batch => batch,
            Dim::Fixed(n) => *n,
        })
        .collect()
}

/// Evaluates `roots` with the leaves bound by `leaves`, for a batch of
/// `batch` rows. Every node the roots depend on is computed exactly once.
pub fn eval(
    graph: &Graph,
    roots: &[NodeId],
    leaves: &Env,
    batch: usize,
) -> Result<Vec<Tensor>, EvalError> {
    let mut values: HashMap<NodeId, Tensor> = HashMap::new();
    for id in graph.topo_order(roots) {
        let node = graph.node(id);
        let shape = concrete(&node.shape, batch);
        let value = match node.op {
            Op::Leaf(leaf) => {
                let info = graph.leaf_info(leaf);
                let v = leaves.get(&info.name).ok_or_else(|| {
                    EvalError(format!("no value given for the leaf `{}`", info.name))
                })?;
                if v.shape != shape || v.data.len() != shape.iter().product::<usize>() {
                    return Err(EvalError(format!(
                        "the leaf `{}` needs shape {shape:?}, got {:?} with {} elements",
                        info.name,
                        v.shape,
                        v.data.len()
                    )));
                }
                v.clone()
            }
            op => {
                let args: Vec<&Tensor> = node
                    .args
                    .iter()
                    .map(|a| {
                        values
                            .get(a)
                            .expect("topological order computes operands before their users")
                    })
                    .collect();
                op_eval(op, &args, &shape, batch)
            }
        };
        values.insert(id, value);
    }
    Ok(roots
        .iter()
        .map(|r| values[r].clone())
        .collect::<Vec<Tensor>>())
}

/// Evaluates one scalar-only graph root where every leaf is a scalar, given
/// by name. A convenience for tests of formulas.
pub fn eval_scalar(graph: &Graph, root: NodeId, vars: &[(&str, f64)]) -> Result<f64, EvalError> {
    let env: Env = vars
        .iter()
        .map(|(n, v)| (n.to_string(), Tensor::scalar(*v)))
        .collect();
    Ok(eval(graph, &[root], &env, 1)?[0].item())
}

pub use super::op::{sigmoid, softplus};

/// Computes one op on operand values; `shape` is the node's concrete shape.
///
/// Leaves are read from the environment by [`eval`]; operands are assumed
/// well-shaped (the graph's shape rules guarantee it).
fn op_eval(op: Op, args: &[&Tensor], shape: &[usize], batch: usize) -> Tensor {
    match op {
        Op::Const(c) => Tensor::scalar(c.value()),
        Op::Leaf(_) => {
            unreachable!("eval reads leaves from the environment before calling op_eval")
        }
        Op::BatchSize => Tensor::scalar(batch as f64),
        Op::Neg
        | Op::Recip
        | Op::Exp
        | Op::Log
        | Op::Sqrt
        | Op::Abs
        | Op::Sin
        | Op::Cos
        | Op::Tanh
        | Op::Sigmoid
        | Op::Relu
        | Op::Softplus
        | Op::Add
        | Op::Mul
        | Op::Pow
        | Op::Max
        | Op::Min
        | Op::Lt
        | Op::Le
        | Op::Gt
        | Op::Ge
        | Op::Eq
        | Op::Where => elementwise(op, args, shape),
        Op::MatMul => matmul(args[0], args[1]),
        Op::Transpose => {
            let (m, n) = (args[0].shape[0], args[0].shape[1]);
            let mut data = vec![0.0; m * n];
            for i in 0..m {
                for j in 0..n {
                    data[j * m + i] = args[0].data[i * n + j];
                }
            }
            Tensor {
                shape: vec![n, m],
                data,
            }
        }
        Op::Broadcast(axes) => {
            // Each output element reads the input element at the output's
            // index with the broadcast axes removed.
            let mut out = Tensor::filled(shape.to_vec(), 0.0);
            for (flat, o) in out.data.iter_mut().enumerate() {
                *o = args[0].data[reduced_index(flat, shape, axes.0)];
            }
            out
        }
        Op::Sum(axes) => {
            let from = &args[0].shape;
            let mut out = Tensor::filled(shape.to_vec(), 0.0);
            for (flat, &v) in args[0].data.iter().enumerate() {
                out.data[reduced_index(flat, from, axes.0)] += v;
            }
            out
        }
        Op::Softmax => rows(args[0], shape, |row, out| {
            let m = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let total: f64 = row.iter().map(|&v| (v - m).exp()).sum();
            out.extend(row.iter().map(|&v| (v - m).exp() / total));
        }),
        Op::LogSumExp => rows(args[0], shape, |row, out| {
            let m = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            if m.is_infinite() {
                // All -inf gives -inf; any +inf gives +inf; no NaN from inf - inf.
                out.push(m);
            } else {
                out.push(m + row.iter().map(|&v| (v - m).exp()).sum::<f64>().ln());
            }
        }),
        Op::ArgMax => rows(args[0], shape, |row, out| {
            let mut best = 0;
            for (i, &v) in row.iter().enumerate() {
                if v > row[best] {
                    best = i;
                }
            }
            out.push(best as f64);
        }),
        Op::Window(w, win) => {
            let t4: Vec<super::conv::Tensor4> = args
                .iter()
                .map(|a| super::conv::Tensor4 {
                    data: &a.data,
                    dims: [a.shape[0], a.shape[1], a.shape[2], a.shape[3]],
                })
                .collect();
            let out = [shape[0], shape[1], shape[2], shape[3]];
            Tensor {
                shape: shape.to_vec(),
                data: super::conv::eval(w, win, &t4, out),
            }
        }
        // Row-major reshapes keep the data as it is.
        Op::Flatten | Op::Unflatten(_) => Tensor {
            shape: shape.to_vec(),
            data: args[0].data.clone(),
        },
        Op::OneHot(k) => {
            let k = k as usize;
            let mut out = Tensor::filled(shape.to_vec(), 0.0);
            for (r, &c) in args[0].data.iter().enumerate() {
                if c >= 0.0 && c.fract() == 0.0 && (c as usize) < k {
                    out.data[r * k + c as usize] = 1.0;
                }
            }
            out
        }
    }
}

/// An element-wise op, element by element through [`Op::eval_scalar`].
fn elementwise(op: Op, args: &[&Tensor], shape: &[usize]) -> Tensor {
    let n: usize = shape.iter().product();
    let mut operands = Vec::with_capacity(args.len());
    let data = (0..n)
        .map(|i| {
            operands.clear();
            operands.extend(args.iter().map(|a| a.data[i]));
            op.eval_scalar(&operands)
                .expect("every element-wise op has a scalar evaluation")
        })
        .collect();
    Tensor {
        shape: shape.to_vec(),
        data,
    }
}

/// The flat index, in the shape with the bits of `axes` removed, of the
/// element at flat index `flat` of `shape`.
fn reduced_index(flat: usize, shape: &[usize], axes: u8) -> usize {
    let mut rest = flat;
    let mut index = 0;
    let mut stride = 1;
    for (axis, &size) in shape.iter().enumerate().rev() {
        let i = rest % size.max(1);
        rest /= size.max(1);
        if axes & (1 << axis) == 0 {
            index += i * stride;
            stride *= size;
        }
    }
    index
}

/// Applies `f` to every row along the last axis, collecting what it pushes
/// (one value per row or a whole row) into a tensor of the node's `shape`.
fn rows(a: &Tensor, shape: &[usize], f: impl Fn(&[f64], &mut Vec<f64>)) -> Tensor {
    let width = *a
        .shape
        .last()
        .expect("the shape rule rejects scalars for row ops");
    // Every axis but the last counts rows, so a rank-3 tensor is rows of
    // rows; an empty last axis still gives each row its (empty) call.
    let rows: usize = a.shape[..a.shape.len() - 1].iter().product();
    let mut data = Vec::with_capacity(a.data.len());
    for r in 0..rows {
        f(&a.data[r * width..(r + 1) * width], &mut data);
    }
    Tensor {
        shape: shape.to_vec(),
        data,
    }
}

fn matmul(a: &Tensor, b: &Tensor) -> Tensor {
    let (m, k, n) = (a.shape[0], a.shape[1], b.shape[1]);
    let mut data = vec![0.0; m * n];
    for i in 0..m {
        for p in 0..k {
            let x = a.data[i * k + p];
            for j in 0..n {
                data[i * n + j] += x * b.data[p * n + j];
            }
        }
    }
    Tensor {
        shape: vec![m, n],
        data,
    }
}
