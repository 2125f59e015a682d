//! Constant folding for code generation: every node whose value is the same
//! scalar everywhere and known at compile time, computed once in f64.
//!
//! The simplifier folds constants only where the printed formula stays
//! readable (`exp(0) = 1`, but `sin(pi)` stays as written), so constant-only
//! sub-expressions reach the code generator. Computed in the element type
//! they can be wrong in sign, not just in the last digit: in f32 `pi` rounds
//! up, `sin(pi)` is -8.7e-8 instead of 1.2e-16, and `log(sin(pi))` is NaN
//! where f64 gives -36.6. Folding them here in f64 (with the same
//! [`Op::eval_scalar`] the interpreter uses) and rounding only the result
//! makes the f32 code agree with the f64 code up to one rounding.

use crate::graph::{Graph, NodeId, Op};
use std::collections::HashMap;

/// The f64 value of every node of `order` (operands before users) that is a
/// constant, the batch size, a broadcast of one, or an element-wise op of
/// such nodes only. One pass, linear in the nodes and their operands.
pub(crate) fn fold(graph: &Graph, order: &[NodeId], batch: usize) -> HashMap<NodeId, f64> {
    let mut known: HashMap<NodeId, f64> = HashMap::new();
    let mut vals = Vec::new();
    for &n in order {
        let node = graph.node(n);
        let v = match node.op {
            Op::BatchSize => Some(batch as f64),
            Op::Broadcast(_) => known.get(&node.args[0]).copied(),
            // `eval_scalar` answers for constants and element-wise ops and
            // is `None` for leaves and tensor ops.
            op => {
                vals.clear();
                vals.extend(node.args.iter().map_while(|a| known.get(a).copied()));
                if vals.len() == node.args.len() {
                    op.eval_scalar(&vals)
                } else {
                    None
                }
            }
        };
        if let Some(v) = v {
            known.insert(n, v);
        }
    }
    known
}
