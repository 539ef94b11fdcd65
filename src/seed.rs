//! Seeded randomness: every random choice in a run derives from the scenario seed, through one
//! independent stream per subsystem, so that editing one part of a scenario (adding a fault, a
//! load) does not reshuffle the random choices of the others.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// SplitMix64's finaliser: spreads nearby seeds far apart.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The seed of the stream `name` (e.g. `workload/2`, `net`, `faults/0`) of a run seeded `seed`.
/// FNV-1a over the name keeps it stable across Rust versions (unlike `DefaultHasher`).
pub fn derive(seed: u64, name: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in name.bytes() {
        hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
    }
    mix(seed ^ mix(hash))
}

/// A random stream for one subsystem.
pub fn stream(seed: u64, name: &str) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(derive(seed, name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    #[test]
    fn streams_are_stable_and_independent() {
        assert_eq!(derive(7, "workload/0"), derive(7, "workload/0"));
        assert_ne!(derive(7, "workload/0"), derive(7, "workload/1"));
        assert_ne!(derive(7, "workload/0"), derive(8, "workload/0"));
        let a: u64 = stream(7, "net").random();
        let b: u64 = stream(7, "net").random();
        assert_eq!(a, b);
    }
}
