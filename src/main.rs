mod linux;
fn main() {}
