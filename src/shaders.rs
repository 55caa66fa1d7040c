//! The WGSL sources, one file per kernel family, embedded at build time. Every family is prefixed
//! with `shaders/common.wgsl` (activation functions and the epilogue's override constants).

pub struct ShaderSource {
    pub name: &'static str,
    pub body: &'static str,
    /// Needs `enable f16;` (the adapter's shader-f16).
    pub needs_f16: bool,
}

pub const COMMON: &str = include_str!("../shaders/common.wgsl");

pub const ALL: &[ShaderSource] = &[
    ShaderSource { name: "copy", body: include_str!("../shaders/copy.wgsl"), needs_f16: false },
    ShaderSource { name: "activation", body: include_str!("../shaders/activation.wgsl"), needs_f16: false },
    ShaderSource { name: "conv2d", body: include_str!("../shaders/conv2d.wgsl"), needs_f16: false },
    ShaderSource { name: "conv3d", body: include_str!("../shaders/conv3d.wgsl"), needs_f16: false },
    ShaderSource { name: "matmul", body: include_str!("../shaders/matmul.wgsl"), needs_f16: false },
    ShaderSource { name: "norm", body: include_str!("../shaders/norm.wgsl"), needs_f16: false },
    ShaderSource { name: "box_filter", body: include_str!("../shaders/box_filter.wgsl"), needs_f16: false },
    ShaderSource { name: "divisive_norm", body: include_str!("../shaders/divisive_norm.wgsl"), needs_f16: false },
    ShaderSource { name: "neurn", body: include_str!("../shaders/neurn.wgsl"), needs_f16: false },
    ShaderSource { name: "pool", body: include_str!("../shaders/pool.wgsl"), needs_f16: false },
    ShaderSource { name: "diffusion", body: include_str!("../shaders/diffusion.wgsl"), needs_f16: false },
    ShaderSource { name: "flows", body: include_str!("../shaders/flows.wgsl"), needs_f16: false },
    ShaderSource { name: "readout", body: include_str!("../shaders/readout.wgsl"), needs_f16: false },
    ShaderSource { name: "attention", body: include_str!("../shaders/attention.wgsl"), needs_f16: false },
    ShaderSource { name: "graph", body: include_str!("../shaders/graph.wgsl"), needs_f16: false },
    ShaderSource { name: "guidance", body: include_str!("../shaders/guidance.wgsl"), needs_f16: false },
    ShaderSource { name: "scores", body: include_str!("../shaders/scores.wgsl"), needs_f16: false },
    ShaderSource { name: "random", body: include_str!("../shaders/random.wgsl"), needs_f16: false },
    ShaderSource { name: "gru", body: include_str!("../shaders/gru.wgsl"), needs_f16: false },
    ShaderSource { name: "cast_f16", body: include_str!("../shaders/cast_f16.wgsl"), needs_f16: true },
];

pub fn get(name: &str) -> Option<&'static ShaderSource> {
    ALL.iter().find(|s| s.name == name)
}

impl ShaderSource {
    /// The source handed to the compiler: the family's `enable` directives, then the common
    /// prelude, then the family's body.
    pub fn composed(&self) -> String {
        let (directives, rest): (Vec<&str>, Vec<&str>) =
            self.body.lines().partition(|l| l.trim_start().starts_with("enable "));
        format!("{}\n{}\n{}", directives.join("\n"), COMMON, rest.join("\n"))
    }
}

/// A WGSL `override` constant of one shader family, or of `common.wgsl` (family `"common"`,
/// composed into every family). The host sets overrides only through these typed keys
/// ([`crate::runtime::PipelineKey::with`]), so each name is written once in Rust, in
/// [`overrides`], and a test holds that list to the names each shader declares.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Override {
    pub family: &'static str,
    pub name: &'static str,
}

macro_rules! family_overrides {
    ($($(#[$doc:meta])* $module:ident => [$($name:ident),* $(,)?];)*) => {
        $(
            $(#[$doc])*
            pub mod $module {
                use super::super::Override;
                $(pub const $name: Override = Override { family: stringify!($module), name: stringify!($name) };)*
                /// Every override of this family.
                pub const ALL: &[Override] = &[$($name),*];
            }
        )*
        /// Every family's overrides, for the test that holds them to the shaders.
        pub const ALL: &[&[super::Override]] = &[$($module::ALL),*];
    };
}

/// The override constants of every shader family, by family. Family overrides carry no family
/// prefix (each family is compiled on its own); those of `common.wgsl` start with `ACT`.
pub mod overrides {
    family_overrides! {
        /// The fused epilogue's activation (shaders/common.wgsl).
        common => [ACT, ACT_A, ACT_B];
        conv2d => [HAS_BIAS, HAS_AFFINE, SPLIT, DW_TX, DW_Q, DB_1X1, DB_WIDE];
        conv3d => [HAS_BIAS, HAS_AFFINE, SPLIT, NARROW];
        matmul => [TRANS_B, HAS_BIAS, SPLIT];
        norm => [HAS_WEIGHT, HAS_BIAS];
        box_filter => [SQUARE];
        divisive_norm => [WRITE_CENTERED, L1, GAMMA, BETA, TH, TW];
        neurn => [WINDOW, REVERSE];
        diffusion => [NOISE, CLIP, THRESH, GUIDE];
        flows => [COUPLING];
        readout => [ALIGN_CORNERS, HAS_BIAS, HAS_SHIFT, REDUCE, SAMPLE, ORDER, CONV_BIAS, ZIG_MAP, VARIANCE];
        graph => [DIRECT];
        scores => [GROUPS, CLOSE];
        gru => [SEQ];
    }
}
