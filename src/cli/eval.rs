//! `vcortex eval`: one op from a case file (docs/eval-format.md), on the GPU or the CPU reference.

use std::path::Path;

use vcortex::eval::{self, Backend};
use vcortex::io::check_output;
use vcortex::{Context, Result};

pub fn run(case: &Path, output: &Path, cpu: bool) -> Result<()> {
    check_output(output, &[("case", case)])?;
    let ctx;
    let backend = if cpu {
        Backend::Cpu
    } else {
        ctx = Context::new()?;
        Backend::Gpu(&ctx)
    };
    let outs = eval::eval_file(case, output, &backend)?;
    let desc: Vec<String> = outs.iter().map(|(n, t)| format!("{n} {:?}", t.shape)).collect();
    println!("wrote {} ({})", output.display(), desc.join(", "));
    Ok(())
}
