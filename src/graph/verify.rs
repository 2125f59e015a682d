//! The graph's well-formedness checker, run by the tests after every stage:
//! every operand exists, edges match operand lists, arities and shapes obey
//! the op table, leaves are declared, and there is no cycle.

use super::{Graph, NodeId, Op};
use petgraph::Direction;
use petgraph::visit::EdgeRef;

/// Checks every invariant of `graph`; the first violation found, in node
/// order, is described in the error.
pub fn verify(graph: &Graph) -> Result<(), String> {
    let mut ids: Vec<NodeId> = graph.dag.node_indices().collect();
    ids.sort();
    for &id in &ids {
        let node = &graph.dag[id];
        for &a in &node.args {
            if !graph.dag.contains_node(a) {
                return Err(format!(
                    "node {id:?} ({}) reads missing node {a:?}",
                    node.op.name()
                ));
            }
        }
        let mut edges: Vec<(usize, NodeId)> = graph
            .dag
            .edges_directed(id, Direction::Incoming)
            .map(|e| (usize::from(*e.weight()), e.source()))
            .collect();
        edges.sort();
        let want: Vec<(usize, NodeId)> = node.args.iter().copied().enumerate().collect();
        if edges != want {
            return Err(format!(
                "node {id:?} ({}) has operand edges {edges:?} but operands {want:?}",
                node.op.name()
            ));
        }
        if let Op::Leaf(l) = node.op
            && l.0 as usize >= graph.leaves.len()
        {
            return Err(format!("node {id:?} is the undeclared leaf {l:?}"));
        }
        let shapes: Vec<&super::Shape> = node.args.iter().map(|&a| &graph.dag[a].shape).collect();
        let shape = match node.op {
            Op::Broadcast(axes) => {
                if shapes.len() != 1 {
                    return Err(format!(
                        "broadcast node {id:?} has {} operands",
                        shapes.len()
                    ));
                }
                Op::broadcast_shape(axes, shapes[0], &node.shape).map(|()| node.shape.clone())
            }
            op => op.shape(&shapes, graph),
        };
        match shape {
            Ok(s) if s == node.shape => {}
            Ok(s) => {
                return Err(format!(
                    "node {id:?} ({}) has shape {:?}, its operands give {s:?}",
                    node.op.name(),
                    node.shape
                ));
            }
            Err(e) => return Err(format!("node {id:?} ({}): {e}", node.op.name())),
        }
    }
    if petgraph::algo::is_cyclic_directed(&graph.dag) {
        return Err("the graph has a cycle".to_string());
    }
    Ok(())
}
