//! The bridge from a checked model to a trainable [`Network`]: lowering and
//! differentiation (teammate `graphcore`'s API), kept in one small file so
//! that `train_cmd` does not depend on their exact signatures.

use super::Failure;
use super::common::Loaded;
use crate::train::Network;

/// Lowers the chosen model and differentiates its loss.
pub fn network(_loaded: &Loaded) -> Result<Network, Failure> {
    Err(Failure::Input(
        "error: `slope train` needs the lowering stage, which is not built yet\n".into(),
    ))
}
