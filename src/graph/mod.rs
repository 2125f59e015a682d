//! Stage 3: the one intermediate representation — a hash-consed DAG of
//! tensor operations on `petgraph::StableDiGraph`.
//!
//! **Architecture Invariant:** `graph` imports nothing of `syntax`, `check`,
//! `lower`, `diff`, `simplify`, `codegen`, `train` or `cli`. Diff, simplify
//! and codegen can therefore be tested from graphs built by hand.

pub mod build;
pub mod conv;
pub mod dot;
pub mod eval;
pub mod facts;
pub mod op;
pub mod print;
pub mod rule;
pub mod verify;

pub use facts::{Fact, NanFlow};
pub use op::{Axes, Const, Contribution, LeafId, Op, Rule, Window, WindowOp};

/// A dimension: the symbolic batch size or a fixed size.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dim {
    /// The number of rows in the batch, known only when code is generated.
    Batch,
    /// A fixed size.
    Fixed(usize),
}

/// A tensor shape of any rank (0 is a scalar), row-major: the last axis is
/// contiguous. Broadcasts and sums name axes by an [`Axes`] bit set, so they
/// apply to ranks up to 8.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Shape(pub Vec<Dim>);

/// `[B, 4]`, `[]` for a scalar (as error messages print shapes).
impl std::fmt::Display for Shape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[")?;
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            match d {
                Dim::Batch => f.write_str("B")?,
                Dim::Fixed(n) => write!(f, "{n}")?,
            }
        }
        f.write_str("]")
    }
}

/// `{0, 2, 3}` (as error messages print axis sets).
impl std::fmt::Display for Axes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let axes: Vec<String> = (0..8)
            .filter(|i| self.0 & (1 << i) != 0)
            .map(|i| i.to_string())
            .collect();
        write!(f, "{{{}}}", axes.join(", "))
    }
}

/// What a leaf stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LeafKind {
    /// The input rows `x`, `[B, in]`.
    Input,
    /// The targets `t`: `[B, K]`, or class indices `[B]` for cross-entropy.
    Target,
    /// A trainable parameter (`dense1.weight`, `dense1.bias`).
    Param,
    /// Optimizer state of the same shape as a parameter (momentum, Adam's `m` and `v`).
    State,
    /// A scalar variable of a formula (`x` in `slope diff`), or a runtime
    /// scalar such as an optimizer's step count.
    Scalar,
    /// A gradient of a parameter's shape computed by another entry point
    /// (one thread's share of a batch, see `train::shard`).
    Grad,
}

/// A leaf's description.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Leaf {
    /// Its name, e.g. `x`, `t`, `dense1.weight`.
    pub name: String,
    /// What it stands for.
    pub kind: LeafKind,
    /// Its shape.
    pub shape: Shape,
}

use petgraph::stable_graph::{NodeIndex, StableDiGraph};
use std::collections::HashMap;

/// A node of the graph, by index. Stable: removing other nodes never changes it.
pub type NodeId = NodeIndex<u32>;

/// One operation with its operands and inferred shape.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    /// The operation.
    pub op: Op,
    /// Operands in order (also stored as edges `operand -> node` weighted by slot).
    pub args: Vec<NodeId>,
    /// The result's shape.
    pub shape: Shape,
}

/// The graph: nodes, leaves, role names, and the hash-consing table.
#[derive(Clone, Debug, Default)]
pub struct Graph {
    /// Nodes; edges run from operand to user, weighted by operand slot.
    pub dag: StableDiGraph<Node, u8>,
    /// Leaves by [`LeafId`].
    pub leaves: Vec<Leaf>,
    /// Names for people (`z1`, `a1`, `y`, `δ2`), printed instead of the node's formula.
    pub names: HashMap<NodeId, String>,
    cons: HashMap<(Op, Vec<NodeId>), NodeId>,
    /// Leaves by name: a deep model declares thousands, and a scan of
    /// `leaves` per declaration made building its graph quadratic.
    leaf_ids: HashMap<String, LeafId>,
    bcast: HashMap<((Op, Vec<NodeId>), Shape), NodeId>,
}

/// An ill-formed node: wrong arity or incompatible shapes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShapeError(pub String);

impl std::fmt::Display for ShapeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ShapeError {}

impl Graph {
    /// An empty graph.
    pub fn new() -> Graph {
        Graph::default()
    }

