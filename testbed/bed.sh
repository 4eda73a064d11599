#!/usr/bin/env bash
# maestro test bed: "ships" made of network namespaces on this machine, each with its own
# dockerd and sshd, an optional bastion namespace in front of "inner" ships that the operator
# (root) namespace cannot route to. The interface is described in testbed/TESTBED-CONTRACT.md.
#
#   bed.sh up --name NAME [--ships K] [--inner M] [--cheap-inner C] [--cheap-outer O]
#             [--extra-keys E] [--registry]            prints bed.json's path
#   bed.sh down --name NAME | down --all
#   bed.sh status --name NAME
#   bed.sh sshd --name NAME --ship SHIP stop|start|restart [-o Option=value]...
#
# Must run as root. Every name (namespaces, links, subnets, cgroups) derives from a short hash
# of NAME, so several beds can be up at once.
set -euo pipefail

BED_ROOT=${MAESTRO_BED_ROOT:-/tmp/maestro-bed}
IMAGE_REF=maestro-test:latest
# Distinct from every name and word the tests print: maestro masks secret values wherever
# they appear, so a password equal to the image name would hide the image in outputs.
OPERATOR_PASSPHRASE=opera-passphrase-q7
REGISTRY_PORT=5000
REGISTRY_USER=maestro
REGISTRY_PASSWORD=registry-secret-k9
WAIT_SECONDS=${MAESTRO_BED_WAIT:-90}
SSHD_BIN=$(command -v sshd || echo /usr/sbin/sshd)

die() {
    echo "bed.sh: $*" >&2
    exit 1
}
log() { [ -n "${BED_QUIET:-}" ] || echo "bed.sh: $*" >&2; }

