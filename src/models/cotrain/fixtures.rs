//! A co-training twin with random weights (torchvision's key names), for benchmarks and tests.

use std::collections::BTreeMap;

use super::config::{plan, Module};
use super::{Cotrain, CotrainConfig};
use crate::error::Result;
use crate::io::HostTensor;

impl Cotrain {
    /// Random weights in torchvision's key names (`features.N.*`, `readout.<key>.*`), as
    /// `from_state_dict` would read them: a state dict to build the model from, or to save.
    pub fn random_state_dict(config: &CotrainConfig, seed: u64) -> BTreeMap<String, HostTensor> {
        let mut rng = crate::rng::SplitMix::new(seed);
        let mut sd = BTreeMap::new();
        let mut put = |k: String, shape: Vec<usize>, lo: f32, hi: f32| {
            let n = shape.iter().product();
            sd.insert(k, HostTensor::new(shape, rng.vec(n, lo, hi)));
        };
        let mut channels = 3;
        for m in plan(config.core.layers).unwrap_or_default() {
            if let Module::Conv { index, cin, cout } = m {
                let s = (3.0 / (cin * 9) as f32).sqrt();
                put(format!("features.{index}.weight"), vec![cout, cin, 3, 3], -s, s);
                put(format!("features.{index}.bias"), vec![cout], -0.1, 0.1);
                let bn = index + 1;
                put(format!("features.{bn}.running_mean"), vec![cout], -0.2, 0.2);
                put(format!("features.{bn}.running_var"), vec![cout], 0.5, 1.5);
                put(format!("features.{bn}.weight"), vec![cout], 0.8, 1.2);
                put(format!("features.{bn}.bias"), vec![cout], -0.1, 0.1);
                channels = cout;
            }
        }
        for (key, r) in &config.readouts {
            put(format!("readout.{key}.mu"), vec![1, r.neurons, 1, 2], -1.0, 1.0);
            put(format!("readout.{key}.sigma"), vec![1, r.neurons, 1, 2], 0.0, 0.5);
            put(format!("readout.{key}.features"), vec![1, channels, 1, r.neurons], -0.1, 0.1);
            if r.bias {
                put(format!("readout.{key}.bias"), vec![r.neurons], 0.0, 1.0);
            }
        }
        sd
    }

    /// A model with random weights (for benchmarks), as `from_state_dict` would build it.
    pub fn random(config: CotrainConfig, seed: u64) -> Result<Cotrain> {
        let sd = Self::random_state_dict(&config, seed);
        Self::from_state_dict(config, sd)
    }
}
