//! greenlight command-line entry point.
fn main() {}
