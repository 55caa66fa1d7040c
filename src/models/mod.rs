//! Model pipelines composed of ops; weights loaded and folded once, at load time.

pub mod cgnf;
pub mod flow;
pub mod mdm;
pub mod platypose;
pub mod sensorium;
pub mod transformer;

pub use cgnf::{Cgnf, CgnfConfig};
pub use flow::{Flow, FlowConfig};
pub use sensorium::{Sensorium, SensoriumConfig};
