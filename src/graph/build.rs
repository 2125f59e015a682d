//! Smart constructors: build nodes in canonical form, folding the trivial
//! cases (`x*1`, `x+0`, `0*x`, constant arithmetic) as they are made.
//!
//! Canonical forms keep hash-consing effective: `a - b` is
//! `a + (-1)*b`, `a/b` is `a * recip(b)`, `-a` is `(-1)*a`; `Add` and `Mul`
//! are n-ary; constants are scalars `[]`, broadcast explicitly when combined
//! with tensors. The simplifier does everything beyond these local folds.
//!
//! These constructors are for graphs whose shapes are right by construction
//! (lowering, differentiation, rewriting): operands of an element-wise op
//! must have one shape, except scalars, which are broadcast to it. A shape
//! mismatch here is a bug in the caller, so it panics with the shapes.

use super::{Axes, Dim, Graph, NodeId, Op, Shape};

impl Graph {
    /// `op(args)`, for callers that built the operands' shapes to fit.
    pub fn make(&mut self, op: Op, args: &[NodeId]) -> NodeId {
        match self.add(op, args) {
            Ok(id) => id,
            Err(e) => panic!("internal error: the caller built an ill-shaped node: {e}"),
        }
    }

    /// The value of a constant node, looking through broadcasts of it.
    pub fn const_value(&self, id: NodeId) -> Option<f64> {
        let node = self.node(id);
        match node.op {
            Op::Const(c) => Some(c.value()),
            Op::Broadcast(_) => self.const_value(node.args[0]),
            _ => None,
        }
    }

    /// True when `id` is the constant `v` (possibly broadcast).
    pub fn is_const(&self, id: NodeId, v: f64) -> bool {
        self.const_value(id) == Some(v)
    }

    /// The constant `v` with the given shape: a scalar, or a scalar broadcast.
    pub fn constant_like(&mut self, v: f64, shape: &Shape) -> NodeId {
        let c = self.constant(v);
        self.splat(c, shape)
    }

    /// A scalar `a` broadcast along every axis to `shape` (`a` itself when
    /// `shape` is a scalar too).
    pub fn splat(&mut self, a: NodeId, shape: &Shape) -> NodeId {
        if self.node(a).shape == *shape {
            return a;
        }
        let axes = Axes(((1u16 << shape.0.len()) - 1) as u8);
        match self.broadcast(a, axes, shape.clone()) {
            Ok(id) => id,
            Err(e) => panic!("internal error: only scalars are splatted: {e}"),
        }
    }

    /// The operands with every scalar broadcast to the largest operand shape.
    fn unify(&mut self, args: &[NodeId]) -> Vec<NodeId> {
        let shape = args
            .iter()
            .map(|&a| self.node(a).shape.clone())
            .max_by_key(|s| s.0.len())
            .unwrap_or_default();
        args.iter()
            .map(|&a| {
                if self.node(a).shape.0.is_empty() {
                    self.splat(a, &shape)
                } else {
                    a
                }
            })
            .collect()
    }

    /// The shape of the largest operand.
    fn common_shape(&self, args: &[NodeId]) -> Shape {
        args.iter()
            .map(|&a| self.node(a).shape.clone())
            .max_by_key(|s| s.0.len())
            .unwrap_or_default()
    }

    /// `a + b + ...`: zeros dropped, constants summed into one (placed
    /// first), one operand returned as is.
    pub fn add_n(&mut self, args: &[NodeId]) -> NodeId {
        self.nary(Op::Add, args, 0.0, |a, b| a + b)
    }

    /// `a * b * ...`: ones dropped, constants multiplied into one (placed
    /// first, as in `2*x`), zero if any factor is the constant zero.
    pub fn mul_n(&mut self, args: &[NodeId]) -> NodeId {
        let shape = self.common_shape(args);
        if args.iter().any(|&a| self.is_const(a, 0.0)) {
            return self.constant_like(0.0, &shape);
        }
        self.nary(Op::Mul, args, 1.0, |a, b| a * b)
    }

    fn nary(&mut self, op: Op, args: &[NodeId], unit: f64, f: fn(f64, f64) -> f64) -> NodeId {
        let shape = self.common_shape(args);
        let mut folded = unit;
        let mut kept = Vec::new();
        for &a in args {
            match self.const_value(a) {
                Some(v) => folded = f(folded, v),
                None => kept.push(a),
            }
        }
        if folded != unit {
            let c = self.constant(folded);
            kept.insert(0, c);
        }
        match kept.len() {
            0 => self.constant_like(unit, &shape),
            1 => {
                let only = kept[0];
                self.splat(only, &shape)
            }
            _ => {
                let kept = self.unify(&kept);
                self.make(op, &kept)
            }
        }
    }

    /// `a + b`.
    pub fn add2(&mut self, a: NodeId, b: NodeId) -> NodeId {
        self.add_n(&[a, b])
    }

    /// `a * b`.
    pub fn mul2(&mut self, a: NodeId, b: NodeId) -> NodeId {
        self.mul_n(&[a, b])
    }

