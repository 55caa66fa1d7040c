/// Window sums over planes [P, H, W], zero 'SAME' padding ((k−1)/2 before the centre), times
/// `scale`; with `square` of x². A direct 2-D loop, not the separable form the GPU uses.
pub fn box_sum(x: &[f32], planes: usize, h: usize, w: usize, window: [usize; 2], scale: f32, square: bool) -> Vec<f32> {
    let (kh, kw) = (window[0], window[1]);
    let (bh, bw) = ((kh - 1) / 2, (kw - 1) / 2);
    let mut y = vec![0f32; x.len()];
    for p in 0..planes {
        for i in 0..h {
            for j in 0..w {
                let mut s = 0f64;
                for u in 0..kh {
                    for v in 0..kw {
                        let (r, c) = ((i + u) as isize - bh as isize, (j + v) as isize - bw as isize);
                        if r >= 0 && c >= 0 && (r as usize) < h && (c as usize) < w {
                            let val = x[(p * h + r as usize) * w + c as usize] as f64;
                            s += if square { val * val } else { val };
                        }
                    }
                }
                y[(p * h + i) * w + j] = (s * scale as f64) as f32;
            }
        }
    }
    y
}

/// The window sum at (i, j) of a plane given as a closure, zero outside (f64).
pub(crate) fn window_sum(
    h: usize,
    w: usize,
    window: [usize; 2],
    i: usize,
    j: usize,
    f: impl Fn(usize, usize) -> f64,
) -> f64 {
    let (bh, bw) = ((window[0] - 1) / 2, (window[1] - 1) / 2);
    let mut s = 0f64;
    for u in 0..window[0] {
        for v in 0..window[1] {
            let (r, c) = ((i + u) as isize - bh as isize, (j + v) as isize - bw as isize);
            if r >= 0 && c >= 0 && (r as usize) < h && (c as usize) < w {
                s += f(r as usize, c as usize);
            }
        }
    }
    s
}
