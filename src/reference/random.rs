//! The CPU mirror of shaders/random.wgsl: Philox-4x32-10, bit-identical uniforms, Box–Muller
//! normals (f64 here; the GPU's f32 log/cos/sin agree up to rounding).

const M0: u32 = 0xD251_1F53;
const M1: u32 = 0xCD9E_8D57;
const W0: u32 = 0x9E37_79B9;
const W1: u32 = 0xBB67_AE85;

/// Philox-4x32 with 10 rounds.
pub fn philox4x32_10(ctr: [u32; 4], key: [u32; 2]) -> [u32; 4] {
    let (mut c, mut k) = (ctr, key);
    for _ in 0..10 {
        let p0 = M0 as u64 * c[0] as u64;
        let p1 = M1 as u64 * c[2] as u64;
        c = [((p1 >> 32) as u32) ^ c[1] ^ k[0], p1 as u32, ((p0 >> 32) as u32) ^ c[3] ^ k[1], p0 as u32];
        k = [k[0].wrapping_add(W0), k[1].wrapping_add(W1)];
    }
    c
}

fn block(seed: u64, offset: u64, b: u64) -> [u32; 4] {
    philox4x32_10([b as u32, 0, offset as u32, (offset >> 32) as u32], [seed as u32, (seed >> 32) as u32])
}

/// The uniform of a word: ((x >> 8) + 1) · 2⁻²⁴ ∈ (0, 1].
pub fn to_unit(x: u32) -> f32 {
    ((x >> 8) + 1) as f32 * (1.0 / 16_777_216.0)
}

/// `n` uniforms of stream (seed, offset).
pub fn uniform(seed: u64, offset: u64, n: usize) -> Vec<f32> {
    (0..n).map(|i| to_unit(block(seed, offset, (i / 4) as u64)[i % 4])).collect()
}

/// `n` standard normals of stream (seed, offset).
pub fn normal(seed: u64, offset: u64, n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| {
            let w = block(seed, offset, (i / 4) as u64);
            let j = (i % 4) / 2;
            let r = (-2.0 * (to_unit(w[2 * j]) as f64).ln()).sqrt();
            let th = std::f64::consts::TAU * to_unit(w[2 * j + 1]) as f64;
            (if i % 2 == 0 { r * th.cos() } else { r * th.sin() }) as f32
        })
        .collect()
}

/// `rows` × `row_len` normals, row r the first `row_len` of stream (seed, offset + r) (wrapping):
/// `ops::random_normal_rows`.
pub fn normal_rows(seed: u64, offset: u64, rows: usize, row_len: usize) -> Vec<f32> {
    (0..rows).flat_map(|r| normal(seed, offset.wrapping_add(r as u64), row_len)).collect()
}

#[cfg(test)]
mod tests {
    /// The known-answer vectors of the Random123 distribution (kat_vectors, philox4x32 10 rounds).
    #[test]
    fn philox_known_answers() {
        assert_eq!(super::philox4x32_10([0; 4], [0; 2]), [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]);
        assert_eq!(
            super::philox4x32_10([u32::MAX; 4], [u32::MAX; 2]),
            [0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd]
        );
        assert_eq!(
            super::philox4x32_10([0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344], [0xa4093822, 0x299f31d0]),
            [0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1]
        );
    }
}
