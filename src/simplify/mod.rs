//! Stage 5: named rewrite rules run to a fixed point by a bounded runner.
