//! Placeholder so the examples package builds until its binaries land.
fn main() {
    println!("chatkit-engine {}", chatkit_engine::VERSION);
}
