// scores.wgsl: the Sensorium evaluation scores (docs/ops.md, Sensorium scores): per neuron, over the
// trials of responses r and predictions p [T, M], the single-trial correlation, the correlation of
// the repeat averages (trials grouped by image), FEV and FEVE.
//
//   scores_segments  one invocation per (segment, neuron): Welford over the segment's trials (at
//                    most the loop budget), a row of partial moments; with GROUPS a segment is a
//                    run of whole images (folded into the per-image moments as it goes) or a piece
//                    of one large image
//   scores_merge     Chan et al.'s pairwise merge of ranges of rows into one row each (levels of
//                    these until one row is left); with CLOSE the merged pieces of an image become
//                    that image's per-image moments
//   scores_finish    the scores of each neuron from the last row
//
// A row holds, per neuron, 14 components (component k of row i at (i * 14 + k) * M + m):
//   0..6   over trials: count, mean r, mean p, M2 r, M2 p, co-moment rp, sum of (r - p)^2
//   7..13  over images: count, mean of the image means of r and of p, their M2 and co-moment,
//          and the sum over images of the variance of r across repeats (ddof 1)
// Everything is a running mean and centred sums (never a raw sum of squares), so 10^5 trials stay
// accurate in f32; a NaN or infinity in a neuron's data makes its scores NaN.

struct ScParams {
    m: u32,        // neurons
    rows: u32,     // rows this dispatch writes
    blocks: u32,   // workgroups per row: ceil(m / 256)
    na: u32,       // scores_merge: rows of sc_a; row indices past it read sc_b
    nf: f32,       // scores_finish: trials
    gf: f32,       // scores_finish: images
    eps: f32,      // added to each standard deviation of a correlation
    _p: u32,
}
// Trials grouped by image: sc_order and the per-image components are used.
override GROUPS: bool = false;
// scores_merge: the ranges are the pieces of one image each; the merged row's image half is set
// from its trial half (one image: its means, and its variance across repeats).
override CLOSE: bool = false;

@group(0) @binding(0) var<uniform> sc: ScParams;
@group(0) @binding(1) var<storage, read> sc_a: array<f32>;     // responses; merge and finish: rows
@group(0) @binding(2) var<storage, read> sc_b: array<f32>;     // predictions; merge: more rows
// Trial of each position, images one after another: bits 0..30 the trial, bit 31 set on the last
// trial of an image.
@group(0) @binding(3) var<storage, read> sc_order: array<u32>;
// Per output row: lo, hi (positions, or input rows). scores_segments: bit 31 of hi marks a piece of
// one image (not folded into the image half).
@group(0) @binding(4) var<storage, read> sc_table: array<u32>;
@group(0) @binding(5) var<storage, read_write> sc_out: array<f32>;

const K: u32 = 14u;

// Moments of a set of (r, p) pairs; `s` is the half's extra sum (sum of (r - p)^2, or of the
// per-image variances).
struct Acc {
    n: f32, mr: f32, mp: f32, m2r: f32, m2p: f32, c: f32, s: f32,
}

