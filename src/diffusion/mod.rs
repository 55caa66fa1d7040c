//! Diffusion sampling on the host side: schedules in f64 (diffusers conventions; docs/ops.md, diffusion schedules and
//! steps) and the per-step coefficients the fused step kernel (ops::diffusion) consumes.

pub mod respace;
pub mod schedule;

pub use respace::SpacedSchedule;
pub use schedule::{BetaSchedule, DdimConfig, DdpmConfig, Prediction, Spacing, StepCoeffs, Threshold, VarianceType};
