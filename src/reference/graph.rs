//! CPU mirror of `ops::graph`: the CondGCN sum aggregation and the DenseSAGE input, plain loops
//! in f64.

use super::check_len;
use crate::error::{Error, Result};
use crate::ops::graph::{gcn_linear_width, gcn_root_stride, gcn_shapes, sage_shapes, KeypointPrep, Skeleton};

/// h [B, S, J, H] from mx [B, S, J, stride] (self loop in 0..H, neighbour message in H..2H) and the
/// optional context (mc [B, J, mc_stride], observed [B, J]) and root message (mr [B, mr_stride],
/// added to the root's children).
/// The context of [`gcn_aggregate`], as `ops::GcnContext`: message [B, J, ≥ H] with its shape,
/// observed [B, J].
#[derive(Clone, Copy)]
pub struct GcnContext<'a> {
    pub message: &'a [f32],
    pub message_shape: &'a [usize],
    pub observed: &'a [f32],
}

/// The root message per pose [B, ≥ H] with its shape, as `ops::GcnRoot`.
#[derive(Clone, Copy)]
pub struct GcnRoot<'a> {
    pub message: &'a [f32],
    pub message_shape: &'a [usize],
}

/// One CondGCN layer's sum aggregation of node messages mx [B, S, J, ≥ 2H]: what
/// `ops::gcn_aggregate` takes, with its shape checker. h [B, S, J, H].
pub fn gcn_aggregate(
    mx: &[f32],
    mx_shape: &[usize],
    hidden: usize,
    skeleton: &Skeleton,
    context: Option<GcnContext>,
    root: Option<GcnRoot>,
) -> Result<Vec<f32>> {
    const OP: &str = "gcn_aggregate";
    let j = skeleton.joints();
    let obs_shape = context.map(|c| {
        if c.observed.len() == mx_shape.first().copied().unwrap_or(0) * j {
            vec![mx_shape[0], j]
        } else {
            vec![c.observed.len()]
        }
    });
    let (b, s, stride, mc_stride) =
        gcn_shapes(mx_shape, hidden, j, context.map(|c| c.message_shape).zip(obs_shape.as_deref()))?;
    check_len(OP, "node messages", mx, mx_shape)?;
    let mr_stride = match root {
        Some(r) => {
            check_len(OP, "root messages", r.message, r.message_shape)?;
            gcn_root_stride(r.message_shape, b, hidden)?
        }
        None => 0,
    };
    if let Some(c) = context {
        check_len(OP, "context messages", c.message, c.message_shape)?;
    }
    Ok(aggregate(
        mx,
        b,
        s,
        stride,
        hidden,
        skeleton,
        context.map(|c| (c.message, mc_stride, c.observed)),
        root.map(|r| (r.message, mr_stride)),
    ))
}

#[allow(clippy::too_many_arguments)]
fn aggregate(
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
/// GraphSAGE-style mean aggregation of x [B, J, F] over the observed neighbours of `adj` [J, J]:
/// what `ops::sage_aggregate` takes, with its checks. [B, J, 2F].
pub fn sage_aggregate(
    x: &[f32],
    xs: &[usize],
    adj: &[f32],
    observed: &[f32],
    prep: Option<KeypointPrep>,
) -> Result<Vec<f32>> {
    const OP: &str = "sage_aggregate";
    let (b0, j0) = (xs.first().copied().unwrap_or(0), xs.get(1).copied().unwrap_or(0));
    let implied = |v: &[f32], r: usize, c: usize| if v.len() == r * c { vec![r, c] } else { vec![v.len()] };
    let (b, j, f) = sage_shapes(xs, &implied(adj, j0, j0), &implied(observed, b0, j0), prep)?;
    check_len(OP, "input", x, xs)?;
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
    Ok(out)
}

/// `ops::gcn_aggregate_linear`: the messages ReLU(packed · [x, 1]) of x [B, S, J, F] with packed
/// [2H, F + 1], then [`gcn_aggregate`].
/// [`gcn_aggregate`] with the node messages computed from the node features x [B, S, J, F] and
/// the stacked layer `packed` [2H, F + 1]: what `ops::gcn_aggregate_linear` takes, with its checks.
pub fn gcn_aggregate_linear(
    x: &[f32],
    xs: &[usize],
    packed: &[f32],
    hidden: usize,
    skeleton: &Skeleton,
    context: Option<GcnContext>,
    root: Option<GcnRoot>,
) -> Result<Vec<f32>> {
    const OP: &str = "gcn_aggregate";
    let f = gcn_linear_width(xs, skeleton.joints())?;
    let want = [2 * hidden, f + 1];
    if packed.len() != want[0] * want[1] {
        return Err(Error::shape(OP, "packed layer", &[packed.len()], format!("{want:?}")));
    }
    check_len(OP, "node features", x, xs)?;
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
    let mut ms = xs.to_vec();
    ms[3] = 2 * hidden;
    gcn_aggregate(&mx, &ms, hidden, skeleton, context, root)
}
