# Everyday commands. `just` is optional: each recipe is a plain command.

# Every test, as CI runs them minus the lints.
test *args:
    scripts/test {{args}}

# The property tests with a fuzzing budget: 2000 cases each unless
# PROPTEST_CASES says otherwise (CI runs a few).
fuzz *args:
    PROPTEST_CASES="${PROPTEST_CASES:-2000}" cargo nextest run --profile fuzz -p reproduce --test properties {{args}}

# Real Lima for `--toolset real` and the real-Lima tests: limactl and its
# guest agent (Lima v2.2.0) into tools/, QEMU from apt, and (as root) the
# unprivileged user limactl runs as. Idempotent.
real-lima-install:
    scripts/install-real-lima

# The real guest real Lima boots to its running event (a Debian kernel and
# an initramfs, from Debian packages) into tools/real-guest. Idempotent.
real-guest:
    scripts/build-real-guest

# The main job: reproduce every finding, fixed and regressed.
reproduce *args:
    cargo run --release -p reproduce --bin reproduce -- {{args}}

# The harness's own speed (medians).
bench *args:
    cargo run --release -p reproduce --bin bench -- {{args}}

lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings

windows-check:
    ../shared/tools/windows-check .

macos-check:
    ../shared/tools/macos-check .

# The Windows build's tests under Wine, with pass/fail/skip counts.
wine-tests *args:
    scripts/wine-tests {{args}}

# Type-check, then run the tests under Wine.
windows-test *args:
    ../shared/tools/windows-test . {{args}}

# What .ci/run runs.
# Mutation testing of the reconciler's lifecycle modules: the fixed sample
# CI runs, or `just mutants --all` for every mutant.
mutants *args:
    scripts/mutants {{args}}

ci:
    .ci/run
