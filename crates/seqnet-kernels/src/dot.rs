//! The dot product of two f32 slices.

use crate::cpu::Isa;

/// `Σ a[i]·b[i]` over the shorter length, in 16 lanes (so that it
/// vectorizes), with AVX-512 where the CPU has it.
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if Isa::best().avx512() {
        // SAFETY: `Isa::best` allows AVX-512 only when the CPU has AVX-512F.
        return unsafe { wide(a, b) };
    }
    body(a, b)
}

#[inline(always)]
fn body(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0f32; 16];
    let (ac, bc) = (a.chunks_exact(16), b.chunks_exact(16));
    let tail: f32 = ac
        .remainder()
        .iter()
        .zip(bc.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ac.zip(bc) {
        for l in 0..16 {
            acc[l] = x[l].mul_add(y[l], acc[l]);
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// [`body`] compiled for AVX-512.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn wide(a: &[f32], b: &[f32]) -> f32 {
    body(a, b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_matches_a_plain_sum_over_the_shorter_length() {
        let a: Vec<f32> = (0..37).map(|i| (i % 5) as f32 - 2.0).collect();
        let b: Vec<f32> = (0..40).map(|i| (i % 3) as f32 * 0.5).collect();
        let want: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        assert_eq!(dot(&a, &b), want);
        assert_eq!(body(&a, &b), want);
        assert_eq!(dot(&[], &b), 0.0);
    }
}
