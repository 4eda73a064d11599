#!/usr/bin/env bash
# The benchmark of maestro against MaestroNG, the docker CLI and docker-compose, on the test
# bed behind a delaying proxy. One command, as root, from a fresh clone:
#
#   ./bench.sh                               peers at K=4 N=40, maestro over K=1,4,16 x N=10,40,200
#   ./bench.sh --scale 100                   the same, then the scale rows (the committed run)
#   ./bench.sh --tools maestro --merge       only maestro's rows; keep the peers' from results.json
#   ./bench.sh --scale-only                  only the scale rows (maestro, K=4 and K=100 ships,
#                                            direct and behind a bastion, N=200), into results.json
#   ./bench.sh --push-only                   only the push rows (maestro push against docker save |
#                                            gzip | ssh docker load, K=4), into results.json
#   ./bench.sh --report-only                 rewrite docs/benchmarks.md from bench/results.json
#   ./bench.sh --help                        the harness's options (delay, rounds, K, N, grid)
#
# Writes bench/results.json, docs/benchmarks.md and its charts. See docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$PWD

die() {
    echo "bench.sh: $*" >&2
    exit 1
}
log() { echo "bench.sh: $*" >&2; }

[ "$(id -u)" = 0 ] || die "must run as root (the test bed uses network namespaces)"

if [ "${1:-}" = --help ] || [ "${1:-}" = -h ]; then
    sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'
    exec python3 bench/harness.py --help
fi

REPORT_ONLY=0
WANT_MAESTRO=1
WANT_PEERS=1
args=()
prev=""
for a in "$@"; do
    case "$a" in
    --report-only) REPORT_ONLY=1 WANT_MAESTRO=0 WANT_PEERS=0 ;;
    # The scale rows are maestro's alone: nothing of the peers is needed.
    --scale-only) WANT_PEERS=0 args+=("$a") ;;
    --push-only) WANT_PEERS=0 args+=("$a") ;;
    *) args+=("$a") ;;
    esac
    # `--tools` without maestro needs no release build of maestro; `--tools maestro` no peers.
    if [ "$prev" = --tools ] && [[ ",$a," != *,maestro,* ]]; then WANT_MAESTRO=0; fi
    if [ "$prev" = --tools ] && [ "$a" = maestro ]; then WANT_PEERS=0; fi
    prev=$a
done

# --- what the peers and the harness need --------------------------------------------------
install_prereqs() {
    local missing=()
    [ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || missing+=(fonts-dejavu-core)
    if [ $WANT_PEERS = 1 ]; then
        command -v docker-compose >/dev/null || missing+=(docker-compose)
        # docker-py 5 (compose's) imports its ssh adapter only when paramiko is importable,
        # even when it shells out to the ssh client.
        /usr/bin/python3 -c 'import paramiko' 2>/dev/null || missing+=(python3-paramiko)
        python3 -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3-venv)
    fi
    if [ ${#missing[@]} -gt 0 ]; then
        log "installing ${missing[*]}"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null ||
            { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null; }
    fi
    if [ $WANT_PEERS = 1 ] && [ ! -x bench/.venv/maestrong/bin/maestro ]; then
        log "installing MaestroNG 0.8.3 into bench/.venv/maestrong"
        rm -rf bench/.venv/maestrong
        python3 -m venv bench/.venv/maestrong
        # Its docker-py 1.10 breaks with requests >= 2.29 / urllib3 2; setuptools provides the
        # distutils it still imports.
        bench/.venv/maestrong/bin/pip install -q 'maestro-ng==0.8.3' 'requests<2.29' 'urllib3<2' 'setuptools<70'
    fi
}

build() {
    log "building the harness (bench/, release)"
    cargo build -q --release --manifest-path bench/Cargo.toml
    if [ $WANT_MAESTRO = 1 ]; then
        log "building maestro (release)"
        cargo build -q --release --bin maestro
    fi
}

# --- teardown, whatever happens ---------------------------------------------------------
HARNESS_PID=""
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [ -n "$HARNESS_PID" ] && kill -0 "$HARNESS_PID" 2>/dev/null; then
        kill -TERM "$HARNESS_PID" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$HARNESS_PID" 2>/dev/null || break; sleep 0.2; done
        kill -KILL "$HARNESS_PID" 2>/dev/null || true
    fi
    if [ -f bench/work/proxy.pid ]; then
        local p
        p=$(cat bench/work/proxy.pid)
        # Only if that pid is still our proxy (pids are reused).
        if [[ $p =~ ^[0-9]+$ ]] && grep -q delay-proxy "/proc/$p/cmdline" 2>/dev/null; then kill "$p" 2>/dev/null || true; fi
        rm -f bench/work/proxy.pid
    fi
    local d
    for d in "${MAESTRO_BED_ROOT:-/tmp/maestro-bed}"/bench-k*/ "${MAESTRO_BED_ROOT:-/tmp/maestro-bed}"/bench-scale/ \
        "${MAESTRO_BED_ROOT:-/tmp/maestro-bed}"/bench-push/; do
        [ -d "$d" ] || continue
        testbed/bed.sh down --name "$(basename "$d")" || true
    done
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

install_prereqs
build
mkdir -p bench/work docs
if [ $REPORT_ONLY = 0 ]; then
    python3 bench/harness.py "${args[@]}" &
    HARNESS_PID=$!
    wait "$HARNESS_PID"
    HARNESS_PID=""
fi
python3 bench/report.py bench/results.json docs/benchmarks.md
