#!/usr/bin/env bash
# The whole test suite, as CI runs it (run as root on a Debian-like machine):
#   ./test.sh
# installs what is missing, checks formatting and lints, brings up a test bed (3 ships, a
# bastion and 2 ships reachable only through it, a registry), runs every unit and integration
# test against it, and tears the bed down whatever happens. Extra arguments go to `cargo test`.
#
# It first removes every test bed on the machine (`bed.sh down --all`), leftovers of killed
# runs; MAESTRO_KEEP_BEDS=1 skips that when other beds are in use.
set -euo pipefail
cd "$(dirname "$0")"
. testbed/prereqs.sh

ensure_root
ensure_packages
ensure_python_venv
ensure_cargo --lint

step() { printf '\n==> %s\n' "$*" >&2; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --all-targets -- -D warnings

step "test bed"
BED_NAME=${MAESTRO_TEST_BED_NAME:-ci}
[ "${MAESTRO_KEEP_BEDS:-}" = 1 ] || testbed/bed.sh down --all
trap 'testbed/bed.sh down --name "$BED_NAME"' EXIT
trap 'exit 130' INT TERM # so that the EXIT trap tears the bed down on ^C or kill too
bed_json=$(testbed/bed.sh up --name "$BED_NAME" --ships 3 --inner 2 --registry)
export MAESTRO_TESTBED=$bed_json

step "cargo test"
cargo test "$@"

# The benchmark's checks are evidence too: a deliberately broken tool (one that skips the
# restart, puts a container on the wrong ship, starts levels out of order, ...) must be marked
# wrong by bench/harness.py, on two ships of this bed (containers hs-* only).
step "benchmark harness self-test"
timeout 900 python3 bench/harness.py --selftest "$bed_json"

# --- bounded fuzz runs of the config loader and the SSH file parsers (reliability; see fuzz/
# and docs/reliability.md) ---
# cargo-fuzz needs nightly features; RUSTC_BOOTSTRAP=1 lets the stable toolchain use them.
# Seeds: the examples and every test fixture as they are (read only; libFuzzer walks the
# directories), so that no copy of them goes stale; the SSH parsers start from the bed's own
# ssh_config and known_hosts when a bed is up, else from nothing.
# MAESTRO_SKIP_FUZZ=1 skips it; MAESTRO_FUZZ_SECONDS sets the whole budget (default 60):
# two thirds to config_load, a sixth each to known_hosts and ssh_config.
if [ "${MAESTRO_SKIP_FUZZ:-}" != 1 ]; then
    fuzz_total=${MAESTRO_FUZZ_SECONDS:-60}
    fuzz_ssh=$(( fuzz_total / 6 > 0 ? fuzz_total / 6 : 1 ))
    fuzz_config=$(( fuzz_total - 2 * fuzz_ssh > 0 ? fuzz_total - 2 * fuzz_ssh : 1 ))
    command -v cargo-fuzz >/dev/null 2>&1 || cargo install --locked cargo-fuzz
    step "cargo fuzz run config_load (${fuzz_config}s)"
    mkdir -p fuzz/corpus/config_load
    RUSTC_BOOTSTRAP=1 cargo fuzz run config_load fuzz/corpus/config_load examples tests/fixtures -- \
        -max_total_time="$fuzz_config" -max_len=65536 -timeout=10 -rss_limit_mb=2048
    bed_dir=$(dirname "$bed_json")
    for target in known_hosts ssh_config; do
        step "cargo fuzz run $target (${fuzz_ssh}s)"
        mkdir -p "fuzz/corpus/$target"
        seeds=()
        [ -f "$bed_dir/$target" ] && { mkdir -p "fuzz/corpus/$target-seed"; cp "$bed_dir/$target" "fuzz/corpus/$target-seed/"; seeds=("fuzz/corpus/$target-seed"); }
        RUSTC_BOOTSTRAP=1 cargo fuzz run "$target" "fuzz/corpus/$target" "${seeds[@]}" -- \
            -max_total_time="$fuzz_ssh" -max_len=16384 -timeout=10 -rss_limit_mb=2048
    done
fi
# --- end of the fuzz run ---

step "all tests passed"
