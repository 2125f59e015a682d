//! Unit tests of the checker.
