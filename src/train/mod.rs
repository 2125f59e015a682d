//! Stage 7: training.

pub mod rng;
