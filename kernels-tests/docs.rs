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
