//! CPU mirror of `ops::graph`: the CondGCN sum aggregation and the DenseSAGE input, plain loops
//! in f64.

use crate::ops::graph::{KeypointPrep, Skeleton};

/// h [B, S, J, H] from mx [B, S, J, stride] (self loop in 0..H, neighbour message in H..2H) and the
/// optional context (mc [B, J, mc_stride], observed [B, J]) and root message (mr [B, mr_stride],
/// added to the root's children).
#[allow(clippy::too_many_arguments)]
pub fn gcn_aggregate(
    mx: &[f32],
    b: usize,
    s: usize,
    stride: usize,
    hidden: usize,
    skeleton: &Skeleton,
    context: Option<(&[f32], usize, &[f32])>,
    root: Option<(&[f32], usize)>,
) -> Vec<f32> {
    let j = skeleton.joints();
    let mut out = vec![0f32; b * s * j * hidden];
    for bi in 0..b {
        for si in 0..s {
            let first = (bi * s + si) * j;
            for ji in 0..j {
                let r = first + ji;
                for h in 0..hidden {
                    let mut acc = mx[r * stride + h] as f64;
                    for &n in skeleton.neighbours(ji) {
                        acc += mx[(first + n as usize) * stride + hidden + h] as f64;
                    }
                    if let Some((mc, mc_stride, obs)) = context {
                        if obs[bi * j + ji] > 0.0 {
                            acc += mc[(bi * j + ji) * mc_stride + h] as f64;
                        }
                    }
                    if let Some((mr, mr_stride)) = root {
                        if skeleton.is_root_child(ji) {
                            acc += mr[bi * mr_stride + h] as f64;
                        }
                    }
                    out[r * hidden + h] = acc as f32;
                }
            }
        }
    }
    out
}

/// [A x / clamp(rowsum A, 1), x] [B, J, 2F] for x [B, J, F] (raw keypoints preprocessed first with
/// `prep`), adj [J, J] and observed [B, J].
pub fn sage_aggregate(
    x: &[f32],
    b: usize,
    j: usize,
    f: usize,
    adj: &[f32],
    observed: &[f32],
    prep: Option<KeypointPrep>,
) -> Vec<f32> {
    let input = |bi: usize, k: usize, fi: usize| -> f64 {
        let v = x[(bi * j + k) * f + fi] as f64;
        match prep {
            None => v,
            Some(p) => {
                let c = match p.root {
                    Some(r) => v - x[(bi * j + r) * f + fi] as f64,
                    None => v,
                };
                p.scale[fi] as f64 * c
            }
        }
    };
    let mut out = vec![0f32; b * j * 2 * f];
    for bi in 0..b {
        for i in 0..j {
            let oi = observed[bi * j + i] > 0.0;
            for fi in 0..f {
                let (mut deg, mut acc) = (0f64, 0f64);
                if oi {
                    for k in 0..j {
                        if observed[bi * j + k] > 0.0 {
                            let a = adj[i * j + k] as f64;
                            deg += a;
                            acc += a * input(bi, k, fi);
                        }
                    }
                }
                let row = (bi * j + i) * 2 * f;
                out[row + fi] = (acc / deg.max(1.0)) as f32;
                out[row + f + fi] = input(bi, i, fi) as f32;
            }
        }
    }
    out
}

/// `ops::gcn_aggregate_linear`: the messages ReLU(packed · [x, 1]) of x [B, S, J, F] with packed
/// [2H, F + 1], then [`gcn_aggregate`].
#[allow(clippy::too_many_arguments)]
pub fn gcn_aggregate_linear(
    x: &[f32],
    f: usize,
    packed: &[f32],
    b: usize,
    s: usize,
    hidden: usize,
    skeleton: &Skeleton,
    context: Option<(&[f32], usize, &[f32])>,
    root: Option<(&[f32], usize)>,
) -> Vec<f32> {
    let rows = x.len() / f;
    let mut mx = vec![0f32; rows * 2 * hidden];
    for r in 0..rows {
        for c in 0..2 * hidden {
            let w = &packed[c * (f + 1)..(c + 1) * (f + 1)];
            let v = w[f] as f64 + (0..f).map(|k| w[k] as f64 * x[r * f + k] as f64).sum::<f64>();
            // ReLU keeping a NaN, as PyTorch's.
            mx[r * 2 * hidden + c] = if v.is_nan() { v as f32 } else { v.max(0.0) as f32 };
        }
    }
    gcn_aggregate(&mx, b, s, 2 * hidden, hidden, skeleton, context, root)
}
