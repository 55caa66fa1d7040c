//! A `Stacked2dCore` config resolved into a list of layers, each one conv chain (a plain conv or a
//! depth-separable triple) with its normalisation and activation, and the wiring between them
//! (which outputs each layer reads, which the core returns): neuralpredictors' rules of the
//! version the config names, checked by field name. The loader reads keys by this plan and the
//! forward passes follow it. A `RotationEquivariant2dCore` config (`kind`) resolves into the same
//! list, its layers Hermite convs with R·F channels and a norm shared over the rotations (the
//! differences are in rot_eq.rs and marked here), so it shares the loader, forward and reference.

use super::config::{CoreConfig, CoreKind, PerLayer, Semantics, Stack};
use super::OP;
use crate::error::{Error, Result};
use crate::ops::{self, Activation};

/// Whether a state_dict entry exists: the config's rules say so, or (a 0.3 config without `bias`)
/// whatever the weights hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Keys {
    Present,
    Absent,
    AsSaved,
}

impl Keys {
    fn of(b: Option<bool>) -> Keys {
        match b {
            Some(true) => Keys::Present,
            Some(false) => Keys::Absent,
            None => Keys::AsSaved,
        }
    }
}

/// A layer's conv chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ConvKind {
    /// `conv`.
    Plain,
    /// `ds_conv.{in_depth_conv, spatial_conv, out_depth_conv}`.
    DepthSeparable,
    /// `hermite_conv.{coeffs, rotate_hermite.H, rotate_hermite.Rs.*}` (rot_eq.rs), the basis
    /// sampled `upsampling` times finer; no bias.
    Hermite { upsampling: usize },
}

/// One layer of the core: `inputs` (indices of earlier layers' outputs, concatenated along
/// channels; empty: the images) → conv chain → BatchNorm → Bias2D / Scale2D → activation.
#[derive(Clone, Debug)]
pub(crate) struct LayerPlan {
    /// `core.features.layer{l}`.
    pub(crate) prefix: String,
    pub(crate) inputs: Vec<usize>,
    pub(crate) in_channels: usize,
    pub(crate) out_channels: usize,
    pub(crate) kern: usize,
    pub(crate) stride: usize,
    pub(crate) padding: usize,
    pub(crate) dilation: usize,
    pub(crate) conv: ConvKind,
    /// Copies of every feature (`out_channels` = rotations · features, rotation-major); 1 but for
    /// a rotation-equivariant core.
    pub(crate) rotations: usize,
    /// The norm, bias and scale layers are the rotation-equivariant ones, over the features and
    /// shared by the rotations: `norm.batch_norm.*` [F], `bias.bias` / `scale.scale` [1, 1, F, 1, 1].
    pub(crate) shared_norm: bool,
    /// The conv biases (all three of a depth-separable chain).
    pub(crate) conv_bias: Keys,
    /// `norm.*` when there is a batch norm: whether it is affine (`norm.weight`, `norm.bias`).
    pub(crate) norm: Option<Keys>,
    /// `bias.bias` (Bias2DLayer) and `scale.scale` (Scale2DLayer) after the norm.
    pub(crate) bias_layer: Keys,
    pub(crate) scale_layer: Keys,
    pub(crate) act: Activation,
}

/// The resolved core.
#[derive(Clone, Debug)]
pub(crate) struct CorePlan {
    pub(crate) layers: Vec<LayerPlan>,
    /// The layers whose outputs the core returns, concatenated in this order.
    pub(crate) stack: Vec<usize>,
    pub(crate) out_channels: usize,
}

fn bad<T>(name: &str, why: impl Into<String>) -> Result<T> {
    Err(Error::param(OP, format!("core.{name}"), why.into()))
}

/// An option neuralpredictors `version` does not have.
fn absent_in(name: &str, version: &str, other: &str) -> Result<()> {
    bad(name, format!("neuralpredictors {version} has no such argument (it is {other}'s: set \"semantics\")"))
}

fn check_len<T>(name: &str, v: &PerLayer<T>, want: usize, what: &str) -> Result<()> {
    match v {
        PerLayer::Each(list) if list.len() != want => {
            bad(name, format!("a list of {} values, expected {want} (one per {what})", list.len()))
        }
        _ => Ok(()),
    }
}

