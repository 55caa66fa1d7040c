//! A video model with random weights (for tests and benchmarks), with upstream's keys.

use std::collections::BTreeMap;

use super::{Video, VideoConfig, VideoCoreConfig};
use crate::error::Result;
use crate::io::HostTensor;
use crate::models::sensorium::Core2d;
use crate::ops::gru::CONV_GRU_CONVS;

impl Video {
    /// A model with random weights, as `from_state_dict` would build it from upstream's keys.
    pub fn random(config: VideoConfig, seed: u64) -> Result<Video> {
        Self::from_state_dict(config.clone(), random_state_dict(&config, seed)?)
    }
}

/// Random tensors under upstream's key names for `config` (a 3-D core's conv biases, an affine
/// norm or its bias/scale layer; a 2-D core's as the Sensorium's fixtures draw them; the ConvGRU's
/// six convs; readouts with `_mu`, shifters).
pub(crate) fn random_state_dict(config: &VideoConfig, seed: u64) -> Result<BTreeMap<String, HostTensor>> {
    let mut rng = crate::rng::SplitMix::new(seed);
    let mut sd = match &config.core {
        VideoCoreConfig::TwoD(c) => Core2d::random_tensors(c, &mut rng)?,
        VideoCoreConfig::ThreeD(_) => BTreeMap::new(),
    };
    let mut put = |k: String, shape: Vec<usize>, lo: f32, hi: f32| {
        let n = shape.iter().product();
        sd.insert(k, HostTensor::new(shape, rng.vec(n, lo, hi)));
    };
    let empty = Vec::new();
    let (core, plan) = match &config.core {
        VideoCoreConfig::ThreeD(c) => (Some(c), c.plan()?),
        VideoCoreConfig::TwoD(_) => (None, empty),
    };
    for l in plan {
        let Some(core) = core else { break };
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
    if let Some(g) = &config.gru {
        let p = g.params();
        for name in CONV_GRU_CONVS {
            let (ws, bs) = p.conv_shapes(name);
            let s = 1.5 / ((ws[1] * ws[2] * ws[3]) as f32).sqrt();
            put(format!("gru_module.gru.{name}.weight"), ws.to_vec(), -s, s);
            put(format!("gru_module.gru.{name}.bias"), bs.to_vec(), -0.2, 0.2);
        }
    }
    let hc = config.readout_channels()?;
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
