fn main() { println!("loadtest: not built yet"); }