fn acc_zero() -> Acc {
    return Acc(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
}

// Welford's update with one pair.
fn acc_push(a: Acc, r: f32, p: f32) -> Acc {
    let n = a.n + 1.0;
    let inv = 1.0 / n;
    let dr = r - a.mr;
    let dp = p - a.mp;
    let mr = a.mr + dr * inv;
    let mp = a.mp + dp * inv;
    return Acc(n, mr, mp, fma(dr, r - mr, a.m2r), fma(dp, p - mp, a.m2p), fma(dr, p - mp, a.c), a.s);
}

// Chan, Golub and LeVeque's merge of two sets; an empty set leaves the other as it is.
fn acc_merge(a: Acc, b: Acc) -> Acc {
    if (b.n == 0.0) { return a; }
    if (a.n == 0.0) { return b; }
    let n = a.n + b.n;
    let fb = b.n / n;
    let w = a.n * fb;
    let dr = b.mr - a.mr;
    let dp = b.mp - a.mp;
    return Acc(n, fma(dr, fb, a.mr), fma(dp, fb, a.mp), a.m2r + b.m2r + dr * dr * w, a.m2p + b.m2p + dp * dp * w,
               a.c + b.c + dr * dp * w, a.s + b.s);
}

fn load_a(row: u32, h: u32, m: u32) -> Acc {
    let i = (row * K + h) * sc.m + m;
    let s = sc.m;
    return Acc(sc_a[i], sc_a[i + s], sc_a[i + 2u * s], sc_a[i + 3u * s], sc_a[i + 4u * s], sc_a[i + 5u * s],
               sc_a[i + 6u * s]);
}

fn load_b(row: u32, h: u32, m: u32) -> Acc {
    let i = (row * K + h) * sc.m + m;
    let s = sc.m;
    return Acc(sc_b[i], sc_b[i + s], sc_b[i + 2u * s], sc_b[i + 3u * s], sc_b[i + 4u * s], sc_b[i + 5u * s],
               sc_b[i + 6u * s]);
}

fn store(row: u32, h: u32, m: u32, a: Acc) {
    let i = (row * K + h) * sc.m + m;
    let s = sc.m;
    sc_out[i] = a.n;
    sc_out[i + s] = a.mr;
    sc_out[i + 2u * s] = a.mp;
    sc_out[i + 3u * s] = a.m2r;
    sc_out[i + 4u * s] = a.m2p;
    sc_out[i + 5u * s] = a.c;
    sc_out[i + 6u * s] = a.s;
}

// The image half of one image from its trial moments: one sample (its means), and its variance
// across repeats (ddof 1).
fn image_of(g: Acc) -> Acc {
    return Acc(1.0, g.mr, g.mp, 0.0, 0.0, 0.0, g.m2r / (g.n - 1.0));
}

// a / b with IEEE semantics at b = 0 spelled out (±Inf, NaN for 0/0 or NaN/0), as numpy divides.
fn div_ieee(a: f32, b: f32) -> f32 {
    if (b != 0.0) { return a / b; }
    if (a == 0.0 || (bitcast<u32>(a) & 0x7fffffffu) > 0x7f800000u) { return bitcast<f32>(0x7fc00000u); }
    return bitcast<f32>(((bitcast<u32>(a) ^ bitcast<u32>(b)) & 0x80000000u) | 0x7f800000u);
}

// neuralpredictors' corr from moments over n samples: mean(za zb), z = (x - mean) / (std + eps), ddof 0.
fn corr_of(a: Acc, n: f32) -> f32 {
    let den = (sqrt(a.m2r / n) + sc.eps) * (sqrt(a.m2p / n) + sc.eps);
    return div_ieee(a.c / n, den);
}

@compute @workgroup_size(256)
fn scores_segments(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32,
                   @builtin(num_workgroups) nwg: vec3<u32>) {
    let w = wid.x + wid.y * nwg.x;
    let row = w / sc.blocks;
    let m = (w % sc.blocks) * 256u + lid;
    if (row >= sc.rows || m >= sc.m) { return; }
    let lo = sc_table[2u * row];
    let hi_bits = sc_table[2u * row + 1u];
    let hi = hi_bits & 0x7fffffffu;
    let whole = GROUPS && (hi_bits >> 31u) == 0u;
    var tot = acc_zero();
    var img = acc_zero();
    var cur = acc_zero();
    for (var q = lo; q < hi; q++) {
        var t = q;
        var last = false;
        if (GROUPS) {
            let e = sc_order[q];
            t = e & 0x7fffffffu;
            last = (e >> 31u) != 0u;
        }
        let r = sc_a[t * sc.m + m];
        let p = sc_b[t * sc.m + m];
        let d = r - p;
        let s = fma(d, d, tot.s);
        tot = acc_push(tot, r, p);
        tot.s = s;
        if (whole) {
            cur = acc_push(cur, r, p);
            if (last) {
                let v = cur.m2r / (cur.n - 1.0);
                img = acc_push(img, cur.mr, cur.mp);
                img.s += v;
                cur = acc_zero();
            }
        }
    }
    store(row, 0u, m, tot);
    store(row, 7u, m, img);
}

@compute @workgroup_size(256)
fn scores_merge(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32,
                @builtin(num_workgroups) nwg: vec3<u32>) {
    let w = wid.x + wid.y * nwg.x;
    let row = w / sc.blocks;
    let m = (w % sc.blocks) * 256u + lid;
    if (row >= sc.rows || m >= sc.m) { return; }
    let lo = sc_table[2u * row];
    let hi = sc_table[2u * row + 1u];
    var tot = acc_zero();
    var img = acc_zero();
    for (var q = lo; q < hi; q++) {
        if (q < sc.na) {
            tot = acc_merge(tot, load_a(q, 0u, m));
            img = acc_merge(img, load_a(q, 7u, m));
        } else {
            tot = acc_merge(tot, load_b(q - sc.na, 0u, m));
            img = acc_merge(img, load_b(q - sc.na, 7u, m));
        }
    }
    if (CLOSE) { img = image_of(tot); }
    store(row, 0u, m, tot);
    store(row, 7u, m, img);
}

// Row r of the output [1 or 4, M]: 0 the single-trial correlation; with GROUPS 1 the correlation
// of the image averages, 2 FEV = (total - noise) / total, 3 FEVE = 1 - (mse - noise) / (total -
// noise), total the variance over all trials (ddof 1), noise the mean over images of the variance
// across repeats (ddof 1), mse the mean over trials of (r - p)^2.
@compute @workgroup_size(256)
fn scores_finish(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let m = gid.x + gid.y * nwg.x * 256u;
    if (m >= sc.m) { return; }
    let tot = load_a(0u, 0u, m);
    sc_out[m] = corr_of(tot, sc.nf);
    if (GROUPS) {
        let img = load_a(0u, 7u, m);
        sc_out[sc.m + m] = corr_of(img, sc.gf);
        let total = tot.m2r / (sc.nf - 1.0);
        let noise = img.s / sc.gf;
        let mse = tot.s / sc.nf;
        sc_out[2u * sc.m + m] = div_ieee(total - noise, total);
        sc_out[3u * sc.m + m] = 1.0 - div_ieee(mse - noise, total - noise);
    }
}
