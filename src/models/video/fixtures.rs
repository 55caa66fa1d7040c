//! A video model with random weights (for tests and benchmarks), with upstream's keys.

use std::collections::BTreeMap;

use super::{Video, VideoConfig};
use crate::error::Result;
use crate::io::HostTensor;

impl Video {
    /// A model with random weights, as `from_state_dict` would build it from upstream's keys.
    pub fn random(config: VideoConfig, seed: u64) -> Result<Video> {
        Self::from_state_dict(config.clone(), random_state_dict(&config, seed)?)
    }
}

/// Random tensors under upstream's key names for `config` (conv biases, an affine norm or its
/// bias/scale layer, readouts with `_mu`, shifters).
pub(crate) fn random_state_dict(config: &VideoConfig, seed: u64) -> Result<BTreeMap<String, HostTensor>> {
    let mut rng = crate::rng::SplitMix::new(seed);
    let mut sd = BTreeMap::new();
    let mut put = |k: String, shape: Vec<usize>, lo: f32, hi: f32| {
        let n = shape.iter().product();
        sd.insert(k, HostTensor::new(shape, rng.vec(n, lo, hi)));
    };
    let core = &config.core;
    for l in core.plan()? {
        for c in &l.convs {
            let fan: usize = c.shape[1..].iter().product();
            let s = 1.7 / (fan as f32).sqrt();
            put(format!("{}.weight", c.prefix), c.shape.to_vec(), -s, s);
            put(format!("{}.bias", c.prefix), vec![c.shape[0]], -0.1, 0.1);
        }
        let (ch, pre) = (l.channels, &l.prefix);
        if core.batch_norm {
            put(format!("{pre}.norm.running_mean"), vec![ch], -0.2, 0.2);
            put(format!("{pre}.norm.running_var"), vec![ch], 0.5, 1.5);
            if core.bias && core.batch_norm_scale {
                put(format!("{pre}.norm.weight"), vec![ch], 0.5, 1.5);
                put(format!("{pre}.norm.bias"), vec![ch], -0.2, 0.2);
            } else if core.bias {
                put(format!("{pre}.bias.bias"), vec![1, ch, 1, 1, 1], -0.2, 0.2);
            } else if core.batch_norm_scale {
                put(format!("{pre}.scale.scale"), vec![1, ch, 1, 1, 1], 0.5, 1.5);
            }
        }
    }
    let hc = *core.hidden_channels.last().unwrap_or(&1);
    for (key, r) in &config.readouts {
        if r.shifter {
            for (j, (o, i)) in [(5, 2), (5, 5), (2, 5)].into_iter().enumerate() {
                put(format!("shifter.{key}.mlp.{}.weight", 2 * j), vec![o, i], -0.7, 0.7);
                put(format!("shifter.{key}.mlp.{}.bias", 2 * j), vec![o], -0.2, 0.2);
            }
        }
        put(format!("readout.{key}._mu"), vec![1, r.neurons, 1, 2], -1.0, 1.0);
        put(format!("readout.{key}.sigma"), vec![1, r.neurons, 2, 2], -0.1, 0.1);
        put(format!("readout.{key}._features"), vec![1, hc, 1, r.neurons], -0.3, 0.3);
        put(format!("readout.{key}.bias"), vec![r.neurons], -0.5, 0.5);
    }
    Ok(sd)
}
