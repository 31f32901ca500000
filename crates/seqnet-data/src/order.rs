//! Orders of observations: sorting by length and splitting an order into
//! mini-batches.

use crate::error::{Error, Result};

/// What happens to a last mini-batch smaller than the mini-batch size; in
/// JSON `"keep"` or `"discard"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LastBatch {
    /// Keep it (as MATLAB's `predict`, `classify` and `minibatchqueue` do).
    #[default]
    Keep,
    /// Drop it (as MATLAB's `trainNetwork` does each epoch).
    Discard,
}

/// The permutation that sorts observations by length, shortest first:
/// `lengths[p[0]] ≤ lengths[p[1]] ≤ …`. Ties keep their original order (as
/// MATLAB's `sort`, used in its Japanese Vowels example to reduce padding).
/// Reverse it for longest first.
pub fn sort_by_length(lengths: &[usize]) -> Vec<usize> {
    let mut p: Vec<usize> = (0..lengths.len()).collect();
    p.sort_by_key(|&i| lengths[i]);
    p
}

/// Splits `order` into consecutive mini-batches of `size` indices; the last
/// smaller one is kept or dropped as `last` says. A `size` of 0 is an error.
pub fn mini_batches(order: &[usize], size: usize, last: LastBatch) -> Result<Vec<Vec<usize>>> {
    if size == 0 {
        return Err(Error::InvalidOption {
            option: "MiniBatchSize",
            message: "must be at least 1".into(),
        });
    }
    Ok(order
        .chunks(size)
        .filter(|c| c.len() == size || last == LastBatch::Keep)
        .map(<[usize]>::to_vec)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorts_stably() {
        assert_eq!(sort_by_length(&[5, 2, 9, 2, 1]), vec![4, 1, 3, 0, 2]);
        assert!(sort_by_length(&[]).is_empty());
    }

    #[test]
    fn splits_with_and_without_the_last_batch() {
        let o: Vec<usize> = (0..7).collect();
        assert_eq!(
            mini_batches(&o, 3, LastBatch::Keep).unwrap(),
            vec![vec![0, 1, 2], vec![3, 4, 5], vec![6]]
        );
        assert_eq!(
            mini_batches(&o, 3, LastBatch::Discard).unwrap(),
            vec![vec![0, 1, 2], vec![3, 4, 5]]
        );
        assert_eq!(mini_batches(&o, 7, LastBatch::Discard).unwrap().len(), 1);
        assert!(mini_batches(&o, 8, LastBatch::Discard).unwrap().is_empty());
        assert!(mini_batches(&o, 0, LastBatch::Keep).is_err());
    }
}
