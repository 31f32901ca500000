//! Weight initializers with MATLAB's names. All draw from a seeded [`StdRng`].

use ndarray::{Array1, Array2, ArrayD, IxDyn};
use rand::rngs::StdRng;
use rand::Rng;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

/// How a weight matrix is initialized (MATLAB's `WeightsInitializer` values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WeightsInitializer {
    /// Uniform in `±sqrt(6 / (fan_in + fan_out))`.
    Glorot,
    /// Normal with standard deviation `sqrt(2 / fan_in)`.
    He,
    /// The `Q` of the QR decomposition of a standard normal matrix.
    Orthogonal,
    /// Normal with standard deviation 0.01.
    NarrowNormal,
    Zeros,
    Ones,
}

/// How a bias is initialized (MATLAB's `BiasInitializer` values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BiasInitializer {
    Zeros,
    Ones,
    NarrowNormal,
    /// Ones for the forget gate (second quarter of an LSTM bias), zeros elsewhere.
    UnitForgetGate,
}

/// A `[rows, cols]` weight matrix with the given fans.
pub fn weights(
    init: WeightsInitializer,
    shape: &[usize],
    fan_in: usize,
    fan_out: usize,
    rng: &mut StdRng,
) -> ArrayD<f32> {
    let n: usize = shape.iter().product();
    let data: Vec<f32> = match init {
        WeightsInitializer::Glorot => {
            let bound = (6.0 / (fan_in + fan_out).max(1) as f64).sqrt() as f32;
            (0..n).map(|_| rng.random_range(-bound..=bound)).collect()
        }
        WeightsInitializer::He => {
            let std = (2.0 / fan_in.max(1) as f64).sqrt() as f32;
            (0..n).map(|_| normal(rng) * std).collect()
        }
        WeightsInitializer::NarrowNormal => (0..n).map(|_| normal(rng) * 0.01).collect(),
        WeightsInitializer::Zeros => vec![0.0; n],
        WeightsInitializer::Ones => vec![1.0; n],
        WeightsInitializer::Orthogonal => {
            let rows = shape[0];
            let cols = n / rows.max(1);
            return orthogonal(rows, cols, rng)
                .into_dyn()
                .into_shape_with_order(IxDyn(shape))
                .expect("orthogonal: same element count");
        }
    };
    ArrayD::from_shape_vec(IxDyn(shape), data).expect("initializer: element count matches shape")
}

/// A bias of `len` elements; `gates` is how many equal parts it has (4 for an LSTM).
pub fn bias(init: BiasInitializer, len: usize, gates: usize, rng: &mut StdRng) -> Array1<f32> {
    match init {
        BiasInitializer::Zeros => Array1::zeros(len),
        BiasInitializer::Ones => Array1::ones(len),
        BiasInitializer::NarrowNormal => Array1::from_shape_fn(len, |_| normal(rng) * 0.01),
        BiasInitializer::UnitForgetGate => {
            let h = len / gates.max(1);
            Array1::from_shape_fn(len, |i| {
                if (h..2 * h).contains(&(i % (gates * h).max(1))) {
                    1.0
                } else {
                    0.0
                }
            })
        }
    }
}

fn normal(rng: &mut StdRng) -> f32 {
    let x: f64 = StandardNormal.sample(rng);
    x as f32
}

/// A `[rows, cols]` matrix with orthonormal columns (or rows, when wider than tall),
/// by modified Gram–Schmidt on a standard normal matrix.
pub fn orthogonal(rows: usize, cols: usize, rng: &mut StdRng) -> Array2<f32> {
    let transpose = cols > rows;
    let (r, c) = if transpose {
        (cols, rows)
    } else {
        (rows, cols)
    };
    let mut z = Array2::<f64>::from_shape_fn((r, c), |_| StandardNormal.sample(rng));
    for j in 0..c {
        for k in 0..j {
            let dot: f64 = (0..r).map(|i| z[[i, j]] * z[[i, k]]).sum();
            for i in 0..r {
                z[[i, j]] -= dot * z[[i, k]];
            }
        }
        let norm = (0..r)
            .map(|i| z[[i, j]] * z[[i, j]])
            .sum::<f64>()
            .sqrt()
            .max(1e-12);
        for i in 0..r {
            z[[i, j]] /= norm;
        }
    }
    let q = z.mapv(|v| v as f32);
    if transpose {
        q.reversed_axes().as_standard_layout().to_owned()
    } else {
        q
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn orthogonal_columns_are_orthonormal() {
        let mut rng = StdRng::seed_from_u64(1);
        let q = orthogonal(12, 3, &mut rng);
        let g = q.t().dot(&q);
        for i in 0..3 {
            for j in 0..3 {
                let want = if i == j { 1.0 } else { 0.0 };
                assert!((g[[i, j]] - want).abs() < 1e-5, "{g}");
            }
        }
    }

    #[test]
    fn unit_forget_gate_sets_only_the_second_quarter() {
        let mut rng = StdRng::seed_from_u64(1);
        let b = bias(BiasInitializer::UnitForgetGate, 8, 4, &mut rng);
        assert_eq!(b.to_vec(), vec![0., 0., 1., 1., 0., 0., 0., 0.]);
    }

    #[test]
    fn glorot_stays_in_its_bound() {
        let mut rng = StdRng::seed_from_u64(3);
        let w = weights(WeightsInitializer::Glorot, &[40, 10], 10, 40, &mut rng);
        let bound = (6.0f32 / 50.0).sqrt();
        assert!(w.iter().all(|v| v.abs() <= bound));
        assert!(w.iter().any(|v| v.abs() > bound * 0.5));
    }
}
