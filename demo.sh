#!/usr/bin/env bash
# The README's first command (as root, on a Debian-like machine):
#   ./demo.sh [FILE]   installs what is missing, builds maestro, brings up a test bed named
#                      "demo" (3 ships, and 2 more reachable only through a bastion) and runs
#                      maestro on FILE against it over SSH (default examples/demo.yaml; any of
#                      examples/*.yaml runs there, e.g. ./demo.sh examples/zookeeper-kafka.yaml)
#   ./demo.sh down     tears the bed down
#
# The examples are rendered by maestro's Jinja support; they find the bed's addresses in
# these variables (written to target/demo/demo.env, which you can `source` to run maestro by
# hand afterwards):
#   DEMO_SHIP1_IP DEMO_SHIP2_IP DEMO_SHIP3_IP   ships reachable directly
#   DEMO_INNER1_IP DEMO_INNER2_IP               the ships behind the bastion
#   DEMO_BASTION_IP                             the bastion (jump host for inner1 and inner2)
#   DEMO_SSH_KEY DEMO_KNOWN_HOSTS DEMO_SSH_USER the operator's key, known_hosts and user
#   DEMO_SHIP1_DOCKER_SOCKET ...                each ship's Docker socket (on the ship)
#   DEMO_IMAGE                                  the test image present on every ship
#   DEMO_REGISTRY DEMO_REGISTRY_USER DEMO_REGISTRY_PASSWORD
#                                               a registry (ip:port) holding DEMO_IMAGE, with
#                                               basic auth; the outer ships can pull from it
#   MAESTRO_SSH_CONFIG                          an ssh_config with a Host entry per ship
set -euo pipefail
cd "$(dirname "$0")"
. testbed/prereqs.sh

BED_NAME=demo
DEMO_FILE=${DEMO_FILE:-examples/demo.yaml}
ENV_FILE=target/demo/demo.env

if [ "${1:-}" = down ]; then
    ensure_root
    testbed/bed.sh down --name "$BED_NAME"
    rm -f "$ENV_FILE"
    echo "demo bed removed"
    exit 0
fi
case $# in
0) ;;
1) DEMO_FILE=$1 ;;
*) echo "usage: $0 [FILE | down]" >&2; exit 2 ;;
esac

ensure_root
[ -f "$DEMO_FILE" ] || prereqs_die "$DEMO_FILE not found"
ensure_packages
ensure_cargo

echo "==> building maestro" >&2
cargo build
MAESTRO=target/debug/maestro

echo "==> bringing up the demo bed (3 ships + 2 behind a bastion)" >&2
bed_json=$(testbed/bed.sh up --name "$BED_NAME" --ships 3 --inner 2 --registry)
bed_dir=$(dirname "$bed_json")
# shellcheck disable=SC1091
. "$bed_dir/bed.env"

mkdir -p "$(dirname "$ENV_FILE")"
{
    echo "# source me to run maestro by hand against the demo bed"
    printf 'export DEMO_SHIP1_IP=%q DEMO_SHIP2_IP=%q DEMO_SHIP3_IP=%q\n' \
        "$BED_SHIP1_IP" "$BED_SHIP2_IP" "$BED_SHIP3_IP"
    printf 'export DEMO_INNER1_IP=%q DEMO_INNER2_IP=%q DEMO_BASTION_IP=%q\n' \
        "$BED_INNER1_IP" "$BED_INNER2_IP" "$BED_BASTION_IP"
    printf 'export DEMO_SHIP1_DOCKER_SOCKET=%q DEMO_SHIP2_DOCKER_SOCKET=%q\n' \
        "$BED_SHIP1_SOCKET" "$BED_SHIP2_SOCKET"
    printf 'export DEMO_SHIP3_DOCKER_SOCKET=%q DEMO_INNER1_DOCKER_SOCKET=%q\n' \
        "$BED_SHIP3_SOCKET" "$BED_INNER1_SOCKET"
    printf 'export DEMO_INNER2_DOCKER_SOCKET=%q\n' "$BED_INNER2_SOCKET"
    printf 'export DEMO_SSH_KEY=%q DEMO_KNOWN_HOSTS=%q DEMO_SSH_USER=root\n' \
        "$BED_KEY" "$BED_KNOWN_HOSTS"
    printf 'export DEMO_IMAGE=%q\n' "$BED_IMAGE"
    printf 'export DEMO_REGISTRY=%q DEMO_REGISTRY_USER=%q DEMO_REGISTRY_PASSWORD=%q\n' \
        "$BED_REGISTRY" "$BED_REGISTRY_USER" "$BED_REGISTRY_PASSWORD"
    printf 'export MAESTRO_SSH_CONFIG=%q\n' "$BED_SSH_CONFIG"
} >"$ENV_FILE"
# shellcheck disable=SC1090
. "$ENV_FILE"

run() {
    printf '\n$ %s\n' "$*" >&2
    "$@"
}
run "$MAESTRO" -f "$DEMO_FILE" validate
run "$MAESTRO" -f "$DEMO_FILE" deptree

run "$MAESTRO" -f "$DEMO_FILE" start
run "$MAESTRO" -f "$DEMO_FILE" status

cat >&2 <<MSG

The demo bed is up: ships $BED_SHIP1_IP $BED_SHIP2_IP $BED_SHIP3_IP, and $BED_INNER1_IP $BED_INNER2_IP
behind the bastion $BED_BASTION_IP. Try:
  source $ENV_FILE && $MAESTRO -f $DEMO_FILE status
  $MAESTRO -f $DEMO_FILE logs -n 5 <instance>
  $MAESTRO -f $DEMO_FILE stop -a && $MAESTRO -f $DEMO_FILE clean
  ssh -F $BED_SSH_CONFIG inner1 docker ps
Other examples: ./demo.sh examples/minimal.yaml (or zookeeper-kafka.yaml, webapp-bastion.yaml).
Tear it down with: ./demo.sh down
MSG
