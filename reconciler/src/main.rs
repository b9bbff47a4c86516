//! `limavm-reconciler`: the reference reconciler's command line (see
//! [`reconciler::cli_main`]).

fn main() {
    std::process::exit(reconciler::cli_main());
}
