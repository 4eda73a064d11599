# shellcheck shell=bash
# Sourced by test.sh and demo.sh: makes sure this Debian-like machine has what the test bed
# and the build need. Needs root.

MAESTRO_DEB_PACKAGES=(docker.io openssh-server openssh-client busybox-static iproute2
    docker-registry apache2-utils util-linux ca-certificates curl openssl)

prereqs_die() {
    echo "$(basename "$0"): $*" >&2
    exit 1
}

ensure_root() {
    [ "$(id -u)" = 0 ] || prereqs_die "run me as root (the test bed makes network namespaces and runs dockerd)"
}

ensure_packages() {
    local missing=() p
    for p in "${MAESTRO_DEB_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    command -v apt-get >/dev/null || prereqs_die "missing packages ${missing[*]} and no apt-get"
    echo "installing ${missing[*]}" >&2
    # Keep package scripts from starting machine-wide daemons (dockerd, sshd, registry): the
    # test bed runs its own, and a machine-wide dockerd would add firewall rules we do not want.
    local policy=/usr/sbin/policy-rc.d made_policy=""
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && made_policy=1
    fi
    local rc=0
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" ||
        { DEBIAN_FRONTEND=noninteractive apt-get update &&
            DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"; } ||
        rc=$?
    [ -n "$made_policy" ] && rm -f "$policy"
    [ $rc = 0 ] || prereqs_die "could not install ${missing[*]}"
}

ensure_cargo() {
    # rustup's default location, for shells that did not source ~/.cargo/env.
    [ -d "$HOME/.cargo/bin" ] && export PATH="$HOME/.cargo/bin:$PATH"
    if ! command -v cargo >/dev/null; then
        echo "installing the Rust toolchain with rustup" >&2
        curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs |
            sh -s -- -y --profile minimal --component rustfmt,clippy ||
            prereqs_die "could not install Rust (https://rustup.rs)"
        export PATH="$HOME/.cargo/bin:$PATH"
    fi
    if [ "${1:-}" = --lint ] && command -v rustup >/dev/null; then
        { cargo fmt --version && cargo clippy --version; } >/dev/null 2>&1 ||
            rustup component add rustfmt clippy
    fi
}

# The parity test (tests/bed/parity.rs) installs MaestroNG into a virtualenv: python3 with venv and
# ensurepip, which Debian ships apart as python3-venv.
ensure_python_venv() {
    python3 -c 'import venv, ensurepip' >/dev/null 2>&1 && return 0
    local MAESTRO_DEB_PACKAGES=(python3 python3-venv)
    ensure_packages
}
