//! `vcortex info`: the adapters seen, the one chosen, its features and limits.

use vcortex::runtime::adapter;
use vcortex::{Context, Result};

pub fn run() -> Result<()> {
    let instance = adapter::instance();
    let adapters = adapter::enumerate(&instance);
    println!("adapters seen:");
    for a in &adapters {
        println!("  {}", adapter::AdapterSummary::of(&a.get_info()));
    }
    let ctx = Context::with_adapter(adapter::choose(adapters)?)?;
    let a = ctx.adapter();
    println!("chosen: {a}\n  driver: {}", a.driver);
    let c = ctx.capabilities();
    println!("features: timestamp queries {}, shader-f16 {}, subgroups {}", c.timestamps, c.shader_f16, c.subgroups);
    let l = ctx.limits();
    println!("limits:");
    println!("  max_buffer_size {}", l.max_buffer_size);
    println!("  max_storage_buffer_binding_size {}", l.max_storage_buffer_binding_size);
    println!("  max_storage_buffers_per_shader_stage {}", l.max_storage_buffers_per_shader_stage);
    println!("  max_compute_workgroup_storage_size {}", l.max_compute_workgroup_storage_size);
    println!("  max_compute_invocations_per_workgroup {}", l.max_compute_invocations_per_workgroup);
    println!("  max_compute_workgroups_per_dimension {}", l.max_compute_workgroups_per_dimension);
    println!("  min_uniform_buffer_offset_alignment {}", l.min_uniform_buffer_offset_alignment);
    println!("pool budget: {} MiB of idle buffers (VCORTEX_POOL_BUDGET_MB)", ctx.pool_stats().budget >> 20);
    println!("shader checks: {:?} (VCORTEX_SHADER_CHECKS=full for all of wgpu's)", ctx.shader_checks());
    Ok(())
}
