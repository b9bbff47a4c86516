//! `limavm-fake`: the multicall fake; the name it runs under picks the tool.

fn main() {
    std::process::exit(fakes::run_multicall());
}
