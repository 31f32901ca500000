//! The instruction set the kernels run with, detected once per process.
//!
//! An [`Isa`] is a capability: a value that allows AVX-512 exists only when
//! the CPU has AVX-512F (made by [`Isa::best`] or [`Isa::all`]), so a kernel
//! holding one may call its AVX-512 version without checking again.

use std::sync::OnceLock;

/// The instruction set a kernel runs with: the portable loops, or AVX-512
/// where the CPU has it. Copy it freely; it cannot be made to claim a
/// feature the CPU lacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Isa(Level);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    Portable,
    #[cfg(target_arch = "x86_64")]
    Avx512,
}

impl Isa {
    /// The portable loops, on every CPU.
    pub const PORTABLE: Isa = Isa(Level::Portable);

    /// The best instruction set of this CPU, detected on first use.
    #[inline]
    pub fn best() -> Isa {
        static BEST: OnceLock<Isa> = OnceLock::new();
        *BEST.get_or_init(detect)
    }

    /// Every instruction set this CPU runs, best first (for tests that
    /// compare the versions of a kernel).
    pub fn all() -> Vec<Isa> {
        let best = Isa::best();
        if best == Isa::PORTABLE {
            vec![best]
        } else {
            vec![best, Isa::PORTABLE]
        }
    }

    /// Whether kernels take their AVX-512 versions (only on CPUs with AVX-512F).
    #[inline]
    pub fn avx512(self) -> bool {
        match self.0 {
            Level::Portable => false,
            #[cfg(target_arch = "x86_64")]
            Level::Avx512 => true,
        }
    }

    /// A short name: `avx512` or `portable`.
    pub fn name(self) -> &'static str {
        if self.avx512() {
            "avx512"
        } else {
            "portable"
        }
    }
}

/// Whether the CPU has AVX2 and FMA: kernels without an AVX-512 version of
/// their own compile their portable loops for these too (detected once).
#[cfg(target_arch = "x86_64")]
pub fn avx2_fma() -> bool {
    static HAS: OnceLock<bool> = OnceLock::new();
    *HAS.get_or_init(|| {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    })
}

fn detect() -> Isa {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        return Isa(Level::Avx512);
    }
    Isa::PORTABLE
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn best_is_what_the_cpu_reports_and_portable_is_always_there() {
        #[cfg(target_arch = "x86_64")]
        assert_eq!(
            Isa::best().avx512(),
            std::arch::is_x86_feature_detected!("avx512f")
        );
        assert_eq!(Isa::all().first(), Some(&Isa::best()));
        assert_eq!(Isa::all().last(), Some(&Isa::PORTABLE));
        assert!(!Isa::PORTABLE.avx512());
    }
}