impl CoreConfig {
    /// The layer list and wiring this config means, or the refusal naming the field at fault.
    pub(crate) fn plan(&self) -> Result<CorePlan> {
        let l_count = self.layers;
        let head = self.semantics == Semantics::Head;
        // Each size at least 1 and bounded (so that products of a few of them cannot overflow).
        let mut sizes: Vec<(&str, usize)> = vec![("layers", self.layers), ("input_channels", self.input_channels)];
        sizes.extend(self.hidden_channels.values().into_iter().map(|v| ("hidden_channels", v)));
        sizes.push(("input_kern", self.input_kern));
        sizes.extend(self.hidden_kern.values().into_iter().map(|v| ("hidden_kern", v)));
        sizes.extend([
            ("hidden_dilation", self.hidden_dilation),
            ("stride", self.stride),
            ("input_stride", self.input_stride),
        ]);
        for &(name, v) in &sizes {
            if v == 0 {
                return bad(name, "must be >= 1");
            }
        }
        for &(name, v) in &sizes {
            if v > ops::MAX_GEOMETRY {
                return bad(name, format!("{v} is past the supported maximum {}", ops::MAX_GEOMETRY));
            }
        }
        // The rotation-equivariant fields, and the Stacked2dCore options that core does not have.
        super::rot_eq::check(self)?;
        let rot_eq = self.kind == CoreKind::RotationEquivariant;
        let (r, up) = (self.rotations(), self.upsampling_factor());
        let shared_norm = rot_eq && self.rot_eq_batch_norm.unwrap_or(true);
        let conv_of = |l: usize| {
            if rot_eq {
                ConvKind::Hermite { upsampling: up }
            } else if l > 0 && self.depth_separable {
                ConvKind::DepthSeparable
            } else {
                ConvKind::Plain
            }
        };
        for (name, v) in [("skip", self.skip), ("hidden_padding", self.hidden_padding.unwrap_or(0))] {
            if v > ops::MAX_GEOMETRY {
                return bad(name, format!("{v} is past the supported maximum {}", ops::MAX_GEOMETRY));
            }
        }
        // What each version's constructor accepts.
        if head {
            if self.independent_bn_bias.is_some() {
                absent_in("independent_bn_bias", "head", "0.3")?;
            }
        } else {
            if self.input_stride != 1 {
                absent_in("input_stride", "0.3", "head")?;
            }
            for (name, set) in [
                ("final_batchnorm_scale", self.final_batchnorm_scale.is_some()),
                ("nonlinearity_type", self.nonlinearity_type.is_some()),
                ("nonlinearity_config", self.nonlinearity_config.is_some()),
            ] {
                if set {
                    absent_in(name, "0.3", "head")?;
                }
            }
            for (name, list) in [
                ("hidden_channels", self.hidden_channels.is_list()),
                ("bias", self.bias.as_ref().is_some_and(|b| b.is_list())),
                ("batch_norm", self.batch_norm.is_list()),
                ("batch_norm_scale", self.batch_norm_scale.is_list()),
            ] {
                if list {
                    bad(
                        name,
                        "neuralpredictors 0.3 takes one value here, not a list (a list is head's: set \"semantics\")",
                    )?;
                }
            }
        }
        check_len("hidden_channels", &self.hidden_channels, l_count, "layer")?;
        check_len("hidden_kern", &self.hidden_kern, l_count - 1, "hidden layer")?;
        if let Some(b) = &self.bias {
            check_len("bias", b, l_count, "layer")?;
        }
        check_len("batch_norm", &self.batch_norm, l_count, "layer")?;
        check_len("batch_norm_scale", &self.batch_norm_scale, l_count, "layer")?;
        if self.attention_conv {
            if self.depth_separable {
                return bad("attention_conv", "depth_separable and attention_conv can not both be true");
            }
            return bad("attention_conv", "self-attention layers are not supported");
        }
        if let Some(t) = &self.nonlinearity_type {
            if t != "AdaptiveELU" {
                return bad("nonlinearity_type", format!("{t:?}: only \"AdaptiveELU\" is supported"));
            }
        }
        if self.elu_shift.is_some() && (self.elu_xshift.is_some() || self.elu_yshift.is_some()) {
            return bad("elu_shift", "give elu_shift [x, y] or elu_xshift / elu_yshift, not both");
        }
        let [xs, ys] = self.elu_shift.unwrap_or([self.elu_xshift.unwrap_or(0.0), self.elu_yshift.unwrap_or(0.0)]);
        if !(xs.is_finite() && ys.is_finite()) {
            return bad(if self.elu_shift.is_some() { "elu_shift" } else { "elu_xshift" }, "must be finite");
        }
        if !(self.batch_norm_eps >= 0.0 && self.batch_norm_eps.is_finite()) {
            return bad("batch_norm_eps", "must be finite and >= 0");
        }
        if head && self.hidden_channels.is_list() && self.skip > 1 {
            return bad("skip", "a list of hidden channels and skip > 1 at the same time is not implemented upstream");
        }

        // The bias rules (they decide the keys norm.*, bias.bias, scale.scale and the conv biases).
        let bn = |l: usize| self.batch_norm.get(l);
        // Per layer: `bias` (None: as the weights have it) and `batch_norm_scale`.
        let (biases, scales): (Vec<Option<bool>>, Vec<bool>) = if head {
            // Lists throughout; one batch_norm_scale means it for all but the last layer, whose
            // scale is final_batchnorm_scale.
            let bias = self.bias.clone().unwrap_or(PerLayer::All(true));
            let final_scale = self.final_batchnorm_scale.unwrap_or(true);
            (0..l_count)
                .map(|l| {
                    let s = match &self.batch_norm_scale {
                        PerLayer::All(_) if l + 1 == l_count => final_scale,
                        v => v.get(l),
                    };
                    (Some(bias.get(l)), s)
                })
                .unzip()
        } else {
            let bias = self.bias.as_ref().map(|b| b.get(0));
            (vec![bias; l_count], vec![self.batch_norm_scale.get(0); l_count])
        };
        let bias_of = |l: usize| biases[l];
        let bns_of = |l: usize| scales[l];
        let ibb = self.independent_bn_bias.unwrap_or(true);
        let norm_keys = |l: usize| -> (Option<Keys>, Keys, Keys) {
            if !bn(l) {
                return (None, Keys::Absent, Keys::Absent);
            }
            match bias_of(l) {
                None => (Some(Keys::AsSaved), Keys::AsSaved, Keys::AsSaved),
                Some(_) if !head && ibb => (Some(Keys::Present), Keys::Absent, Keys::Absent),
                Some(b) => {
                    let s = bns_of(l);
                    (Some(Keys::of(Some(b && s))), Keys::of(Some(b && !s)), Keys::of(Some(!b && s)))
                }
            }
        };
        let act = |l: usize| {
            if self.linear || (l + 1 == l_count && !self.final_nonlinearity) {
                Activation::Identity
            } else if xs == 0.0 && ys == 0.0 {
                Activation::Elu
            } else {
                Activation::AdaptiveElu { xshift: xs, yshift: ys }
            }
        };

        let mut layers = Vec::with_capacity(l_count);
        let (norm, bias_layer, scale_layer) = norm_keys(0);
        layers.push(LayerPlan {
            prefix: "core.features.layer0".into(),
            inputs: Vec::new(),
            in_channels: self.input_channels,
            out_channels: r * self.hidden_channels.get(0),
            kern: self.input_kern,
            // The rotation-equivariant core gives every layer `stride`.
            stride: if rot_eq { self.stride } else { self.input_stride },
            padding: if self.pad_input { self.input_kern / 2 } else { 0 },
            dilation: 1,
            conv: conv_of(0),
            rotations: r,
            shared_norm,
            // `bias and not batch_norm`: on head's lists that is always false (a Hermite conv
            // has none).
            conv_bias: if head || rot_eq { Keys::Absent } else { Keys::of(bias_of(0).map(|b| b && !bn(0))) },
            norm,
            bias_layer,
            scale_layer,
            act: act(0),
        });
        let auto_pad = |k: usize| ((k - 1) * self.hidden_dilation).div_ceil(2);
        for l in 1..l_count {
            let k = self.hidden_kern.get(l - 1);
            let padding = match (self.semantics, self.hidden_padding) {
                // RotationEquivariant2dCore, both versions: `hidden_kern[0] // 2` once when None.
                (_, Some(p)) if rot_eq => p,
                (_, None) if rot_eq => self.hidden_kern.get(0) / 2,
                (Semantics::V0_3, Some(p)) => p,
                // 0.3 computes it once, from the first hidden kernel.
                (Semantics::V0_3, None) => auto_pad(self.hidden_kern.get(0)),
                // head: `hidden_padding or …`, per layer (0 means computed too).
                (Semantics::Head, Some(p)) if p > 0 => p,
                (Semantics::Head, _) => auto_pad(k),
            };
            let m = if self.skip > 1 { self.skip.min(l) } else { 1 };
            // (A rotation-equivariant core has no skip: m = 1 there.)
            let in_channels = if m > 1 { m * self.hidden_channels.get(0) } else { r * self.hidden_channels.get(l - 1) };
            let (norm, bias_layer, scale_layer) = norm_keys(l);
            layers.push(LayerPlan {
                prefix: format!("core.features.layer{l}"),
                inputs: (l - m..l).collect(),
                in_channels,
                out_channels: r * self.hidden_channels.get(l),
                kern: k,
                stride: self.stride,
                padding,
                dilation: self.hidden_dilation,
                conv: conv_of(l),
                rotations: r,
                shared_norm,
                // Head passes its (truthy) list: every hidden conv has biases (a Hermite conv none).
                conv_bias: if rot_eq {
                    Keys::Absent
                } else if head {
                    Keys::Present
                } else {
                    Keys::of(bias_of(l))
                },
                norm,
                bias_layer,
                scale_layer,
                act: act(l),
            });
        }

        let n = l_count as i64;
        let in_range =
            |i: i64| -> Option<usize> { (-n..n).contains(&i).then_some(if i < 0 { n + i } else { i } as usize) };
        let stack: Vec<usize> = match &self.stack {
            Stack::All => (0..l_count).collect(),
            Stack::From(s) => match in_range(*s) {
                Some(start) => (start..l_count).collect(),
                None => {
                    return bad(
                        "stack",
                        format!("{s} selects no layer of {l_count} (range(layers)[stack:]; -{n}..{} allowed)", n - 1),
                    )
                }
            },
            Stack::Layers(v) if v.is_empty() => return bad("stack", "an empty list selects no layer"),
            Stack::Layers(v) => {
                let mut out = Vec::with_capacity(v.len());
                for &i in v {
                    match in_range(i) {
                        Some(j) => out.push(j),
                        None => return bad("stack", format!("layer {i} is out of range for {l_count} layers")),
                    }
                }
                out
            }
        };
        // Concatenated outputs must have one size for every image size: stride 1 and the same
        // net change of size between them.
        let offsets = |set: &[usize], name: &str| -> Result<()> {
            let (lo, hi) = (*set.iter().min().unwrap_or(&0), *set.iter().max().unwrap_or(&0));
            let mut off = vec![0i64; hi + 1];
            for l in lo + 1..=hi {
                let p = &layers[l];
                if p.stride != 1 {
                    return bad(
                        name,
                        format!(
                            "layers {lo} and {hi} are concatenated but layer {l} has stride {}: their sizes differ",
                            p.stride
                        ),
                    );
                }
                off[l] = off[l - 1] + 2 * p.padding as i64 - (p.dilation * (p.kern - 1)) as i64;
            }
            if let Some(&j) = set.iter().find(|&&j| off[j] != off[lo]) {
                return bad(
                    name,
                    format!(
                        "layers {lo} and {j} are concatenated but differ in size by {} pixels (padding)",
                        off[j] - off[lo]
                    ),
                );
            }
            Ok(())
        };
        for p in &layers {
            if p.inputs.len() > 1 {
                offsets(&p.inputs, "skip")?;
            }
        }
        offsets(&stack, "stack")?;
        let out_channels = stack.iter().try_fold(0usize, |a, &i| a.checked_add(layers[i].out_channels));
        let out_channels = match out_channels {
            Some(c) if c <= ops::MAX_GEOMETRY => c,
            _ => return bad("stack", "the stacked channels are past the supported maximum"),
        };
        Ok(CorePlan { layers, stack, out_channels })
    }
}

