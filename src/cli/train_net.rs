//! The bridge from a checked model to a trainable [`Network`]: lowering
//! (`lower`), reverse-mode differentiation (`diff`) and simplification
//! (`simplify`), kept in one small file so that `train` does not depend
//! on those stages' exact types.

use super::Failure;
use super::common::Loaded;
use crate::train::Network;
use crate::{diff, lower, simplify};
use std::time::Instant;

/// Seconds spent in each stage.
pub struct Timings {
    /// Lowering and differentiation.
    pub lower_diff: f64,
    /// Simplification of the loss, accuracy and gradients.
    pub simplify: f64,
}

/// Lowers the chosen model, differentiates its loss with respect to every
/// parameter, and simplifies the result.
pub fn network(loaded: &Loaded) -> Result<(Network, Timings), Failure> {
    let start = Instant::now();
    let lowered = lower::lower_model(&loaded.program, loaded.model())
        .map_err(|d| Failure::Input(loaded.render(&[d])))?;
    let mut graph = lowered.graph;
    let params: Vec<_> = lowered.params.iter().map(|p| p.node).collect();
    let grads = diff::grad(&mut graph, lowered.loss, &params).grads;
    let lower_diff = start.elapsed().as_secs_f64();

    let start = Instant::now();
    let mut roots = vec![lowered.loss];
    roots.extend(lowered.correct);
    roots.extend(&grads);
    let simplified = simplify::simplify(&mut graph, &roots).roots;
    let (loss, rest) = simplified
        .split_first()
        .expect("simplify returns one root per root given, and there is the loss");
    let (correct, grads) = match lowered.correct {
        Some(_) => (Some(rest[0]), rest[1..].to_vec()),
        None => (None, rest.to_vec()),
    };
    let simplify = start.elapsed().as_secs_f64();
    let net = Network {
        graph,
        x: lowered.x,
        t: lowered.t,
        params,
        grads,
        loss: *loss,
        correct,
    };
    Ok((
        net,
        Timings {
            lower_diff,
            simplify,
        },
    ))
}
