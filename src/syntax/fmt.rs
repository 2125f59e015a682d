//! Canonical formatting.
