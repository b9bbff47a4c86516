fn main() {
    std::process::exit(reconciler::cli_main());
}
