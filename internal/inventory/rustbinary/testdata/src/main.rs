// A test fixture for Bulwark's cargo-auditable extractor: the smallest Rust
// program, to which build.sh adds a `.dep-v0` section. It is never run.
fn main() {
    println!("hello");
}
