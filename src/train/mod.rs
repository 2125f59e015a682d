//! Stage 7: training.