impl CorePlan {
    /// Each layer's output [C, H, W] for images of `h`×`w` (every layer runs, stacked or not).
    pub(crate) fn sizes(&self, h: usize, w: usize) -> Result<Vec<[usize; 3]>> {
        let mut out: Vec<[usize; 3]> = Vec::with_capacity(self.layers.len());
        let (mut ih, mut iw) = (h, w);
        for p in &self.layers {
            if let Some(&first) = p.inputs.first() {
                [_, ih, iw] = out[first];
            }
            let ext = p.dilation * (p.kern - 1) + 1;
            let step = |size: usize| -> Result<usize> {
                let padded = size + 2 * p.padding;
                if padded < ext {
                    return Err(Error::shape(
                        OP,
                        "images",
                        &[h, w],
                        format!("at least {ext} pixels for a {}-wide kernel", p.kern),
                    ));
                }
                Ok((padded - ext) / p.stride + 1)
            };
            out.push([p.out_channels, step(ih)?, step(iw)?]);
        }
        Ok(out)
    }

    /// The core's output [C, H, W] for images of `h`×`w`.
    pub(crate) fn output(&self, h: usize, w: usize) -> Result<[usize; 3]> {
        let sizes = self.sizes(h, w)?;
        let [_, oh, ow] = sizes[self.stack[0]];
        Ok([self.out_channels, oh, ow])
    }
}