usage() {
    sed -n '5,11p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

# ---------------------------------------------------------------------------------------------
# Names derived from the bed's NAME.

bed_prefix() { # NAME -> "mb" + 6 hex chars; short enough for 15-char interface names
    printf 'mb%s' "$(printf '%s' "$1" | sha256sum | cut -c1-6)"
}

derive() { # sets globals for bed NAME
    NAME=$1
    [[ $NAME =~ ^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$ ]] ||
        die "bad bed name '$NAME' (letters, digits, _ . -, at most 40 chars)"
    P=$(bed_prefix "$NAME")
    DIR=$BED_ROOT/$NAME
    nets_of_prefix "$P"
    BRIDGE=${P}br
    BASTION_NS=${P}-bastion
    CHEAPD_NS=${P}-cheapd # the one dockerd that every cheap ship's socket path leads to
}

nets_of_prefix() { # PREFIX -> OUTER_NET, INNER_NET (first three octets)
    local h=${1#mb} a b
    a=$((16#${h:0:2}))
    b=$((16#${h:2:2}))
    # Outer subnet in 10.100-149.x, inner in 10.150-199.x: away from the usual 10.0/10.1 ranges.
    OUTER_NET=10.$((100 + a % 50)).$b
    INNER_NET=10.$((150 + a % 50)).$b
}

ship_ns() { printf '%s-%s' "$P" "$1"; } # ship name -> namespace name

has_bastion() { [ "$INNER" -gt 0 ] || [ "$CHEAP" -gt 0 ]; }
has_cheap() { [ "$CHEAP" -gt 0 ] || [ "$CHEAP_OUTER" -gt 0 ]; } # the shared dockerd exists

nsrun() { # NS CMD... : run CMD in the namespace's network only (keeps /sys, cgroups intact)
    local ns=$1
    shift
    nsenter --net="/var/run/netns/$ns" "$@"
}

# ---------------------------------------------------------------------------------------------
# The test image: a busybox-static rootfs written directly in `docker save` format, so that
# every daemon loads the very same image id (no registry needed, no import per daemon).

build_image() {
    local cache=$BED_ROOT/.image
    mkdir -p "$cache"
    local busybox
    busybox=$(command -v busybox) || die "busybox not found (apt-get install busybox-static)"
    if ldd "$busybox" 2>/dev/null | grep -q '=>'; then
        die "$busybox is dynamically linked; the image needs busybox-static (apt-get install busybox-static)"
    fi
    local sum
    sum=$(sha256sum "$busybox" | cut -c1-16)
    IMAGE_TAR=$cache/maestro-test-$sum.tar
    [ -s "$IMAGE_TAR" ] && return 0
    (
        flock 9
        [ -s "$IMAGE_TAR" ] && exit 0
        local work
        work=$(mktemp -d "$cache/build.XXXXXX")
        local root=$work/rootfs
        mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc,tmp,root,var/www,proc,sys,dev}
        chmod 1777 "$root/tmp"
        cp "$busybox" "$root/bin/busybox"
        local applet
        while read -r applet; do
            [ "$applet" = bin/busybox ] && continue
            ln -sf /bin/busybox "$root/$applet"
        done < <("$busybox" --list-full)
        printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$root/etc/passwd"
        printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
        printf 'maestro test image\n' >"$root/var/www/index.html"
        local img=$work/img
        mkdir -p "$img/layer"
        tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner \
            -C "$root" -cf "$img/layer/layer.tar" .
        local diff_id config config_id
        diff_id=$(sha256sum "$img/layer/layer.tar" | cut -d' ' -f1)
        config=$(printf '{"architecture":"amd64","os":"linux","created":"1970-01-01T00:00:00Z","config":{"Env":["PATH=/usr/sbin:/usr/bin:/sbin:/bin"],"Cmd":["sh"],"WorkingDir":"/"},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]},"history":[{"created":"1970-01-01T00:00:00Z","created_by":"maestro testbed: busybox-static rootfs"}]}' "$diff_id")
        config_id=$(printf '%s' "$config" | sha256sum | cut -d' ' -f1)
        printf '%s' "$config" >"$img/$config_id.json"
        printf '[{"Config":"%s.json","RepoTags":["%s"],"Layers":["layer/layer.tar"]}]' \
            "$config_id" "$IMAGE_REF" >"$img/manifest.json"
        tar -C "$img" -cf "$IMAGE_TAR.tmp" manifest.json "$config_id.json" layer
        mv "$IMAGE_TAR.tmp" "$IMAGE_TAR"
        rm -rf "$work"
    ) 9>"$cache/.lock"
}

# ---------------------------------------------------------------------------------------------
# Tear down. Works from the NAME alone (names are derived), so it also cleans half-made beds.

kill_cgroups() { # kill container processes of the bed (dockerd --cgroup-parent=/P-SHIP)
    # The parents sit at the top of each hierarchy (cgroup v1: one per controller; v2: one).
    local all=() procs=() d pids p live
    for d in /sys/fs/cgroup/"$1"-* /sys/fs/cgroup/*/"$1"-*; do
        [ -d "$d" ] && all+=("$d")
    done
    [ ${#all[@]} -gt 0 ] || return 0
    # Reading one hierarchy is enough to find the processes: pids (v1) or the v2 tree.
    for d in /sys/fs/cgroup/pids/"$1"-* /sys/fs/cgroup/"$1"-*; do
        [ -d "$d" ] && procs+=("$d")
    done
    [ ${#procs[@]} -gt 0 ] || procs=("${all[@]}")
    for _ in 1 2 3 4 5 6 7 8 9 10; do
        pids=$(for d in "${procs[@]}"; do cat "$d"/cgroup.procs "$d"/*/cgroup.procs 2>/dev/null; done |
            sort -u | tr '\n' ' ' || true)
        live=""
        for p in $pids; do
            [ "$(awk '{print $3}' "/proc/$p/stat" 2>/dev/null)" = Z ] || live+=" $p"
        done
        [ -z "$live" ] && break
        kill -9 $live 2>/dev/null || true
        sleep 0.05
    done
    # Remove the (now empty) cgroups, children first.
    for d in "${all[@]}"; do
        rmdir "$d"/*/ 2>/dev/null || true
        rmdir "$d" 2>/dev/null || true
    done
}

netns_pids() { # all processes in the bed's namespaces
    # One pass over /proc for all namespaces (`ip netns pids` per namespace scans /proc once
    # each: seconds with 100 cheap ships): a process is in a namespace when its ns/net is the
    # same nsfs inode as the namespace's file in /var/run/netns.
    local inodes
    inodes=$(stat -L -c %i /var/run/netns/"$1"-* 2>/dev/null || true)
    [ -n "$inodes" ] || return 0
    { stat -L -c '%i %n' /proc/[0-9]*/ns/net 2>/dev/null || true; } |
        awk -v want="$inodes" 'BEGIN { n = split(want, w, "\n"); for (i = 1; i <= n; i++) ok[w[i]] = 1 }
            ok[$1] { split($2, p, "/"); print p[3] }'
}

wait_gone() { # SECONDS PIDS... : wait until none of PIDS is alive
    local deadline=$((SECONDS + $1))
    shift
    local p alive
    while [ $SECONDS -le $deadline ]; do
        alive=""
        for p in "$@"; do
            # A zombie is dead for our purpose (its reaper may be a slow or absent init).
            kill -0 "$p" 2>/dev/null && [ "$(awk '{print $3}' "/proc/$p/stat" 2>/dev/null)" != Z ] && alive+=" $p"
        done
        [ -z "$alive" ] && return 0
        sleep 0.1
    done
    return 1
}

down_prefix() { # PREFIX [DIR]
    local prefix=$1 dir=${2:-}
    # Containers first: then dockerd has nothing to stop and exits at once.
    kill_cgroups "$prefix"
    # dockerd and sshd get a TERM and ~3s (dockerd then stops its containerd cleanly, which
    # leaves no shim sockets behind); whatever remains gets a KILL.
    if [ ! -d "$dir" ] || [ -d "$dir/registry" ]; then kill_registry "$prefix"; fi
    # Processes are found by namespace, never by pidfile: a stale pidfile could name a reused pid.
    local daemons="" p
    for p in $(netns_pids "$prefix"); do
        case "$(cat "/proc/$p/comm" 2>/dev/null)" in dockerd | sshd) daemons+=" $p" ;; esac
    done
    daemons=$(echo $daemons | tr ' ' '\n' | sort -u | tr '\n' ' ')
    if [ -n "${daemons// /}" ]; then
        kill -TERM $daemons 2>/dev/null || true
        wait_gone 3 $daemons || true
    fi
    kill_cgroups "$prefix"
    # Stray processes that appeared meanwhile (e.g. shims) die with SIGKILL.
    all=$(netns_pids "$prefix" | tr '\n' ' ')
    if [ -n "${all// /}" ]; then
        kill -KILL $all 2>/dev/null || true
        wait_gone 3 $all || true
    fi
    if [ -n "$dir" ]; then
        # Mounts dockerd made under the bed dir (overlay layers, netns bind mounts).
        { awk '{print $2}' /proc/mounts | grep -F "$dir/" || true; } | sort -r | while IFS= read -r m; do
            umount -l "$m" 2>/dev/null || true
        done
    fi
    local ns
    for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^$prefix-" || true); do
        ip netns del "$ns" 2>/dev/null || true
    done
    # The "unreachable" route that keeps the operator from ever reaching inner ships.
    nets_of_prefix "$prefix"
    ip route del unreachable "$INNER_NET.0/24" 2>/dev/null || true
    [ -z "${NAME:-}" ] || nets_of_prefix "$P"
    local link
    for link in $(ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1 | grep "^$prefix" || true); do
        ip link del "$link" 2>/dev/null || true
    done
    if [ -n "$dir" ] && [ -d "$dir" ]; then
        rm -rf "$dir" 2>/dev/null || { sleep 0.5 && rm -rf "$dir"; } || log "could not remove $dir"
    fi
}

cmd_down() {
    if [ "${ALL:-}" = 1 ]; then
        local d n prefixes=""
        if [ -d "$BED_ROOT" ]; then
            for d in "$BED_ROOT"/*/; do
                [ -d "$d" ] || continue
                n=$(basename "$d")
                down_prefix "$(bed_prefix "$n")" "$BED_ROOT/$n"
            done
        fi
        # Beds whose directory is already gone (only for the default root: with another
        # root, the beds of /tmp/maestro-bed would look like orphans).
        [ "$BED_ROOT" = /tmp/maestro-bed ] || prefixes=skip
        [ "$prefixes" = skip ] || prefixes=$( (ip netns list 2>/dev/null | awk '{print $1}'; ip -o link show | awk -F': ' '{print $2}') |
            grep -oE '^mb[0-9a-f]{6}' | sort -u || true)
        [ "$prefixes" = skip ] || for p in $prefixes; do down_prefix "$p"; done
        # With no bed left, the image cache and the lock files go too.
        if [ -d "$BED_ROOT" ] && [ -z "$(find "$BED_ROOT" -mindepth 1 -maxdepth 1 -type d ! -name .image)" ]; then
            rm -rf "$BED_ROOT/.image" "$BED_ROOT"/.*.lock
            rmdir "$BED_ROOT" 2>/dev/null || true
        fi
        return 0
    fi
    [ -n "${NAME:-}" ] || die "down needs --name NAME or --all"
    down_prefix "$P" "$DIR"
}

# ---------------------------------------------------------------------------------------------
# Bring up.

# Per-ship variables are kept in arrays indexed like SHIP_NAMES.
SHIP_NAMES=()
SHIP_IPS=()
SHIP_INNER=()
SHIP_CHEAP=() # true: sshd only, its docker socket is the shared dockerd's (--cheap-inner/-outer)
SHIP_NSS=()     # namespace names (computed once: `$(ship_ns ...)` forks, 100s of ships add up)
SHIP_SOCKETS=() # the docker socket path that works for each ship

plan_ships() {
    local i
    for ((i = 1; i <= SHIPS; i++)); do
        SHIP_NAMES+=("ship$i")
        SHIP_IPS+=("$OUTER_NET.$((10 + i))")
        SHIP_INNER+=(false)
        SHIP_CHEAP+=(false)
    done
    # Cheap outer ships take .101-.200 of the outer subnet (--cheap-outer <= 100): outer ships
    # keep .11-.60, the bastion .2, the bridge (and registry) .1.
    for ((i = 1; i <= CHEAP_OUTER; i++)); do
        SHIP_NAMES+=("ocheap$i")
        SHIP_IPS+=("$OUTER_NET.$((100 + i))")
        SHIP_INNER+=(false)
        SHIP_CHEAP+=(true)
    done
    for ((i = 1; i <= INNER; i++)); do
        SHIP_NAMES+=("inner$i")
        SHIP_IPS+=("$INNER_NET.$((10 + i))")
        SHIP_INNER+=(true)
        SHIP_CHEAP+=(false)
    done
    # Inner ships take .11-.60 (--inner <= 50), cheap ones .101-.200 (--cheap-inner <= 100).
    for ((i = 1; i <= CHEAP; i++)); do
        SHIP_NAMES+=("cheap$i")
        SHIP_IPS+=("$INNER_NET.$((100 + i))")
        SHIP_INNER+=(true)
        SHIP_CHEAP+=(true)
    done
    for i in "${!SHIP_NAMES[@]}"; do
        SHIP_NSS+=("$P-${SHIP_NAMES[$i]}")
        if [ "${SHIP_CHEAP[$i]}" = true ]; then
            SHIP_SOCKETS+=("$DIR/cheapd/docker.sock")
        else
            SHIP_SOCKETS+=("$DIR/${SHIP_NAMES[$i]}/docker.sock")
        fi
    done
}

make_netns() { # NS
    ip netns add "$1"
    ip -n "$1" link set lo up
}

check_subnets_free() {
    if ip -4 -o addr show | grep -qF " $OUTER_NET."; then
        die "subnet $OUTER_NET.0/24 is already used on this machine (another bed with a colliding name? pick another name)"
    fi
    if ip -4 route show | grep -qE "^(unreachable )?$INNER_NET\.0/24"; then
        die "subnet $INNER_NET.0/24 is already routed on this machine (another bed with a colliding name? pick another name)"
    fi
}

make_network() {
    ip link add "$BRIDGE" type bridge
    ip addr add "$OUTER_NET.1/24" dev "$BRIDGE"
    ip link set "$BRIDGE" up
    local i ns
    for i in "${!SHIP_NAMES[@]}"; do
        [ "${SHIP_INNER[$i]}" = false ] && [ "${SHIP_CHEAP[$i]}" = false ] || continue
        ns=$(ship_ns "${SHIP_NAMES[$i]}")
        make_netns "$ns"
        ip link add "${P}s$((i + 1))" type veth peer name eth0 netns "$ns"
        ip link set "${P}s$((i + 1))" master "$BRIDGE" up
        ip -n "$ns" addr add "${SHIP_IPS[$i]}/24" dev eth0
        ip -n "$ns" link set eth0 up
    done
    [ "$CHEAP_OUTER" = 0 ] || make_cheap_outer_network
    if has_bastion; then
        make_netns "$BASTION_NS"
        ip link add "${P}b0" type veth peer name eth0 netns "$BASTION_NS"
        ip link set "${P}b0" master "$BRIDGE" up
        ip -n "$BASTION_NS" addr add "$OUTER_NET.2/24" dev eth0
        ip -n "$BASTION_NS" link set eth0 up
        # The inner network lives entirely inside the bastion's namespace, so the root
        # namespace has no interface (hence no route) on it. The bastion does not forward.
        nsrun "$BASTION_NS" sysctl -qw net.ipv4.ip_forward=0
        # Without this, packets for the inner subnet would follow the root namespace's default
        # route, and some networks (sandboxes, transparent proxies) accept any TCP connection:
        # "unreachable" makes a direct attempt fail at once, whatever the machine's network.
        ip route add unreachable "$INNER_NET.0/24"
        ip -n "$BASTION_NS" link add ibr type bridge
        ip -n "$BASTION_NS" addr add "$INNER_NET.2/24" dev ibr
        ip -n "$BASTION_NS" link set ibr up
        for i in "${!SHIP_NAMES[@]}"; do
            [ "${SHIP_INNER[$i]}" = true ] && [ "${SHIP_CHEAP[$i]}" = false ] || continue
            ns=$(ship_ns "${SHIP_NAMES[$i]}")
            make_netns "$ns"
            ip -n "$BASTION_NS" link add "i$((i + 1))" type veth peer name eth0 netns "$ns"
            ip -n "$BASTION_NS" link set "i$((i + 1))" master ibr up
            ip -n "$ns" addr add "${SHIP_IPS[$i]}/24" dev eth0
            ip -n "$ns" link set eth0 up
        done
        [ "$CHEAP" = 0 ] || make_cheap_network
    fi
}

# Cheap inner ships: a namespace each (so each has its own address, sshd and connection
# table, like a host), wired to the bastion's inner bridge. `ip -batch` keeps it to two `ip`
# runs per ship plus one for the bastion's side, so 100 of them take about a second.
make_cheap_network() {
    local i netns="" links=""
    for i in "${!SHIP_NAMES[@]}"; do
        [ "${SHIP_CHEAP[$i]}" = true ] && [ "${SHIP_INNER[$i]}" = true ] || continue
        netns+="netns add ${SHIP_NSS[$i]}"$'\n'
        links+="link add c$((i + 1)) type veth peer name eth0 netns ${SHIP_NSS[$i]}"$'\n'
        links+="link set c$((i + 1)) master ibr up"$'\n'
    done
    ip -batch - <<<"$netns"
    ip -n "$BASTION_NS" -batch - <<<"$links"
    for i in "${!SHIP_NAMES[@]}"; do
        [ "${SHIP_CHEAP[$i]}" = true ] && [ "${SHIP_INNER[$i]}" = true ] || continue
        ip -n "${SHIP_NSS[$i]}" -batch - <<<"link set lo up
addr add ${SHIP_IPS[$i]}/24 dev eth0
link set eth0 up"
    done
}

# Cheap outer ships: the same, on the outer bridge in the root namespace, so the operator (and
# the bench's proxy) reach each one directly at its own address.
make_cheap_outer_network() {
    local i netns="" links=""
    for i in "${!SHIP_NAMES[@]}"; do
        [ "${SHIP_CHEAP[$i]}" = true ] && [ "${SHIP_INNER[$i]}" = false ] || continue
        netns+="netns add ${SHIP_NSS[$i]}"$'\n'
        links+="link add ${P}o$((i + 1)) type veth peer name eth0 netns ${SHIP_NSS[$i]}"$'\n'
        links+="link set ${P}o$((i + 1)) master $BRIDGE up"$'\n'
    done
    ip -batch - <<<"$netns"
    ip -batch - <<<"$links"
    for i in "${!SHIP_NAMES[@]}"; do
        [ "${SHIP_CHEAP[$i]}" = true ] && [ "${SHIP_INNER[$i]}" = false ] || continue
        ip -n "${SHIP_NSS[$i]}" -batch - <<<"link set lo up
addr add ${SHIP_IPS[$i]}/24 dev eth0
link set eth0 up"
    done
}

make_keys() {
    ssh-keygen -q -t ed25519 -N '' -C "maestro-bed-$NAME" -f "$DIR/id_ed25519"
    cp "$DIR/id_ed25519" "$DIR/id_ed25519_enc"
    cp "$DIR/id_ed25519.pub" "$DIR/id_ed25519_enc.pub"
    ssh-keygen -q -p -P '' -N "$OPERATOR_PASSPHRASE" -f "$DIR/id_ed25519_enc" >/dev/null
    cp "$DIR/id_ed25519.pub" "$DIR/authorized_keys"
    # --extra-keys E: more operator identities, authorized everywhere like the main key, for
    # tests whose logins must not share one identity (e.g. one jump login per identity).
    local k
    if [ "$EXTRA_KEYS" -gt 0 ]; then
        mkdir -p "$DIR/extra_keys"
        for ((k = 1; k <= EXTRA_KEYS; k++)); do
            ssh-keygen -q -t ed25519 -N '' -C "maestro-bed-$NAME-extra$k" -f "$DIR/extra_keys/id_ed25519_$k"
            cat "$DIR/extra_keys/id_ed25519_$k.pub" >>"$DIR/authorized_keys"
        done
    fi
    : >"$DIR/known_hosts"
}

write_sshd_config() { # HOSTDIR [DOCKER_SOCKET]; makes the host key unless already there
    local hd=$1 sock=${2:-}
    [ -f "$hd/ssh_host_ed25519_key" ] ||
        ssh-keygen -q -t ed25519 -N '' -C "${hd##*/}@$NAME" -f "$hd/ssh_host_ed25519_key"
    {
        echo "Port 22"
        echo "ListenAddress 0.0.0.0"
        echo "HostKey $hd/ssh_host_ed25519_key"
        echo "PidFile $hd/sshd.pid"
        echo "AuthorizedKeysFile $DIR/authorized_keys"
        echo "StrictModes no"
        echo "PermitRootLogin prohibit-password"
        echo "PubkeyAuthentication yes"
        echo "PasswordAuthentication no"
        echo "KbdInteractiveAuthentication no"
        echo "UsePAM no"
        echo "AllowStreamLocalForwarding yes"
        echo "AllowTcpForwarding yes"
        echo "AllowAgentForwarding yes"
        echo "X11Forwarding no"
        echo "PrintMotd no"
        echo "UseDNS no"
        # VERBOSE: "Accepted publickey ..." and "drop connection #N ... past MaxStartups" lines
        # (tests count them in sshd.log). MaxStartups stays OpenSSH's default (10:30:100);
        # `bed.sh sshd ... restart -o MaxStartups=...` changes it for one run of sshd.
        echo "LogLevel VERBOSE"
        echo "Subsystem sftp internal-sftp"
        # Sessions on a ship (e.g. `docker system dial-stdio` for DOCKER_HOST=ssh://) talk to
        # that ship's own daemon, not to a machine-wide /var/run/docker.sock.
        if [ -n "$sock" ]; then echo "SetEnv DOCKER_HOST=unix://$sock"; fi
    } >"$hd/sshd_config"
}

start_sshd() { # NS HOSTDIR [SSHD_ARGS...]: logs (-e: to stderr) go to HOSTDIR/sshd.log
    local ns=$1 hd=$2
    shift 2
    rm -f "$hd/sshd.pid"
    if grep -qx "SetEnv DOCKER_HOST=unix://$hd/docker.sock" "$hd/sshd_config"; then
        # A ship with a dockerd of its own: its sshd runs in a mount namespace of its own in
        # which /run (so /var/run) is a private tmpfs holding sshd's privilege separation dir
        # and docker.sock, a symlink to the ship's daemon. Over SSH the ship then answers at
        # Docker's default path, as a real host does, so a file without `socket_path` (the
        # README's walk-through) runs on the bed unchanged. A symlink, not a bind mount: the
        # daemon makes its socket after sshd starts, and again after each restart. Nothing of
        # the machine's own /run is touched (unshare makes the mounts private).
        setsid nsenter --net="/var/run/netns/$ns" unshare --mount --propagation private \
            sh -c 'mount -t tmpfs -o mode=0755 bed-run /run && mkdir -m 0755 /run/sshd &&
                ln -s "$0" /run/docker.sock && exec "$@"' "$hd/docker.sock" \
            "$SSHD_BIN" -D -e -f "$hd/sshd_config" "$@" \
            </dev/null >>"$hd/sshd.log" 2>&1 8>&- &
        return
    fi
    setsid nsenter --net="/var/run/netns/$ns" "$SSHD_BIN" -D -e -f "$hd/sshd_config" "$@" \
        </dev/null >>"$hd/sshd.log" 2>&1 8>&- &
}

start_dockerd() { # NS HOSTDIR
    local ns=$1 hd=$2
    mkdir -p "$hd/data" "$hd/x"
    echo '{}' >"$hd/daemon.json"
    # --config-file: ignore the machine's /etc/docker/daemon.json; --cgroup-parent: lets
    # `down` find and kill this bed's containers; --shutdown-timeout: fast teardown.
    setsid nsenter --net="/var/run/netns/$ns" dockerd \
        --config-file "$hd/daemon.json" \
        --data-root "$hd/data" --exec-root "$hd/x" --pidfile "$hd/dockerd.pid" \
        -H "unix://$hd/docker.sock" -H tcp://127.0.0.1:2375 \
        --cgroup-parent "/$ns" --shutdown-timeout 2 --iptables=true \
        --insecure-registry "$OUTER_NET.1:$REGISTRY_PORT" \
        </dev/null >>"$hd/dockerd.log" 2>&1 8>&- & # 8: the bed lock
}

wait_docker() { # HOSTDIR: wait for the daemon to answer, bounded
    local hd=$1 deadline=$((SECONDS + WAIT_SECONDS))
    while [ $SECONDS -le $deadline ]; do
        if [ -S "$hd/docker.sock" ] &&
            docker -H "unix://$hd/docker.sock" version --format '{{.Server.Version}}' >/dev/null 2>&1; then
            return 0
        fi
        if [ -f "$hd/dockerd.pid" ] && ! kill -0 "$(cat "$hd/dockerd.pid")" 2>/dev/null; then
            break
        fi
        sleep 0.2
    done
    echo "bed.sh: dockerd of $(basename "$hd") did not come up within ${WAIT_SECONDS}s; log tail ($hd/dockerd.log):" >&2
    tail -n 25 "$hd/dockerd.log" >&2 || true
    return 1
}

wait_sshd() { # NS IP HOSTDIR
    local ns=$1 ip=$2 hd=$3 deadline=$((SECONDS + WAIT_SECONDS))
    while [ $SECONDS -le $deadline ]; do
        if nsenter --net="/var/run/netns/$ns" bash -c "exec 3<>/dev/tcp/$ip/22" 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    echo "bed.sh: sshd of $(basename "$hd") did not listen on $ip:22 within ${WAIT_SECONDS}s; log tail ($hd/sshd.log):" >&2
    tail -n 25 "$hd/sshd.log" >&2 || true
    return 1
}

write_ssh_config() {
    local cfg=$DIR/ssh_config i
    {
        echo "# maestro test bed '$NAME': ssh -F $cfg ship1"
        if has_bastion; then
            echo "Host bastion $OUTER_NET.2"
            echo "    HostName $OUTER_NET.2"
            common_ssh_options
        fi
        for i in "${!SHIP_NAMES[@]}"; do
            echo "Host ${SHIP_NAMES[$i]} ${SHIP_IPS[$i]}"
            echo "    HostName ${SHIP_IPS[$i]}"
            if [ "${SHIP_INNER[$i]}" = true ]; then echo "    ProxyJump bastion"; fi
            common_ssh_options
        done
        # A two-hop chain: reach an inner ship through the bastion and then another inner ship.
        for i in "${!SHIP_NAMES[@]}"; do
            [ "${SHIP_INNER[$i]}" = true ] && [ "${SHIP_CHEAP[$i]}" = false ] &&
                [ "${SHIP_NAMES[$i]}" != inner1 ] || continue
            echo "Host ${SHIP_NAMES[$i]}-2hop"
            echo "    HostName ${SHIP_IPS[$i]}"
            echo "    HostKeyAlias ${SHIP_IPS[$i]}"
            echo "    ProxyJump bastion,inner1"
            common_ssh_options
        done
    } >"$cfg"
}

common_ssh_options() {
    echo "    User root"
    echo "    Port 22"
    echo "    IdentityFile $DIR/id_ed25519"
    echo "    IdentitiesOnly yes"
    echo "    UserKnownHostsFile $DIR/known_hosts"
    echo "    StrictHostKeyChecking yes"
    echo "    BatchMode yes"
    echo "    ConnectTimeout 10"
    echo "    LogLevel ERROR"
}

jesc() { # sets JS to "$1" as an escaped JSON string, without a fork (json_str's $(...) forks)
    local s=${1//\\/\\\\}
    s=${s//\"/\\\"}
    JS="\"$s\""
}

json_str() { # minimal JSON string escaping; our values are paths/names without quotes
    local s=${1//\\/\\\\}
    s=${s//\"/\\\"}
    printf '"%s"' "$s"
}

write_bed_json() {
    local out=$DIR/bed.json.tmp i first=1 _ fp host jd
    # Every host key's fingerprint from one ssh-keygen run over known_hosts (one per ip).
    local -A FP=()
    while read -r _ fp host _; do FP[$host]=$fp; done < <(ssh-keygen -l -E sha256 -f "$DIR/known_hosts")
    jesc "$DIR"
    jd=${JS:1:${#JS}-2} # $DIR, escaped; names and namespaces below need no escaping
    {
        printf '{\n  "name": %s,\n  "dir": %s,\n' "$(json_str "$NAME")" "$(json_str "$DIR")"
        printf '  "prefix": %s,\n' "$(json_str "$P")"
        printf '  "operator": {\n'
        printf '    "key": %s,\n' "$(json_str "$DIR/id_ed25519")"
        printf '    "public_key": %s,\n' "$(json_str "$DIR/id_ed25519.pub")"
        printf '    "encrypted_key": %s,\n' "$(json_str "$DIR/id_ed25519_enc")"
        printf '    "encrypted_key_passphrase": %s,\n' "$(json_str "$OPERATOR_PASSPHRASE")"
        printf '    "extra_keys": ['
        for ((i = 1; i <= EXTRA_KEYS; i++)); do
            [ "$i" = 1 ] || printf ', '
            printf '%s' "$(json_str "$DIR/extra_keys/id_ed25519_$i")"
        done
        printf '],\n'
        printf '    "known_hosts": %s,\n' "$(json_str "$DIR/known_hosts")"
        printf '    "ssh_config": %s\n  },\n' "$(json_str "$DIR/ssh_config")"
        printf '  "user": "root",\n'
        printf '  "image": %s,\n' "$(json_str "$IMAGE_REF")"
        # Over SSH, every ship with its own dockerd answers at Docker's default socket path too
        # (see start_sshd); cheap ships do not.
        printf '  "default_socket_path": "/var/run/docker.sock",\n'
        printf '  "outer_subnet": "%s.0/24",\n' "$OUTER_NET"
        printf '  "inner_subnet": %s,\n' "$(has_bastion && echo "\"$INNER_NET.0/24\"" || echo null)"
        printf '  "ships": ['
        for i in "${!SHIP_NAMES[@]}"; do
            local n=${SHIP_NAMES[$i]} hd dockerd_dir tcp_port=2375
            hd=$jd/$n dockerd_dir=$jd/$n
            if [ "${SHIP_CHEAP[$i]}" = true ]; then
                # The shared dockerd listens on TCP only in its own namespace: none here.
                dockerd_dir=$jd/cheapd tcp_port=0
            fi
            [ $first = 1 ] || printf ','
            first=0
            printf '\n    {"name": "%s", "ip": "%s", "ssh_port": 22, "netns": "%s",\n' \
                "$n" "${SHIP_IPS[$i]}" "${SHIP_NSS[$i]}"
            printf '     "docker_socket": "%s/docker.sock", "docker_tcp_port": %s, "inner": %s, "cheap": %s,\n' \
                "$dockerd_dir" "$tcp_port" "${SHIP_INNER[$i]}" "${SHIP_CHEAP[$i]}"
            printf '     "host_key_fingerprint": "%s", "host_key_public": "%s/ssh_host_ed25519_key.pub",\n' \
                "${FP[${SHIP_IPS[$i]}]}" "$hd"
            printf '     "dir": "%s", "sshd_pidfile": "%s/sshd.pid", "sshd_log": "%s/sshd.log",' "$hd" "$hd" "$hd"
            printf ' "dockerd_pidfile": "%s/dockerd.pid"}' "$dockerd_dir"
        done
        printf '\n  ],\n'
        if has_bastion; then
            local hd=$DIR/bastion
            printf '  "bastion": {"name": "bastion", "ip": "%s.2", "inner_ip": "%s.2", "ssh_port": 22,\n' \
                "$OUTER_NET" "$INNER_NET"
            printf '              "netns": %s, "host_key_fingerprint": %s, "host_key_public": %s,\n' \
                "$(json_str "$BASTION_NS")" "$(json_str "${FP[$OUTER_NET.2]}")" \
                "$(json_str "$hd/ssh_host_ed25519_key.pub")"
            printf '              "dir": %s, "sshd_pidfile": %s, "sshd_config": %s,\n' \
                "$(json_str "$hd")" "$(json_str "$hd/sshd.pid")" "$(json_str "$hd/sshd_config")"
            printf '              "sshd_log": %s},\n' "$(json_str "$hd/sshd.log")"
        else
            printf '  "bastion": null,\n'
        fi
        if has_cheap; then
            local hd=$DIR/cheapd
            printf '  "cheap_docker": {"netns": %s, "docker_socket": %s, "dir": %s,\n' \
                "$(json_str "$CHEAPD_NS")" "$(json_str "$hd/docker.sock")" "$(json_str "$hd")"
            printf '                   "dockerd_pidfile": %s, "ships": %s},\n' \
                "$(json_str "$hd/dockerd.pid")" "$((CHEAP + CHEAP_OUTER))"
        else
            printf '  "cheap_docker": null,\n'
        fi
        if [ "$REGISTRY" = 1 ]; then
            printf '  "registry": {"address": "%s", "user": %s, "password": %s,\n' \
                "$OUTER_NET.1:$REGISTRY_PORT" "$(json_str "$REGISTRY_USER")" "$(json_str "$REGISTRY_PASSWORD")"
            printf '               "image": "%s/%s", "reachable_from_inner": false}\n' \
                "$OUTER_NET.1:$REGISTRY_PORT" "$IMAGE_REF"
        else
            printf '  "registry": null\n'
        fi
        printf '}\n'
    } >"$out"
    mv "$out" "$DIR/bed.json"
}

write_bed_env() { # the same facts as bed.json, for shell scripts (no JSON parser needed)
    local out=$DIR/bed.env i var
    {
        echo "# source me: facts about test bed '$NAME' (see bed.json)"
        printf 'BED_NAME=%q\nBED_DIR=%q\nBED_JSON=%q\n' "$NAME" "$DIR" "$DIR/bed.json"
        printf 'BED_SSH_CONFIG=%q\nBED_KEY=%q\nBED_ENCRYPTED_KEY=%q\nBED_KNOWN_HOSTS=%q\n' \
            "$DIR/ssh_config" "$DIR/id_ed25519" "$DIR/id_ed25519_enc" "$DIR/known_hosts"
        printf 'BED_IMAGE=%q\nBED_SHIPS=%q\n' "$IMAGE_REF" "${SHIP_NAMES[*]}"
        if has_bastion; then
            printf 'BED_BASTION_IP=%q\nBED_BASTION_INNER_IP=%q\nBED_BASTION_NETNS=%q\nBED_BASTION_SSHD_LOG=%q\n' \
                "$OUTER_NET.2" "$INNER_NET.2" "$BASTION_NS" "$DIR/bastion/sshd.log"
        fi
        local extra=()
        for ((i = 1; i <= EXTRA_KEYS; i++)); do extra+=("$DIR/extra_keys/id_ed25519_$i"); done
        printf 'BED_EXTRA_KEYS=%q\n' "${extra[*]}"
        if [ "$REGISTRY" = 1 ]; then
            printf 'BED_REGISTRY=%q\nBED_REGISTRY_USER=%q\nBED_REGISTRY_PASSWORD=%q\n' \
                "$OUTER_NET.1:$REGISTRY_PORT" "$REGISTRY_USER" "$REGISTRY_PASSWORD"
        fi
        for i in "${!SHIP_NAMES[@]}"; do
            var=BED_${SHIP_NAMES[$i]^^}
            printf '%s_IP=%q\n%s_SOCKET=%q\n' "$var" "${SHIP_IPS[$i]}" "$var" "${SHIP_SOCKETS[$i]}"
        done
    } >"$out"
}

# An optional registry (distribution's `docker-registry`, htpasswd auth, plain HTTP) in the
# root namespace on the bridge address: outer ships (their dockerd trusts it as insecure) and
# the operator reach it; inner ships cannot (no route), as a bastion-only network would be.
registry_config() { printf '%s/registry/%s-registry.yml' "$DIR" "$P"; }

start_registry() {
    command -v docker-registry >/dev/null || die "--registry needs docker-registry (apt-get install docker-registry)"
    command -v htpasswd >/dev/null || die "--registry needs htpasswd (apt-get install apache2-utils)"
    local rd=$DIR/registry
    mkdir -p "$rd/data"
    htpasswd -Bbn "$REGISTRY_USER" "$REGISTRY_PASSWORD" >"$rd/htpasswd" 2>/dev/null
    cat >"$(registry_config)" <<YAML
version: 0.1
log: {level: warn}
storage: {filesystem: {rootdirectory: $rd/data}, delete: {enabled: true}}
http: {addr: "$OUTER_NET.1:$REGISTRY_PORT"}
auth: {htpasswd: {realm: maestro-bed, path: $rd/htpasswd}}
YAML
    setsid docker-registry serve "$(registry_config)" </dev/null >>"$rd/registry.log" 2>&1 8>&- &
}

wait_registry() {
    local deadline=$((SECONDS + WAIT_SECONDS))
    while [ $SECONDS -le $deadline ]; do
        bash -c "exec 3<>/dev/tcp/$OUTER_NET.1/$REGISTRY_PORT" 2>/dev/null && return 0
        sleep 0.1
    done
    echo "bed.sh: the registry did not listen on $OUTER_NET.1:$REGISTRY_PORT; log tail:" >&2
    tail -n 25 "$DIR/registry/registry.log" >&2 || true
    return 1
}

seed_registry() { # push the test image, through ship1's daemon, with credentials kept in the bed
    local sock=$DIR/${SHIP_NAMES[0]}/docker.sock reg=$OUTER_NET.1:$REGISTRY_PORT
    local -x DOCKER_CONFIG=$DIR/registry/docker-config
    docker -H "unix://$sock" tag "$IMAGE_REF" "$reg/$IMAGE_REF" &&
        printf '%s' "$REGISTRY_PASSWORD" |
        docker -H "unix://$sock" login -u "$REGISTRY_USER" --password-stdin "$reg" >/dev/null 2>&1 &&
        docker -H "unix://$sock" push -q "$reg/$IMAGE_REF" >/dev/null &&
        docker -H "unix://$sock" logout "$reg" >/dev/null 2>&1 &&
        docker -H "unix://$sock" rmi "$reg/$IMAGE_REF" >/dev/null ||
        die "could not push the test image to the registry $reg"
}

kill_registry() { # PREFIX: the registry runs in the root namespace, found by its config name
    local p pids="" args
    for p in /proc/[0-9]*; do
        # mapfile, not $(...): no fork per process.
        mapfile -d '' -t args 2>/dev/null <"$p/cmdline" || continue
        [ "${#args[@]}" -ge 3 ] && [ "${args[0]##*/}" = docker-registry ] &&
            [ "${args[2]}" = "${args[2]%/*}/$1-registry.yml" ] && pids+=" ${p#/proc/}"
    done
    [ -n "$pids" ] || return 0
    kill -TERM $pids 2>/dev/null || true
    wait_gone 2 $pids || kill -KILL $pids 2>/dev/null || true
}

make_cheap_host_keys() { # two parallel streams: the machine has two cores
    local i k=0
    for i in "${!SHIP_NAMES[@]}"; do
        [ "${SHIP_CHEAP[$i]}" = true ] || continue
        k=$((k + 1))
        ssh-keygen -q -t ed25519 -N '' -C "${SHIP_NAMES[$i]}@$NAME" \
            -f "$DIR/${SHIP_NAMES[$i]}/ssh_host_ed25519_key" &
        [ $((k % 2)) = 1 ] || wait
    done
    wait
}

wait_cheap_sshds() { # every cheap ship's sshd listens, checked from where logins come
    local deadline=$((SECONDS + WAIT_SECONDS)) i missing ips=() outer_ips=()
    # sshd writes its PidFile once its listening socket is bound: no fork per check.
    while :; do
        missing=""
        for i in "${!SHIP_NAMES[@]}"; do
            [ "${SHIP_CHEAP[$i]}" = true ] && [ ! -f "$DIR/${SHIP_NAMES[$i]}/sshd.pid" ] &&
                missing+=" ${SHIP_NAMES[$i]}"
        done
        [ -n "$missing" ] || break
        if [ $SECONDS -gt $deadline ]; then
            echo "bed.sh: sshd did not start within ${WAIT_SECONDS}s on:$missing; log tail of the first:" >&2
            set -- $missing
            tail -n 25 "$DIR/$1/sshd.log" >&2 || true
            return 1
        fi
        sleep 0.1
    done
    for i in "${!SHIP_NAMES[@]}"; do
        [ "${SHIP_CHEAP[$i]}" = true ] || continue
        if [ "${SHIP_INNER[$i]}" = true ]; then ips+=("${SHIP_IPS[$i]}"); else outer_ips+=("${SHIP_IPS[$i]}"); fi
    done
    # One process for all of them: the path an inner login takes (bastion -> ship:22).
    [ ${#ips[@]} = 0 ] || nsrun "$BASTION_NS" bash -c '
        for ip; do
            : 2>/dev/null <>"/dev/tcp/$ip/22" || { echo "bed.sh: the bastion cannot reach $ip:22" >&2; exit 1; }
        done' _ "${ips[@]}"
    # Cheap outer ships: from the operator's (root) namespace, as their logins come.
    local ip
    for ip in "${outer_ips[@]}"; do
        : 2>/dev/null <>"/dev/tcp/$ip/22" || { echo "bed.sh: cannot reach $ip:22" >&2; return 1; }
    done
}

check_prereqs() {
    [ "$(id -u)" = 0 ] || die "must run as root (network namespaces, dockerd)"
    local c
    for c in ip nsenter dockerd docker ssh ssh-keygen setsid flock sha256sum; do
        command -v "$c" >/dev/null || die "missing command '$c' (see test.sh for the packages)"
    done
    [ -x "$SSHD_BIN" ] || die "missing sshd (apt-get install openssh-server)"
    # With UsePAM no, sshd refuses even key logins to a locked account ("!" password).
    if [ "$(awk -F: '$1 == "root" {print substr($2, 1, 1)}' /etc/shadow 2>/dev/null)" = "!" ]; then
        log "warning: root's password is locked ('!' in /etc/shadow); sshd will refuse root logins." \
            "Unlock without a password: usermod -p '*' root"
    fi
}

cmd_up() {
    check_prereqs
    [ -n "${NAME:-}" ] || die "up needs --name NAME"
    [[ $SHIPS =~ ^[0-9]+$ ]] && [ "$SHIPS" -le 50 ] || die "--ships must be 0..50"
    [[ $INNER =~ ^[0-9]+$ ]] && [ "$INNER" -le 50 ] || die "--inner must be 0..50"
    [[ $CHEAP =~ ^[0-9]+$ ]] && [ "$CHEAP" -le 100 ] || die "--cheap-inner must be 0..100"
    [[ $CHEAP_OUTER =~ ^[0-9]+$ ]] && [ "$CHEAP_OUTER" -le 100 ] || die "--cheap-outer must be 0..100"
    [[ $EXTRA_KEYS =~ ^[0-9]+$ ]] && [ "$EXTRA_KEYS" -le 100 ] || die "--extra-keys must be 0..100"
    local t0=$SECONDS
    down_prefix "$P" "$DIR"
    # Checked before the trap below: its teardown must never touch another bed's subnets.
    check_subnets_free
    mkdir -p "$DIR"
    # From here on, a failure leaves nothing half-made behind.
    trap 'rc=$?; if [ $rc != 0 ]; then echo "bed.sh: up failed, tearing down $NAME" >&2; BED_QUIET=1 down_prefix "$P" "$DIR"; fi' EXIT
    mkdir -p /run/sshd # privilege separation dir that Debian's sshd requires
    chmod 0755 /run/sshd
    plan_ships
    [ "${#SHIP_NAMES[@]}" -gt 0 ] || die "a bed needs at least one ship"
    build_image &
    local image_job=$!
    local i n hd keys_job="" cheap_t0=$EPOCHREALTIME
    if has_cheap; then
        # Host keys of the cheap ships (one each, ~10 ms apiece), made while the network is.
        for i in "${!SHIP_NAMES[@]}"; do
            [ "${SHIP_CHEAP[$i]}" = false ] || mkdir -p "$DIR/${SHIP_NAMES[$i]}"
        done
        make_cheap_host_keys &
        keys_job=$!
    fi
    if has_cheap; then
        # The shared dockerd takes the longest to come up: first. Its namespace has loopback
        # only; its socket is a file, reachable by path from every namespace (sshd's
        # direct-streamlocal forwarding just opens the path).
        make_netns "$CHEAPD_NS"
        start_dockerd "$CHEAPD_NS" "$DIR/cheapd"
    fi
    make_network
    make_keys
    [ "$REGISTRY" = 0 ] || start_registry
    [ -z "$keys_job" ] || wait "$keys_job" || die "could not make the cheap ships' host keys"
    local hk_type hk_key _
    for i in "${!SHIP_NAMES[@]}"; do
        n=${SHIP_NAMES[$i]}
        hd=$DIR/$n
        if [ "${SHIP_CHEAP[$i]}" = false ]; then
            mkdir -p "$hd"
            start_dockerd "${SHIP_NSS[$i]}" "$hd"
        fi
        write_sshd_config "$hd" "${SHIP_SOCKETS[$i]}"
        start_sshd "${SHIP_NSS[$i]}" "$hd"
        read -r hk_type hk_key _ <"$hd/ssh_host_ed25519_key.pub"
        echo "${SHIP_IPS[$i]} $hk_type $hk_key" >>"$DIR/known_hosts"
    done
    if has_bastion; then
        hd=$DIR/bastion
        mkdir -p "$hd"
        write_sshd_config "$hd"
        start_sshd "$BASTION_NS" "$hd"
        local hk
        hk=$(cut -d' ' -f1,2 "$hd/ssh_host_ed25519_key.pub")
        echo "$OUTER_NET.2 $hk" >>"$DIR/known_hosts"
        echo "$INNER_NET.2 $hk" >>"$DIR/known_hosts"
    fi
    write_ssh_config
    wait "$image_job" || die "could not build the test image"
    build_image # sets IMAGE_TAR (already built)
    # Wait for every daemon, then load the image everywhere, all in parallel.
    local pids=() fail=0
    for i in "${!SHIP_NAMES[@]}"; do
        [ "${SHIP_CHEAP[$i]}" = false ] || continue
        n=${SHIP_NAMES[$i]}
        hd=$DIR/$n
        (
            wait_sshd "$(ship_ns "$n")" "${SHIP_IPS[$i]}" "$hd"
            wait_docker "$hd"
            docker -H "unix://$hd/docker.sock" load -q -i "$IMAGE_TAR" >/dev/null 2>"$hd/load.err" || {
                echo "bed.sh: loading the test image into $n failed:" >&2
                cat "$hd/load.err" >&2
                exit 1
            }
        ) &
        pids+=($!)
    done
    if has_bastion; then
        wait_sshd "$BASTION_NS" "$OUTER_NET.2" "$DIR/bastion" &
        pids+=($!)
    fi
    if has_cheap; then
        (
            hd=$DIR/cheapd
            wait_docker "$hd"
            docker -H "unix://$hd/docker.sock" load -q -i "$IMAGE_TAR" >/dev/null 2>"$hd/load.err" || {
                echo "bed.sh: loading the test image into the cheap ships' dockerd failed:" >&2
                cat "$hd/load.err" >&2
                exit 1
            }
        ) &
        pids+=($!)
        wait_cheap_sshds &
        pids+=($!)
    fi
    for i in "${pids[@]}"; do wait "$i" || fail=1; done
    [ $fail = 0 ] || die "bed '$NAME' did not come up (see messages above)"
    ! has_cheap || log "$((CHEAP + CHEAP_OUTER)) cheap ship(s) and their dockerd up in" \
        "$(awk -v a="$cheap_t0" -v b="$EPOCHREALTIME" 'BEGIN {printf "%.1f", b - a}')s"
    if [ "$REGISTRY" = 1 ]; then
        [ "$SHIPS" -gt 0 ] || die "--registry needs at least one outer ship"
        wait_registry || die "bed '$NAME' did not come up"
        seed_registry
    fi
    write_bed_env
    write_bed_json
    trap - EXIT
    log "bed '$NAME' up in $((SECONDS - t0))s: ${SHIPS} ship(s), ${CHEAP_OUTER} cheap outer ship(s)," \
        "${INNER} inner ship(s) and ${CHEAP} cheap inner ship(s) behind the bastion"
    echo "$DIR/bed.json"
}

cmd_status() {
    [ -n "${NAME:-}" ] || die "status needs --name NAME"
    [ -f "$DIR/bed.json" ] || { echo "bed '$NAME': not up ($DIR/bed.json missing)"; return 1; }
    echo "bed '$NAME' ($DIR, prefix $P)"
    local ok=0 hd n
    for hd in "$DIR"/*/; do
        hd=${hd%/}
        n=$(basename "$hd")
        [ -f "$hd/sshd_config" ] || continue
        local ip
        ip=$(awk -v h="$n" '$1=="Host" && $2==h {getline; print $2; exit}' "$DIR/ssh_config")
        local d="-" s="down"
        if [ -S "$hd/docker.sock" ]; then
            d=$(docker -H "unix://$hd/docker.sock" version --format '{{.Server.Version}}' 2>/dev/null || echo "not answering")
        fi
        if ssh -F "$DIR/ssh_config" -o ConnectTimeout=5 "$n" true 2>/dev/null; then s="ok"; else ok=1; fi
        printf '  %-10s %-15s ssh:%-5s docker:%s\n' "$n" "$ip" "$s" "$d"
    done
    return $ok
}

# Stop, start or restart one host's sshd: for tests of "sshd down", and (with `-o Opt=value`,
# passed to sshd's command line for this run only) for tests of sshd settings such as
# MaxStartups. `restart` without -o brings back the bed's own settings. Sessions already open
# survive a restart (only the listener is stopped), as with a real sshd.
cmd_sshd() {
    [ -n "${NAME:-}" ] && [ -n "${SHIP:-}" ] || die "sshd needs --name NAME --ship SHIP stop|start|restart"
    local hd=$DIR/$SHIP ns
    [ -f "$hd/sshd_config" ] || die "no host '$SHIP' in bed '$NAME'"
    if [ "$SHIP" = bastion ]; then ns=$BASTION_NS; else ns=$(ship_ns "$SHIP"); fi
    [ ${#SSHD_OPTS[@]} = 0 ] || [ "$ACTION" != stop ] || die "-o goes with start or restart"
    if [ ${#SSHD_OPTS[@]} -gt 0 ]; then
        # Refuse a bad option before the running sshd is stopped.
        "$SSHD_BIN" -t -f "$hd/sshd_config" "${SSHD_OPTS[@]}" || die "sshd rejects the options ${SSHD_OPTS[*]}"
    fi
    case "$ACTION" in
    stop | restart)
        if [ -f "$hd/sshd.pid" ]; then
            local p
            p=$(cat "$hd/sshd.pid")
            kill "$p" 2>/dev/null || true
            wait_gone 5 "$p" || kill -9 "$p" 2>/dev/null || true
            rm -f "$hd/sshd.pid"
        fi
        ;;&
    start | restart)
        start_sshd "$ns" "$hd" "${SSHD_OPTS[@]}"
        local ip
        ip=$(awk -v h="$SHIP" '$1=="Host" && $2==h {getline; print $2; exit}' "$DIR/ssh_config")
        wait_sshd "$ns" "$ip" "$hd"
        ;;
    stop) ;;
    *) die "sshd action must be stop, start or restart" ;;
    esac
}

# ---------------------------------------------------------------------------------------------

main() {
    [ $# -ge 1 ] || usage
    local cmd=$1
    shift
    SHIPS=3 INNER=0 CHEAP=0 CHEAP_OUTER=0 EXTRA_KEYS=0 ALL=0 NAME="" SHIP="" ACTION="" REGISTRY=0
    SSHD_OPTS=()
    while [ $# -gt 0 ]; do
        case "$1" in
        --name) NAME=${2:-}; shift 2 ;;
        --name=*) NAME=${1#*=}; shift ;;
        --ships) SHIPS=${2:-}; shift 2 ;;
        --ships=*) SHIPS=${1#*=}; shift ;;
        --inner) INNER=${2:-}; shift 2 ;;
        --inner=*) INNER=${1#*=}; shift ;;
        --cheap-inner) CHEAP=${2:-}; shift 2 ;;
        --cheap-inner=*) CHEAP=${1#*=}; shift ;;
        --cheap-outer) CHEAP_OUTER=${2:-}; shift 2 ;;
        --cheap-outer=*) CHEAP_OUTER=${1#*=}; shift ;;
        --extra-keys) EXTRA_KEYS=${2:-}; shift 2 ;;
        --extra-keys=*) EXTRA_KEYS=${1#*=}; shift ;;
        -o) [ $# -ge 2 ] || die "-o needs an sshd option"; SSHD_OPTS+=(-o "$2"); shift 2 ;;
        -o?*) SSHD_OPTS+=(-o "${1#-o}"); shift ;;
        --ship) SHIP=${2:-}; shift 2 ;;
        --image) shift ;; # the image is always loaded; kept for the contract
        --registry) REGISTRY=1; shift ;;
        --all) ALL=1; shift ;;
        stop | start | restart) ACTION=$1; shift ;;
        -h | --help) usage ;;
        *) die "unknown argument '$1'" ;;
        esac
    done
    [ -z "$NAME" ] || derive "$NAME"
    if [ -n "$NAME" ] && [ "$cmd" != status ]; then
        # One bed.sh at a time per bed: a test's teardown racing the next test's `up` of the
        # same name must not interleave.
        mkdir -p "$BED_ROOT"
        exec 8>"$BED_ROOT/.$NAME.lock"
        flock 8
    fi
    case "$cmd" in
    up) cmd_up ;;
    down) [ "$(id -u)" = 0 ] || die "must run as root"; cmd_down ;;
    status) cmd_status ;;
    sshd) cmd_sshd ;;
    *) usage ;;
    esac
}

main "$@"
