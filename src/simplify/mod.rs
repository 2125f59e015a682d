//! Stage 5: named rewrite rules run to a fixed point by a bounded runner.
//!
//! The rules live in [`rules::RULES`], one line each with an egg-style name
//! (`mul-one`, `collect-terms`, ...). The runner is a directed rewriter: it
//! walks the graph bottom-up (operands before users), rebuilds each node
//! from its simplified operands, then applies rules at that node until none
//! fires. Passes repeat until a pass changes nothing ([`StopReason::Saturated`])
//! or a limit is hit. Every rewrite adds nodes to the same hash-consed graph,
//! so equal sub-expressions found by the rules become one node.
//!
//! We chose a directed rewriter over e-graphs (`egg`): our rules all point
//! "downhill" (fewer or cheaper nodes, or a canonical order), so there is no
//! need to explore equal forms, and a directed pass keeps the graph's names
//! (`z1`, `a1`) and sharing intact, which the printer and codegen rely on.
//! Measured on the activation table, a full simplification takes
//! microseconds (see `benches/symbolic.rs`).
//!
//! **Architecture Invariant:** `simplify` imports only `graph`.

mod canon;
pub mod rules;

use crate::graph::{Graph, NodeId, Op};
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

/// Bounds on one run.
#[derive(Clone, Debug)]
pub struct Limits {
    /// The most passes over the graph.
    pub iterations: usize,
    /// The most nodes a run may add to the graph.
    pub nodes: usize,
    /// The longest a run may take.
    pub time: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            iterations: 30,
            nodes: 200_000,
            time: Duration::from_secs(5),
        }
    }
}

/// Why the runner stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// A whole pass fired no rule: a fixed point.
    Saturated,
    /// [`Limits::iterations`] passes ran.
    IterationLimit,
    /// The graph grew by more than [`Limits::nodes`].
    NodeLimit,
    /// [`Limits::time`] elapsed.
    TimeLimit,
}

/// One rule application: `rule` rewrote node `before` into node `after`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Applied {
    /// The rule's name, e.g. `mul-one`.
    pub rule: &'static str,
    /// The node the rule matched (its operands already simplified).
    pub before: NodeId,
    /// What it became.
    pub after: NodeId,
}

/// The result of a run.
#[derive(Clone, Debug)]
pub struct Simplified {
    /// The simplified roots, in the order given.
    pub roots: Vec<NodeId>,
    /// Why the run stopped.
    pub stop: StopReason,
    /// How many passes ran.
    pub iterations: usize,
    /// Every rule application, in order.
    pub applied: Vec<Applied>,
    /// Where each node reachable from the original roots ended up.
    map: HashMap<NodeId, NodeId>,
}

impl Simplified {
    /// The simplified form of a node that the original roots depend on
    /// (e.g. a network's `z1`); other nodes map to themselves.
    pub fn get(&self, id: NodeId) -> NodeId {
        self.map.get(&id).copied().unwrap_or(id)
    }
}

/// Simplifies `roots` with the default [`Limits`].
pub fn simplify(graph: &mut Graph, roots: &[NodeId]) -> Simplified {
    simplify_with(graph, roots, &Limits::default())
}

/// How many times rules may fire at one node in one pass; a guard against a
/// pair of rules undoing each other, which would otherwise loop forever.
const MAX_REWRITES_PER_NODE: usize = 64;

/// Simplifies `roots` within `limits`, recording every rule application.
pub fn simplify_with(graph: &mut Graph, roots: &[NodeId], limits: &Limits) -> Simplified {
    let start = Instant::now();
    let start_nodes = graph.dag.node_count();
    let originals = graph.topo_order(roots);
    let mut total: HashMap<NodeId, NodeId> = originals.iter().map(|&n| (n, n)).collect();
    let mut current = roots.to_vec();
    let mut applied = Vec::new();
    let mut iterations = 0;
    let stop = loop {
        if iterations >= limits.iterations {
            break StopReason::IterationLimit;
        }
        iterations += 1;
        let (next, memo, fired) = pass(graph, &current, &mut applied);
        for v in total.values_mut() {
            if let Some(&n) = memo.get(v) {
                *v = n;
            }
        }
        current = next;
        if !fired {
            break StopReason::Saturated;
        }
        if graph.dag.node_count() - start_nodes > limits.nodes {
            break StopReason::NodeLimit;
        }
        if start.elapsed() > limits.time {
            break StopReason::TimeLimit;
        }
    };
    Simplified {
        roots: current,
        stop,
        iterations,
        applied,
        map: total,
    }
}

/// One bottom-up pass. Returns the new roots, where every visited node went,
/// and whether anything changed.
fn pass(
    graph: &mut Graph,
    roots: &[NodeId],
    applied: &mut Vec<Applied>,
) -> (Vec<NodeId>, HashMap<NodeId, NodeId>, bool) {
    let order = graph.topo_order(roots);
    let absorbed = absorbed(graph, &order);
    let mut memo: HashMap<NodeId, NodeId> = HashMap::with_capacity(order.len());
    let mut fired = false;
    for old in order {
        let cx = rules::Context {
            strict: !absorbed.contains(&old),
        };
        let node = graph.node(old).clone();
        let args: Vec<NodeId> = node.args.iter().map(|a| memo[a]).collect();
        let mut cur = if args == node.args {
            old
        } else {
            fired = true;
            rebuild(graph, old, &args)
        };
        for _ in 0..MAX_REWRITES_PER_NODE {
            let hit = rules::RULES
                .iter()
                .find_map(|rule| (rule.apply)(graph, cur, cx).map(|to| (rule.name, to)));
            match hit {
                Some((rule, to)) if to != cur => {
                    applied.push(Applied {
                        rule,
                        before: cur,
                        after: to,
                    });
                    fired = true;
                    cur = to;
                }
                _ => break,
            }
        }
        if cur != old {
            keep_name(graph, old, cur);
        }
        memo.insert(old, cur);
    }
    let new_roots = roots.iter().map(|r| memo[r]).collect();
    (new_roots, memo, fired)
}

/// The nodes of `order` (operands before users) that some root reaches
/// through an operand slot that does not propagate NaN
/// ([`rules::propagates`]), directly or further up.
fn absorbed(graph: &Graph, order: &[NodeId]) -> HashSet<NodeId> {
    let mut out = HashSet::new();
    for &user in order.iter().rev() {
        let hidden = out.contains(&user);
        for (slot, &a) in graph.node(user).args.iter().enumerate() {
            if hidden || !rules::propagates(graph, user, slot) {
                out.insert(a);
            }
        }
    }
    out
}

/// The node `old` with its operands replaced by `args`.
fn rebuild(graph: &mut Graph, old: NodeId, args: &[NodeId]) -> NodeId {
    let node = graph.node(old).clone();
    let built = match node.op {
        Op::Broadcast(axes) => graph.broadcast(args[0], axes, node.shape.clone()),
        op => graph.add(op, args),
    };
    // Simplified operands keep their shapes, so rebuilding cannot fail; if a
    // rule ever broke that, keeping the old node is still correct.
    built.unwrap_or(old)
}

/// Carries a person-facing name (`a1`, `y`) over to the node's simplified
/// form, so the printer still shows `a1` instead of its formula. Leaves and
/// constants keep their own spelling, and a name already there wins.
fn keep_name(graph: &mut Graph, old: NodeId, new: NodeId) {
    let Some(name) = graph.names.get(&old).cloned() else {
        return;
    };
    let plain = matches!(graph.node(new).op, Op::Leaf(_) | Op::Const(_));
    if !plain && !graph.names.contains_key(&new) {
        graph.names.insert(new, name);
    }
}