    /// `-a` as `(-1)*a`; `-(-a)` is `a`.
    pub fn neg(&mut self, a: NodeId) -> NodeId {
        let node = self.node(a);
        if node.op == Op::Mul && node.args.len() == 2 && self.is_const(node.args[0], -1.0) {
            return self.node(a).args[1];
        }
        let m1 = self.constant(-1.0);
        self.mul2(m1, a)
    }

    /// `a - b` as `a + (-1)*b`.
    pub fn sub(&mut self, a: NodeId, b: NodeId) -> NodeId {
        let nb = self.neg(b);
        self.add2(a, nb)
    }

    /// `1/a`; folded for constants whose reciprocal is exact, and `1/(1/a)` is `a`.
    pub fn recip(&mut self, a: NodeId) -> NodeId {
        if let Some(c) = self.const_value(a) {
            let r = 1.0 / c;
            let mantissa = c.to_bits() & ((1u64 << 52) - 1);
            if r.is_finite() && mantissa == 0 {
                let shape = self.node(a).shape.clone();
                return self.constant_like(r, &shape);
            }
        }
        if self.node(a).op == Op::Recip {
            return self.node(a).args[0];
        }
        self.make(Op::Recip, &[a])
    }

    /// `a / b` as `a * recip(b)`.
    pub fn div(&mut self, a: NodeId, b: NodeId) -> NodeId {
        let rb = self.recip(b);
        self.mul2(a, rb)
    }

    /// `a ^ n` for a constant `n`: `a^1` is `a`, `a^0` is 1, constants fold.
    pub fn pow_const(&mut self, a: NodeId, n: f64) -> NodeId {
        let shape = self.node(a).shape.clone();
        if n == 1.0 {
            return a;
        }
        if n == 0.0 {
            return self.constant_like(1.0, &shape);
        }
        if let Some(c) = self.const_value(a) {
            return self.constant_like(c.powf(n), &shape);
        }
        let e = self.constant_like(n, &shape);
        self.make(Op::Pow, &[a, e])
    }

    /// `a ^ b`, through [`Graph::pow_const`] when `b` is a constant.
    pub fn pow(&mut self, a: NodeId, b: NodeId) -> NodeId {
        if let Some(n) = self.const_value(b) {
            let shape = self.common_shape(&[a, b]);
            let a = self.splat(a, &shape);
            return self.pow_const(a, n);
        }
        let args = self.unify(&[a, b]);
        self.make(Op::Pow, &args)
    }

    /// An element-wise op of any arity with scalars broadcast to the others' shape.
    pub fn elementwise(&mut self, op: Op, args: &[NodeId]) -> NodeId {
        let args = self.unify(args);
        self.make(op, &args)
    }

    /// `where(c, a, b)`; a constant condition picks its branch.
    pub fn select(&mut self, c: NodeId, a: NodeId, b: NodeId) -> NodeId {
        let shape = self.common_shape(&[c, a, b]);
        match self.const_value(c) {
            Some(v) if v != 0.0 => self.splat(a, &shape),
            Some(_) => self.splat(b, &shape),
            None => self.elementwise(Op::Where, &[c, a, b]),
        }
    }

    /// `aᵀ`: `(aᵀ)ᵀ` is `a` and `(p·q)ᵀ` is `qᵀ·pᵀ`, so gradients of
    /// `x·Wᵀ` come out as `δᵀ·x` and `δ·W` with no transposed products.
    pub fn transpose(&mut self, a: NodeId) -> NodeId {
        let node = self.node(a).clone();
        match node.op {
            Op::Transpose => node.args[0],
            Op::MatMul => {
                let qt = self.transpose(node.args[1]);
                let pt = self.transpose(node.args[0]);
                self.make(Op::MatMul, &[qt, pt])
            }
            _ => self.make(Op::Transpose, &[a]),
        }
    }

    /// The sum over `axes` (the operand itself for no axes).
    pub fn sum(&mut self, a: NodeId, axes: Axes) -> NodeId {
        if axes.0 == 0 {
            return a;
        }
        self.make(Op::Sum(axes), &[a])
    }

    /// The sum of every element, a scalar.
    pub fn sum_all(&mut self, a: NodeId) -> NodeId {
        let rank = self.node(a).shape.0.len();
        self.sum(a, Axes(((1u16 << rank) - 1) as u8))
    }

    /// `a` repeated along `axes` to `shape` (the operand itself for no axes).
    pub fn broadcast_to(&mut self, a: NodeId, axes: Axes, shape: &Shape) -> NodeId {
        if axes.0 == 0 {
            return a;
        }
        match self.broadcast(a, axes, shape.clone()) {
            Ok(id) => id,
            Err(e) => panic!("internal error: the caller built an ill-shaped broadcast: {e}"),
        }
    }

    /// The number of elements of a shape as a graph value: a constant, or
    /// a product with [`Op::BatchSize`] when the shape has the batch axis.
    pub fn element_count(&mut self, shape: &Shape) -> NodeId {
        let mut fixed = 1.0;
        let mut batch = 0;
        for d in &shape.0 {
            match d {
                Dim::Fixed(n) => fixed *= *n as f64,
                Dim::Batch => batch += 1,
            }
        }
        let mut factors = vec![self.constant(fixed)];
        for _ in 0..batch {
            factors.push(self.make(Op::BatchSize, &[]));
        }
        self.mul_n(&factors)
    }
}
