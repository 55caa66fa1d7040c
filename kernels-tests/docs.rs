//! The README's Rust program is examples/quickstart.rs, which `cargo test` compiles: the two stay
//! the same text, so the README never shows code that does not build.

#[test]
fn readme_program_is_the_quickstart_example() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let example = std::fs::read_to_string(root.join("examples/quickstart.rs")).unwrap();
    let section = &readme[readme.find("## Using it from Rust").expect("the README's Rust section")..];
    let start = section.find("```rust\n").expect("a rust block") + "```rust\n".len();
    let block = &section[start..start + section[start..].find("```").expect("the block's end")];
    let body = &example[example.find("use vcortex::").expect("the example's code")..];
    assert_eq!(block, body, "README.md's program differs from examples/quickstart.rs");
}

/// Every command of the README's "Try every command" runs as written, on the inputs that ship with
/// the repository, and writes its output.
#[test]
fn readme_commands_run_on_the_shipped_inputs() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let section = &readme[readme.find("## Try every command").expect("the section")..];
    let start = section.find("```sh\n").expect("a sh block") + "```sh\n".len();
    let block = &section[start..start + section[start..].find("```").expect("the block's end")];
    let out = std::env::temp_dir().join(format!("vcortex-readme-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).unwrap();
    let mut ran = 0;
    for line in block.lines().filter(|l| l.starts_with("vcortex ")) {
        let args: Vec<String> = line
            .split_whitespace()
            .skip(1)
            .map(|a| match a.strip_prefix("out/") {
                Some(f) => out.join(f).display().to_string(),
                None => a.to_string(),
            })
            .collect();
        let r =
            std::process::Command::new(env!("CARGO_BIN_EXE_vcortex")).args(&args).current_dir(root).output().unwrap();
        assert!(r.status.success(), "{line}: {}", String::from_utf8_lossy(&r.stderr));
        if let Some(i) = args.iter().position(|a| a == "-o") {
            assert!(std::path::Path::new(&args[i + 1]).is_file(), "{line}: no output");
        }
        ran += 1;
    }
    assert!(ran >= 9, "the README lists every command ({ran} found)");
    let _ = std::fs::remove_dir_all(&out);
}
