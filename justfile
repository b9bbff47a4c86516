# Everyday commands. `just` is optional: each recipe is a plain command.

# Every test, as CI runs them minus the lints.
test *args:
    scripts/test {{args}}

# The main job: reproduce every finding, fixed and regressed.
reproduce *args:
    cargo run --release -p scenarios --bin reproduce -- {{args}}

# The harness's own speed (medians).
bench *args:
    cargo run --release -p scenarios --bin bench -- {{args}}

lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings

windows-check:
    ../shared/tools/windows-check .

# Type-check, then run the tests under Wine.
windows-test *args:
    ../shared/tools/windows-test . {{args}}

# What .ci/run runs.
ci:
    .ci/run
