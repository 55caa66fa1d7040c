use crate::error::{Error, Result};

/// `scale` · (window sum of x, or of x² with `square`) over a kh×kw window for x [..., H, W], zero
/// 'SAME' padding ((k−1)/2 before the centre): what `ops::box_sum` takes, with its checks. A direct
/// 2-D loop, not the separable form the GPU uses.
pub fn box_sum(x: &[f32], xs: &[usize], window: [usize; 2], scale: f32, square: bool) -> Result<Vec<f32>> {
    const OP: &str = "box_sum";
    if xs.len() < 2 {
        return Err(Error::shape(OP, "input", xs, "[..., H, W]"));
    }
    crate::ops::geometry(OP, "window", &window)?;
    if window.contains(&0) {
        return Err(Error::param(OP, "window", format!("{window:?} must be >= 1 in each axis")));
    }
    crate::ops::finite(OP, "scale", scale, false)?;
    super::check_len(OP, "input", x, xs)?;
    let (h, w) = (xs[xs.len() - 2], xs[xs.len() - 1]);
    let planes = xs[..xs.len() - 2].iter().product::<usize>();
    let mut y = vec![0f32; x.len()];
    for p in 0..planes {
        for i in 0..h {
            for j in 0..w {
                let s = window_sum(h, w, window, i, j, |r, c| {
                    let val = x[(p * h + r) * w + c] as f64;
                    if square {
                        val * val
                    } else {
                        val
                    }
                });
                y[(p * h + i) * w + j] = (s * scale as f64) as f32;
            }
        }
    }
    Ok(y)
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
    // Only the taps inside the image (the same terms in the same order): a window far wider than
    // the image (65,536 on a 6×6 one) costs no more than the image, not 4·10^9 skipped taps.
    let (u0, u1) = (bh.saturating_sub(i), window[0].min((h + bh).saturating_sub(i)));
    let (v0, v1) = (bw.saturating_sub(j), window[1].min((w + bw).saturating_sub(j)));
    let mut s = 0f64;
    for u in u0..u1 {
        for v in v0..v1 {
            s += f(i + u - bh, j + v - bw);
        }
    }
    s
}
