//! Model pipelines composed of ops; weights loaded and folded once, at load time.

pub mod sensorium;

pub use sensorium::{Sensorium, SensoriumConfig};