    /// Declares a leaf and returns its node. Declaring the same name twice
    /// returns the first node.
    pub fn leaf(&mut self, name: &str, kind: LeafKind, shape: Shape) -> NodeId {
        if let Some(&id) = self.leaf_ids.get(name) {
            return self.cons[&(Op::Leaf(id), Vec::new())];
        }
        let id = LeafId(self.leaves.len() as u32);
        self.leaf_ids.insert(name.to_string(), id);
        self.leaves.push(Leaf {
            name: name.to_string(),
            kind,
            shape,
        });
        self.intern(Op::Leaf(id), Vec::new())
            .expect("a leaf has no operands, so its shape is always valid")
    }

    /// The scalar constant `v`.
    pub fn constant(&mut self, v: f64) -> NodeId {
        self.intern(Op::Const(Const::new(v)), Vec::new())
            .expect("a constant has no operands, so its shape is always valid")
    }

    /// The node `op(args)`, shared with any structurally equal node already
    /// present (hash-consing). Fails on wrong arity or shapes.
    pub fn add(&mut self, op: Op, args: &[NodeId]) -> Result<NodeId, ShapeError> {
        self.intern(op, args.to_vec())
    }

    fn intern(&mut self, op: Op, args: Vec<NodeId>) -> Result<NodeId, ShapeError> {
        if let Some(&id) = self.cons.get(&(op, args.clone())) {
            return Ok(id);
        }
        let arg_shapes: Vec<&Shape> = args.iter().map(|&a| &self.dag[a].shape).collect();
        let shape = op.shape(&arg_shapes, self)?;
        let id = self.dag.add_node(Node {
            op,
            args: args.clone(),
            shape,
        });
        for (slot, &a) in args.iter().enumerate() {
            self.dag.add_edge(a, id, slot as u8);
        }
        self.cons.insert((op, args), id);
        Ok(id)
    }

    /// `operand` repeated along `axes` to the shape `to` (hash-consed like
    /// every node; the target shape is part of the node's identity).
    pub fn broadcast(
        &mut self,
        operand: NodeId,
        axes: Axes,
        to: Shape,
    ) -> Result<NodeId, ShapeError> {
        Op::broadcast_shape(axes, &self.dag[operand].shape, &to)?;
        let key = (Op::Broadcast(axes), vec![operand]);
        if let Some(&id) = self.bcast.get(&(key.clone(), to.clone())) {
            return Ok(id);
        }
        let id = self.dag.add_node(Node {
            op: Op::Broadcast(axes),
            args: vec![operand],
            shape: to.clone(),
        });
        self.dag.add_edge(operand, id, 0);
        self.bcast.insert((key, to), id);
        Ok(id)
    }

    /// The node `id`.
    pub fn node(&self, id: NodeId) -> &Node {
        &self.dag[id]
    }

    /// The leaf description of a [`Op::Leaf`] node.
    pub fn leaf_info(&self, id: LeafId) -> &Leaf {
        &self.leaves[id.0 as usize]
    }

    /// Every node that `roots` depend on (roots included), operands before
    /// users, in a deterministic order (depth-first by operand slot).
    pub fn topo_order(&self, roots: &[NodeId]) -> Vec<NodeId> {
        self.topo_order_above(roots, &[])
    }

    /// [`Graph::topo_order`] without what lies below `floor` nodes: they are
    /// included but their operands are not visited (so the local derivative
    /// of one layer does not walk every layer under it).
    pub fn topo_order_above(&self, roots: &[NodeId], floor: &[NodeId]) -> Vec<NodeId> {
        let mut seen = std::collections::HashSet::new();
        let mut order = Vec::new();
        // An explicit stack: graphs from user input may be deep.
        let mut stack: Vec<(NodeId, usize)> = Vec::new();
        for &root in roots {
            if seen.insert(root) {
                stack.push((root, 0));
            }
            while let Some(&mut (id, ref mut next)) = stack.last_mut() {
                let args: &[NodeId] = if floor.contains(&id) {
                    &[]
                } else {
                    &self.dag[id].args
                };
                if *next < args.len() {
                    let a = args[*next];
                    *next += 1;
                    if seen.insert(a) {
                        stack.push((a, 0));
                    }
                } else {
                    order.push(id);
                    stack.pop();
                }
            }
        }
        order
    }
}
