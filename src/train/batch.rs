//! Splitting rows into training and validation sets, seeded shuffling, and
//! gathering batches into preallocated buffers.
//!
//! Rows are never copied around as a whole: a split is two lists of row
//! indices into the [`Dataset`], and a batch is gathered from the indices
//! into buffers allocated once, so an epoch allocates nothing.

use super::rng::Rng;
use crate::data::Dataset;

/// The RNG stream for shuffling (initialisation uses stream 0).
pub const SHUFFLE_STREAM: u64 = 1;

/// Row indices of the training and validation sets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Split {
    /// Training rows, in the order of the first epoch before its shuffle.
    pub train: Vec<usize>,
    /// Held-out rows (the last fraction, after the seeded permutation).
    pub validation: Vec<usize>,
}

/// How many of `rows` rows a validation fraction holds out: `rows·F`
/// rounded to the nearest row, at least one when `F > 0`.
pub fn validation_rows(rows: usize, fraction: f64) -> usize {
    if fraction <= 0.0 || rows == 0 {
        return 0;
    }
    ((rows as f64 * fraction).round() as usize).clamp(1, rows)
}

/// Splits `rows` rows (spec §6): with `shuffle`, the rows are permuted once
/// with `rng` before the last `validation_rows(rows, fraction)` are held out;
/// without it the literal last rows are held out.
pub fn split(rows: usize, fraction: f64, shuffle: bool, rng: &mut Rng) -> Split {
    let mut order: Vec<usize> = (0..rows).collect();
    if shuffle {
        rng.shuffle(&mut order);
    }
    let n_val = validation_rows(rows, fraction);
    let validation = order.split_off(rows - n_val);
    Split {
        train: order,
        validation,
    }
}

/// Buffers for one batch of features and targets, allocated once for the
/// largest batch and sliced to the current batch's size.
#[derive(Clone, Debug)]
pub struct BatchBuf {
    /// Features, `rows × n_features`, row-major.
    pub x: Vec<f32>,
    /// Targets, `rows × n_targets`, row-major.
    pub t: Vec<f32>,
    n_features: usize,
    n_targets: usize,
}

impl BatchBuf {
    /// Buffers for up to `capacity` rows of `data`.
    pub fn new(capacity: usize, data: &Dataset) -> BatchBuf {
        BatchBuf {
            x: vec![0.0; capacity * data.n_features()],
            t: vec![0.0; capacity * data.n_targets()],
            n_features: data.n_features(),
            n_targets: data.n_targets(),
        }
    }

    /// Copies the rows `indices` of `data` into the front of the buffers and
    /// returns the filled slices `(x, t)`. Consecutive indices (every batch
    /// of an unshuffled run) are returned in place, without a copy.
    pub fn gather<'a>(
        &'a mut self,
        data: &'a Dataset,
        indices: &[usize],
    ) -> (&'a [f32], &'a [f32]) {
        let (nf, nt) = (self.n_features, self.n_targets);
        if let Some(&first) = indices.first()
            && indices.iter().enumerate().all(|(i, &row)| row == first + i)
        {
            let end = first + indices.len();
            return (
                &data.features[first * nf..end * nf],
                &data.targets[first * nt..end * nt],
            );
        }
        for (i, &row) in indices.iter().enumerate() {
            self.x[i * nf..(i + 1) * nf].copy_from_slice(&data.features[row * nf..(row + 1) * nf]);
            self.t[i * nt..(i + 1) * nt].copy_from_slice(&data.targets[row * nt..(row + 1) * nt]);
        }
        (&self.x[..indices.len() * nf], &self.t[..indices.len() * nt])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_row_counts() {
        assert_eq!(validation_rows(150, 0.0), 0);
        assert_eq!(validation_rows(150, 0.2), 30);
        assert_eq!(validation_rows(4, 0.1), 1);
        assert_eq!(validation_rows(1797, 0.2), 359);
    }

    #[test]
    fn split_without_shuffle_holds_out_the_last_rows() {
        let s = split(10, 0.3, false, &mut Rng::new(1, SHUFFLE_STREAM));
        assert_eq!(s.train, (0..7).collect::<Vec<_>>());
        assert_eq!(s.validation, vec![7, 8, 9]);
    }

    #[test]
    fn split_with_shuffle_is_a_seeded_partition() {
        let a = split(50, 0.2, true, &mut Rng::new(3, SHUFFLE_STREAM));
        let b = split(50, 0.2, true, &mut Rng::new(3, SHUFFLE_STREAM));
        assert_eq!(a, b);
        assert_eq!(a.validation.len(), 10);
        let mut all: Vec<usize> = a.train.iter().chain(&a.validation).copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..50).collect::<Vec<_>>());
        assert_ne!(a.validation, (40..50).collect::<Vec<_>>());
    }

    #[test]
    fn gather_copies_rows_in_index_order() {
        let data = Dataset {
            columns: vec!["a".into(), "b".into(), "y".into()],
            feature_names: vec!["a".into(), "b".into()],
            target_names: vec!["y".into()],
            rows: 3,
            features: vec![0.0, 1.0, 10.0, 11.0, 20.0, 21.0],
            targets: vec![0.5, 1.5, 2.5],
        };
        let mut buf = BatchBuf::new(2, &data);
        let (x, t) = buf.gather(&data, &[2, 0]);
        assert_eq!(x, &[20.0, 21.0, 0.0, 1.0]);
        assert_eq!(t, &[2.5, 0.5]);
        let (x, t) = buf.gather(&data, &[1]);
        assert_eq!(x, &[10.0, 11.0]);
        assert_eq!(t, &[1.5]);
        // Consecutive rows are returned in place (and may exceed capacity).
        let (x, t) = buf.gather(&data, &[0, 1, 2]);
        assert_eq!(x, &[0.0, 1.0, 10.0, 11.0, 20.0, 21.0]);
        assert_eq!(t, &[0.5, 1.5, 2.5]);
    }
}
