//! Random cGNF weights for benchmarks and tests.

use std::collections::BTreeMap;

use super::CgnfConfig;
use crate::io::HostTensor;

/// A random propose-style state dict for `cfg` (PyTorch's default init scale, the last pool
/// layers times `gain`: 2 makes the coupling scales vary widely, as tests want; below 1 keeps a
/// deep flow's inverse tame, as a trained one is; masks by propose's rule), for benchmarks and tests.
pub fn random_state_dict(cfg: &CgnfConfig, seed: u64, gain: f32) -> BTreeMap<String, HostTensor> {
    let mut rng = crate::rng::SplitMix::new(seed);
    let mut sd = BTreeMap::new();
    let mut put = |sd: &mut BTreeMap<String, HostTensor>, k: String, shape: Vec<usize>, s: f32| {
        let n = shape.iter().product();
        sd.insert(k, HostTensor::new(shape, rng.vec(n, -s, s)));
    };
    let (h, c) = (cfg.hidden, cfg.context_features);
    for i in 0..cfg.layers {
        let a = format!("_transform._transforms.{}", 2 * i);
        put(&mut sd, format!("{a}.log_scale"), vec![3], 0.3);
        put(&mut sd, format!("{a}.shift"), vec![3], 0.3);
        let p = format!("_transform._transforms.{}", 2 * i + 1);
        for (l, (fin, cin, out)) in [(2usize, c, h), (h, h, 2usize)].into_iter().enumerate() {
            let g = format!("{p}.transform_net.layers.{l}");
            let rin = if l == 0 { 3 } else { h };
            for (rel, i_) in
                [("x", fin), ("x->x", fin), ("x<-x", fin), ("c", cin), ("c->x", cin), ("r", rin), ("r->x", rin)]
            {
                let s = 1.0 / (i_ as f32).sqrt();
                put(&mut sd, format!("{g}.layers.{rel}.weight"), vec![h, i_], s);
                put(&mut sd, format!("{g}.layers.{rel}.bias"), vec![h], s);
            }
            let s = if l == 1 { gain } else { 1.0 } / (h as f32).sqrt();
            put(&mut sd, format!("{g}.pool.weight"), vec![out, h], s);
            put(&mut sd, format!("{g}.pool.bias"), vec![out], s);
        }
    }
    if let Some(e) = &cfg.embedding {
        let j = cfg.joints;
        put(&mut sd, "_embedding_net.adj".into(), vec![j, j], 0.5);
        // A positive adjacency around 1, as propose initialises it (ones) and training keeps it.
        sd.get_mut("_embedding_net.adj").expect("just made").data.iter_mut().for_each(|v| *v += 1.0);
        for (l, (fin, out)) in [(2usize, e.hidden), (e.hidden, c)].into_iter().enumerate() {
            let k = format!("_embedding_net.layers.{l}");
            let s = 1.0 / (fin as f32).sqrt();
            put(&mut sd, format!("{k}.lin_rel.weight"), vec![out, fin], s);
            put(&mut sd, format!("{k}.lin_rel.bias"), vec![out], s);
            put(&mut sd, format!("{k}.lin_root.weight"), vec![out, fin], s);
        }
    }
    sd
}
