//! A Sensorium with random weights, for benchmarks and tests.

use std::collections::BTreeMap;

use super::config::CoreKind;
use super::{Sensorium, SensoriumConfig};
use crate::error::Result;
use crate::io::HostTensor;

impl Sensorium {
    /// A model with random weights (for benchmarks), as `from_state_dict` would build it.
    pub fn random(config: SensoriumConfig, seed: u64) -> Result<Sensorium> {
        config.validate()?;
        let mut rng = crate::rng::SplitMix::new(seed);
        let mut sd = BTreeMap::new();
        let c = config.core.clone();
        let hc = c.hidden_channels;
        let stacked = c.kind == CoreKind::Stacked2d;
        if !stacked {
            super::rot_eq::random_core(&c, &mut rng, &mut sd);
        }
        let mut put = |k: String, shape: Vec<usize>, lo: f32, hi: f32| {
            let n = shape.iter().product();
            sd.insert(k, HostTensor::new(shape, rng.vec(n, lo, hi)));
        };
        let s0 = 1.0 / ((c.input_channels * c.input_kern * c.input_kern) as f32).sqrt();
        if stacked {
            put(
                "core.features.layer0.conv.weight".into(),
                vec![hc, c.input_channels, c.input_kern, c.input_kern],
                -s0,
                s0,
            );
        }
        let stacked_layers = if stacked { c.layers } else { 0 };
        for l in 0..stacked_layers {
            let pre = format!("core.features.layer{l}");
            put(format!("{pre}.norm.running_mean"), vec![hc], -0.5, 0.5);
            put(format!("{pre}.norm.running_var"), vec![hc], 0.5, 2.0);
            put(format!("{pre}.norm.weight"), vec![hc], 0.5, 1.5);
            put(format!("{pre}.norm.bias"), vec![hc], -0.2, 0.2);
            if l == 0 {
                continue;
            }
            let s1 = 1.0 / (hc as f32).sqrt();
            let sk = 1.0 / (c.hidden_kern as f32);
            for (name, shape, s) in [
                ("ds_conv.in_depth_conv", vec![hc, hc, 1, 1], s1),
                ("ds_conv.spatial_conv", vec![hc, 1, c.hidden_kern, c.hidden_kern], sk),
                ("ds_conv.out_depth_conv", vec![hc, hc, 1, 1], s1),
            ] {
                put(format!("{pre}.{name}.weight"), shape, -s, s);
                put(format!("{pre}.{name}.bias"), vec![hc], -0.1, 0.1);
            }
        }
        let hc = c.output_channels();
        for (key, r) in &config.readouts {
            if r.modulator {
                for (j, (o, i)) in [(6, 3), (r.neurons, 6)].into_iter().enumerate() {
                    put(format!("modulator.{key}.modulator_networks.0.{}.weight", 2 * j), vec![o, i], -0.5, 0.5);
                    put(format!("modulator.{key}.modulator_networks.0.{}.bias", 2 * j), vec![o], -0.2, 0.2);
                }
            }
            if r.shifter {
                for (j, (o, i)) in [(5, 2), (5, 5), (2, 5)].into_iter().enumerate() {
                    put(format!("shifter.{key}.mlp.{}.weight", 2 * j), vec![o, i], -0.7, 0.7);
                    put(format!("shifter.{key}.mlp.{}.bias", 2 * j), vec![o], -0.2, 0.2);
                }
            }
            put(format!("readout.{key}._mu"), vec![1, r.neurons, 1, 2], -1.0, 1.0);
            put(format!("readout.{key}._features"), vec![1, hc, 1, r.neurons], -0.2, 0.2);
            put(format!("readout.{key}.bias"), vec![r.neurons], -0.5, 0.5);
        }
        Self::from_state_dict(config, sd)
    }
}
