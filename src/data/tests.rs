//! Unit tests of CSV loading.
