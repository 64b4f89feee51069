//! A small seeded random number generator, so that the protocol stays deterministic: the
//! same seed gives the same election timeouts.

/// SplitMix64 (Steele, Lea, Flood 2014): tiny state, good enough spread for timeouts.
#[derive(Clone, Debug)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A value in `[low, high)`; `high > low`.
    pub(crate) fn range(&mut self, low: u32, high: u32) -> u32 {
        low + (self.next_u64() % u64::from(high - low)) as u32
    }
}

/// Mixes a node seed and a group id into one group's seed, so groups on one node do not time
/// out in lockstep.
pub(crate) fn group_seed(node_seed: u64, group: u64) -> u64 {
    Rng::new(node_seed ^ group.wrapping_mul(0xA076_1D64_78BD_642F)).next_u64()
}
