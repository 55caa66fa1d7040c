//! A Sensorium with random weights, for benchmarks and tests.

use std::collections::BTreeMap;

use super::stacked::{ConvKind, Keys};
use super::{CoreConfig, Sensorium, SensoriumConfig};
use crate::error::Result;
use crate::io::HostTensor;
use crate::rng::SplitMix;

impl Sensorium {
    /// A model with random weights (for benchmarks), as `from_state_dict` would build it.
    pub fn random(config: SensoriumConfig, seed: u64) -> Result<Sensorium> {
        let mut rng = SplitMix::new(seed);
        let mut sd = random_core(&config.core, &mut rng)?;
        let hc = config.core.plan()?.out_channels;
        let mut put = |k: String, shape: Vec<usize>, lo: f32, hi: f32| {
            let n = shape.iter().product();
            sd.insert(k, HostTensor::new(shape, rng.vec(n, lo, hi)));
        };
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

/// Random tensors under upstream's key names for the core `core` (`core.features.*`, a
/// rotation-equivariant core's frozen bases too), drawn from `rng`.
pub(crate) fn random_core(core: &CoreConfig, rng: &mut SplitMix) -> Result<BTreeMap<String, HostTensor>> {
    let mut sd = BTreeMap::new();
    let plan = core.plan()?;
    let mut put = |k: String, shape: Vec<usize>, lo: f32, hi: f32| {
        let n = shape.iter().product();
        sd.insert(k, HostTensor::new(shape, rng.vec(n, lo, hi)));
    };
    // Keys the weights decide (a 0.3 config without `bias`) as the Sensorium baseline has
    // them: no bias on the first conv, biases on the hidden ones, affine batch norms.
    let has = |k: Keys, default: bool| k == Keys::Present || (k == Keys::AsSaved && default);
    // The frozen Hermite bases and rotations of a rotation-equivariant core.
    let mut fixed = Vec::new();
    for (l, p) in plan.layers.iter().enumerate() {
        let pre = &p.prefix;
        let (o, i, k) = (p.out_channels, p.in_channels, p.kern);
        let convs: Vec<(String, Vec<usize>)> = match p.conv {
            ConvKind::DepthSeparable => vec![
                ("ds_conv.in_depth_conv".into(), vec![o, i, 1, 1]),
                ("ds_conv.spatial_conv".into(), vec![o, 1, k, k]),
                ("ds_conv.out_depth_conv".into(), vec![o, o, 1, 1]),
            ],
            ConvKind::Plain => vec![("conv".into(), vec![o, i, k, k])],
            ConvKind::Hermite { .. } => {
                let ((key, shape, s), frozen) = super::rot_eq::random_conv(p);
                put(key, shape, -s, s);
                fixed.extend(frozen);
                Vec::new()
            }
        };
        for (name, shape) in convs {
            let s = 1.0 / ((shape[1] * shape[2] * shape[3]) as f32).sqrt();
            put(format!("{pre}.{name}.weight"), shape, -s, s);
            if has(p.conv_bias, l > 0) {
                put(format!("{pre}.{name}.bias"), vec![o], -0.1, 0.1);
            }
        }
        // The rotation-equivariant norm: F features shared by the rotations.
        let (c, norm, side) = if p.shared_norm {
            let f = o / p.rotations;
            (f, format!("{pre}.norm.batch_norm"), vec![1, 1, f, 1, 1])
        } else {
            (o, format!("{pre}.norm"), vec![1, o, 1, 1])
        };
        if let Some(affine) = p.norm {
            put(format!("{norm}.running_mean"), vec![c], -0.5, 0.5);
            put(format!("{norm}.running_var"), vec![c], 0.5, 2.0);
            if has(affine, true) {
                put(format!("{norm}.weight"), vec![c], 0.5, 1.5);
                put(format!("{norm}.bias"), vec![c], -0.2, 0.2);
            }
        }
        if has(p.bias_layer, false) {
            put(format!("{pre}.bias.bias"), side.clone(), -0.2, 0.2);
        }
        if has(p.scale_layer, false) {
            put(format!("{pre}.scale.scale"), side, 0.5, 1.5);
        }
    }
    sd.extend(fixed);
    Ok(sd)
}
