#!/usr/bin/env python3
"""maestro's benchmark harness: the same environment, the same test bed, every tool.

Run through ../bench.sh (which installs the peers and builds the binaries); see
docs/benchmarks.md. For each configuration (K ships, N instances, one-way delay D):

  1. brings up a test bed of K ships (testbed/bed.sh) and puts the delaying proxy
     (bench/src/bin/delay-proxy.rs) in front of every ship's sshd, on 127.77.0.<i>:22;
  2. writes the environment (4 services in a chain db <- queue <- app <- web, N instances
     round-robin over the ships) for each tool: MaestroNG YAML, maestro YAML, docker CLI
     scripts, one compose file per ship;
  3. measures the round trip through the proxy, the daemon's own create/start/stop times, and
     a login's round trips from a trace of the protocol (traced_login_rtts);
  4. times, for each tool, several rounds of: start from nothing, no-op start, status,
     restart of one service (web, which nothing depends on), stop; after each command, untimed,
     checks the tool's work as strictly as the tests check maestro's (`check`: placement per
     ship, dependency order from Docker's StartedAt/FinishedAt, what a restart or a no-op
     touched, what status printed), so that a fast but wrong run is marked wrong; samples the
     machine's floor between the tools (Floor);
  5. writes the raw numbers as JSON, with the commits of maestro and of the harness.

`--selftest BED_JSON` checks the checks: broken tools on an existing bed must be marked wrong.

Scale rows (--scale K, or only them with --scale-only): maestro alone, N=--scale-instances,
at K=--scale-base and K ships of the same kind in one bed, for each shape of --scale-shapes:
"direct" (K sshd-only outer ships, bed.sh --cheap-outer, each behind its own delaying proxy)
and "bastion" (K sshd-only inner ships behind the bastion, bed.sh --cheap-inner; only the
bastion is behind the proxy, the inner links are a LAN). Cheap ships share one dockerd, so
containers carry a `bench.ship` label naming their ship and the checks attribute them by it.

Only the standard library: the harness must run before anything is installed.
"""

import argparse
import calendar
import concurrent.futures as cf
import http.client
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BED = os.path.join(ROOT, "testbed", "bed.sh")
PROXY = os.path.join(HERE, "target", "release", "delay-proxy")
MAESTRONG = os.path.join(HERE, ".venv", "maestrong", "bin", "maestro")
IMAGE = "maestro-test:latest"
# PID 1 ignores SIGTERM unless it handles it: trap it so a stop takes no grace period and
# every tool's stop measures the tool, not a 10 s timeout.
COMMAND = ["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"]
LEVELS = ["db", "queue", "app", "web"]  # each requires the one before it: depth 4
RESTARTED = "web"
OPS = ["start", "noop_start", "status", "restart", "stop"]
PROXY_NET = "127.77.0."
# The proxies' port: 22 keeps known_hosts entries plain; a machine whose own sshd holds
# 0.0.0.0:22 needs another one (--proxy-port), written as [addr]:port in known_hosts.
PROXY_PORT = 22
ECHO_ADDR = PROXY_NET + "250:7"
TOOLS = ["maestro", "maestro_warm", "maestrong", "maestrong_tunnel", "docker", "docker_cm", "compose", "compose_cm"]
TOOL_LABELS = {
    "maestro": "maestro",
    "maestro_warm": "maestro, sessions kept (--persist)",
    "maestrong": "MaestroNG 0.8.3 (ssh -L tunnels kept open)",
    "maestrong_tunnel": "MaestroNG 0.8.3 (its own ssh_tunnel)",
    "docker": "docker CLI, ssh://",
    "docker_cm": "docker CLI, ssh:// + ControlMaster",
    "compose": "docker-compose 1.29, ssh://",
    "compose_cm": "docker-compose 1.29, ssh:// + ControlMaster",
}
# How each tool reaches a ship, which decides what its bound charges: "login" pays a whole SSH
# login per command (TCP, key exchange, authentication, channel); "channel" rides an SSH
# session opened before timing (kept `ssh -L` tunnels, a ControlMaster) and pays only a
# channel open; "kept" takes a channel its background process opened ahead of the command
# (maestro --persist), and pays nothing before its first request.
CONNECTS = {
    "maestro": "login",
    "maestro_warm": "kept",
    "maestrong": "channel",
    "maestrong_tunnel": "login",
    "docker": "login",
    "docker_cm": "channel",
    "compose": "login",
    "compose_cm": "channel",
}
COMMAND_TIMEOUT = 900
# MaestroNG's own ssh_tunnel (bgtunnel) is known to hang: each of its commands gets this long,
# and the first that overruns ends its run, with its log kept.
TUNNEL_TOOL_TIMEOUT = 180
# On a dockerd shared by several ships (the bed's cheap ships), the ship a container belongs
# to is told by this label (set in maestro's environment), not by the socket it is found on.
SHIP_LABEL = "bench.ship"
SCALE_BED = "bench-scale"
# How `check` says a container changed that had to stay as it was; bench_tool counts them.
TOUCHED = "touched (re-created or restarted)"
SCALE_SHAPES = ["direct", "bastion"]


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------------------
# Docker API over a ship's unix socket, for setup, checks and the daemon's own timings.
# These calls never go through the proxy: they are the harness's, not a tool's.


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout=60):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self.unix_path)
        self.sock = s


def api(sock, method, path, body=None):
    conn = UnixHTTPConnection(sock)
    try:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        if resp.status >= 400:
            raise RuntimeError(f"{method} {path}: {resp.status} {data[:200]!r}")
        return json.loads(data) if data and resp.getheader("Content-Type", "").startswith("application/json") else None
    finally:
        conn.close()


def containers(sock):
    """{name: state} of every container on the ship."""
    out = {}
    for c in api(sock, "GET", "/containers/json?all=1"):
        for n in c.get("Names", []):
            out[n.lstrip("/")] = c.get("State")
    return out


def sockets_of(ships):
    """{docker socket: [ship names]}: cheap ships share one socket."""
    out = {}
    for s in ships:
        out.setdefault(s["docker_socket"], []).append(s["name"])
    return out


def remove_all(ships, prefix=""):
    """Removes the containers whose name starts with prefix ("" on the bench's own beds: all of
    them; the self-test, on a bed that others use, removes only its own)."""

    def one(sock):
        for c in api(sock, "GET", "/containers/json?all=1"):
            if any(n.lstrip("/").startswith(prefix) for n in c.get("Names", [])):
                api(sock, "DELETE", f"/containers/{c['Id']}?force=1&v=1")

    socks = list(sockets_of(ships))
    with cf.ThreadPoolExecutor(len(socks)) as ex:
        list(ex.map(one, socks))


def lock_times(socks, samples=5):
    """Median milliseconds, on every daemon of `socks` at once (as maestro takes and releases
    its deploy lock on every ship at once), that the slowest takes to create a container it
    never starts, and to remove it: the daemon's own part of the lock, which a no-op `start`
    pays and the peers (who take no lock) do not. On a machine whose ships share its CPUs,
    K creates at once take longer than one."""
    t = {"lock_create": [], "lock_remove": []}

    def one(args):
        sock, i = args
        body = {"Image": IMAGE, "Cmd": COMMAND, "NetworkDisabled": True,
                "HostConfig": {"NetworkMode": "none"}}
        t0 = time.perf_counter()
        cid = api(sock, "POST", f"/containers/create?name=bench-lock-{i}", body)["Id"]
        return t0, time.perf_counter(), cid

    def remove(args):
        sock, cid = args
        t0 = time.perf_counter()
        api(sock, "DELETE", f"/containers/{cid}")
        return time.perf_counter() - t0

    socks = list(socks)
    with cf.ThreadPoolExecutor(max(1, len(socks))) as ex:
        for i in range(samples):
            made = list(ex.map(one, [(sock, i) for sock in socks]))
            t["lock_create"].append(max(t1 - t0 for t0, t1, _ in made))
            t["lock_remove"].append(max(ex.map(remove, [(sock, cid) for sock, (_, _, cid) in zip(socks, made)])))
    return {k: round(statistics.median(v) * 1000, 2) for k, v in t.items()}


def daemon_times(sock, samples=5, lock_socks=None):
    """Median milliseconds the daemon itself takes to create, start, list, stop, restart; and
    the lock's create and removal on every daemon of `lock_socks` at once (`lock_times`)."""
    t = {"create": [], "start": [], "list": [], "stop": [], "restart": []}
    for i in range(samples):
        name = f"bench-probe-{i}"
        body = {"Image": IMAGE, "Cmd": COMMAND}
        t0 = time.perf_counter()
        cid = api(sock, "POST", f"/containers/create?name={name}", body)["Id"]
        t1 = time.perf_counter()
        api(sock, "POST", f"/containers/{cid}/start")
        t2 = time.perf_counter()
        api(sock, "GET", "/containers/json?all=1")
        t3 = time.perf_counter()
        api(sock, "POST", f"/containers/{cid}/restart?t=2")
        t4 = time.perf_counter()
        api(sock, "POST", f"/containers/{cid}/stop?t=2")
        t5 = time.perf_counter()
        api(sock, "DELETE", f"/containers/{cid}?force=1")
        t["create"].append(t1 - t0)
        t["start"].append(t2 - t1)
        t["list"].append(t3 - t2)
        t["restart"].append(t4 - t3)
        t["stop"].append(t5 - t4)
    out = {k: round(statistics.median(v) * 1000, 2) for k, v in t.items()}
    out.update(lock_times(lock_socks or [sock], samples))
    return out


def machine_floor_s(ships, n):
    """Seconds this machine's daemons need for the daemon work of start, restart and stop of
    the N-instance environment, with no network and no tool: every container of a level at
    once (a thread per container, straight on the ships' local sockets), levels in order.
    The critical-path formula assumes a daemon can do any number of starts at once; here the
    ships share the operator's CPUs, so this measured floor is the real limit for a tool."""
    sock = {s["name"]: s["docker_socket"] for s in ships}
    instances = plan_instances(n, ships)
    levels = [[(i, sh) for svc, i, sh in instances if svc == lv] for lv in LEVELS]

    def each(items, fn):
        with cf.ThreadPoolExecutor(max(1, len(items))) as ex:
            list(ex.map(lambda item: fn(*item), items))

    def create_start(name, ship):
        body = {"Image": IMAGE, "Cmd": COMMAND}
        cid = api(sock[ship], "POST", f"/containers/create?name=floor-{name}", body)["Id"]
        api(sock[ship], "POST", f"/containers/{cid}/start")

    def restart(name, ship):
        api(sock[ship], "POST", f"/containers/floor-{name}/restart?t=2")

    def stop(name, ship):
        api(sock[ship], "POST", f"/containers/floor-{name}/stop?t=2")

    remove_all(ships)
    out = {}
    t0 = time.perf_counter()
    for level in levels:
        each(level, create_start)
    out["start"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    each([(i, sh) for svc, i, sh in instances if svc == RESTARTED], restart)
    out["restart"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    for level in reversed(levels):
        each(level, stop)
    out["stop"] = time.perf_counter() - t0
    remove_all(ships)
    return {op: round(v, 3) for op, v in out.items()}


class Floor:
    """The machine's floor for one environment, sampled several times between the tools' runs
    (never once before them all: the machine's load moves during a run). The model uses the
    smallest sample, the best this machine did, and the page shows the spread up to the largest.
    each_tool: a sample before every tool's first round (the side-by-side and grid beds), else
    only while there are fewer than `least` (the scale rows, whose shared dockerd makes it the
    same for every row)."""

    def __init__(self, ships, n, least=3, each_tool=True):
        self.ships, self.n, self.least, self.each_tool = ships, n, least, each_tool
        self.samples = []

    def sample(self):
        self.samples.append(machine_floor_s(self.ships, self.n))
        log(f"  the machine's floor at N={self.n} (s), sample {len(self.samples)}: {self.samples[-1]}")

    def before_rep(self, rep):
        if (rep == 0 and self.each_tool) or len(self.samples) < self.least:
            self.sample()

    def fill(self):
        while len(self.samples) < self.least:
            self.sample()

    def low(self):
        return {op: min(x[op] for x in self.samples) for op in self.samples[0]} if self.samples else {}

    def high(self):
        return {op: max(x[op] for x in self.samples) for op in self.samples[0]} if self.samples else {}


def bounds(row, floor, login_rtts, hops=1):
    """Fills a result row's model: bound_s on the floor's smallest sample, bound_hi_s on its
    largest, and the SSH round trips charged to the tool (a login, or a channel of a session
    opened before timing)."""
    setup = {"login": login_rtts, "channel": CHANNEL_RTTS, "kept": 0}[CONNECTS[row["tool"]]]
    lo, hi = floor.low(), floor.high()
    api = api_rtts_of(row.get("traced_rtts"))
    row.update({
        "setup_rtts": setup,
        "api_rtts": api,
        "floor_samples": list(floor.samples),
        "floor_s": lo,
        "bound_s": {op: round(lower_bound_s(op, row["rtt_ms"], row["daemon_ms"], lo, setup, hops, api), 4) for op in OPS},
        "bound_hi_s": {op: round(lower_bound_s(op, row["rtt_ms"], row["daemon_ms"], hi, setup, hops, api), 4) for op in OPS},
    })
    # A model that charges no login or a bound at or under zero is a harness bug (a trace that
    # failed), never a figure to publish: the row says so and the page shows no ratio for it.
    broken = [f"{op} bound {v}" for op, v in row["bound_s"].items() if not v or v <= 0]
    if setup is None or setup < (1 if CONNECTS[row["tool"]] != "kept" else 0):
        broken.insert(0, f"setup round trips {setup}")
    if broken:
        row["model_broken"] = "; ".join(broken)
    else:
        row.pop("model_broken", None)


# A row measured while the machine was already this busy (1-minute load average per CPU) is
# re-run once the load has settled, or published marked.
LOAD_LIMIT = 1.5


def settle_load(wait_s=180):
    """The 1-minute load per CPU once it is under LOAD_LIMIT, or as it is after wait_s."""
    deadline = time.time() + wait_s
    while True:
        load = os.getloadavg()[0] / (os.cpu_count() or 1)
        if load <= LOAD_LIMIT or time.time() > deadline:
            return round(load, 2)
        log(f"  load {load:.2f} per CPU before the next row: waiting for it to settle under {LOAD_LIMIT}")
        time.sleep(10)


# ----------------------------------------------------------------------------------------
# The environment and each tool's equivalent of it.


def plan_instances(n, ships, prefix=""):
    """[(service, instance, ship)], services filled in level order, ships round robin."""
    per = [n // len(LEVELS) + (1 if i < n % len(LEVELS) else 0) for i in range(len(LEVELS))]
    out, j = [], 0
    for level, svc in enumerate(LEVELS):
        for k in range(per[level]):
            out.append((svc, f"{prefix}{svc}-{k + 1:03d}", ships[j % len(ships)]["name"]))
            j += 1
    return out


def yaml_str(s):
    return json.dumps(s)  # JSON strings are valid YAML scalars


def maestrong_yaml(bed, instances, ports, own_tunnel=False):
    """ports: the local ends of the kept `ssh -L` tunnels. own_tunnel: MaestroNG's ssh_tunnel
    instead, to each ship's Docker TCP port (the bed's dockerd listens on 127.0.0.1:2375 in the
    ship's namespace), through the ship's delaying proxy address."""
    lines = ["__maestro:", "  schema: 2", "name: bench", "ships:"]
    for i, s in enumerate(bed["ships"]):
        if own_tunnel:
            lines.append(
                f"  {s['name']}: {{ip: {s['ip']}, endpoint: {PROXY_NET}{i + 1}, docker_port: 2375, timeout: 120,"
                f" ssh_tunnel: {{user: root, key: {bed['operator']['key']}, port: {PROXY_PORT}}}}}"
            )
        else:
            lines.append(
                f"  {s['name']}: {{ip: {s['ip']}, endpoint: 127.0.0.1, docker_port: {ports[s['name']]}, timeout: 120}}"
            )
    lines += services_yaml(instances)
    return "\n".join(lines) + "\n"


def maestro_yaml(bed, instances, known_hosts, jump=False, ship_labels=False):
    """jump: every ship is reached at its own address through one jump host, the proxy's first
    address (the bastion behind it); otherwise ship i is reached at the proxy's address i."""
    lines = ["__maestro:", "  schema: 2", "name: bench", "ships:"]
    for i, s in enumerate(bed["ships"]):
        lines += [
            f"  {s['name']}:",
            f"    ip: {s['ip']}",
            f"    endpoint: {s['ip'] if jump else PROXY_NET + str(i + 1)}",
            f"    socket_path: {s['docker_socket']}",
            "    timeout: 120",
            "    ssh:",
            "      user: root",
            f"      port: {22 if jump else PROXY_PORT}",
            f"      key: {bed['operator']['key']}",
            f"      known_hosts_file: {known_hosts}",
        ]
        if jump:
            lines.append(f"      jump: [\"root@{PROXY_NET}1:{PROXY_PORT}\"]")
    lines += services_yaml(instances, ship_labels)
    return "\n".join(lines) + "\n"


def services_yaml(instances, ship_labels=False):
    lines = ["services:"]
    for level, svc in enumerate(LEVELS):
        lines += [f"  {svc}:", f"    image: {IMAGE}"]
        if level > 0:
            lines.append(f"    requires: [{LEVELS[level - 1]}]")
        lines.append("    instances:")
        for s, inst, ship in instances:
            if s == svc:
                lines += [
                    f"      {inst}:",
                    f"        ship: {ship}",
                    f"        command: [{', '.join(yaml_str(c) for c in COMMAND)}]",
                    "        stop_timeout: 2",
                ]
                if ship_labels:
                    lines.append(f"        labels: {{{SHIP_LABEL}: {ship}}}")
    return lines


def by_level_and_ship(instances, ships):
    """{level: {ship: [instance]}}"""
    out = {}
    for svc, inst, ship in instances:
        out.setdefault(LEVELS.index(svc), {}).setdefault(ship, []).append(inst)
    return out


def sh_quote(s):
    return "'" + s.replace("'", "'\\''") + "'"


def parallel_block(per_ship_cmds):
    """Shell lines running every command in the background (all ships, and every command of a
    ship), then waiting for all."""
    lines = []
    for ship, cmds in per_ship_cmds.items():
        for c in cmds:
            lines.append(f"{c} & pids+=($!)")
    lines.append('for p in "${pids[@]}"; do wait "$p" || rc=1; done; pids=()')
    return lines


def docker_scripts(instances, ships):
    """The docker CLI, as a script author would drive it for speed: one dependency level after
    another, and within a level everything at once: one `docker run`, `docker start` or `docker
    restart` per container in the background (the CLI's `start a b c` and `restart a b c` work
    on one container after another); `stop` takes all of a ship's level in one command, since
    the CLI's stop alone works on its containers in parallel."""
    lv = by_level_and_ship(instances, ships)
    cmd = " ".join(sh_quote(c) for c in COMMAND)

    def d(ship):
        return f"docker -H ssh://root@{ship}"

    scripts = {}
    start, noop, stop = [], [], []
    for level in range(len(LEVELS)):
        start += parallel_block(
            {
                s: [f"{d(s)} run -d --name {i} --stop-timeout 2 {IMAGE} {cmd} >/dev/null" for i in insts]
                for s, insts in lv.get(level, {}).items()
            }
        )
        noop += parallel_block({s: [f"{d(s)} start {i} >/dev/null" for i in insts] for s, insts in lv.get(level, {}).items()})
    for level in reversed(range(len(LEVELS))):
        stop += parallel_block({s: [f"{d(s)} stop -t 2 {' '.join(insts)} >/dev/null"] for s, insts in lv.get(level, {}).items()})
    status = parallel_block({s["name"]: [f"{d(s['name'])} ps -a"] for s in ships})
    web = lv.get(LEVELS.index(RESTARTED), {})
    restart = parallel_block({s: [f"{d(s)} restart -t 2 {i} >/dev/null" for i in insts] for s, insts in web.items()})
    for op, body in [("start", start), ("noop_start", noop), ("status", status), ("restart", restart), ("stop", stop)]:
        scripts[op] = "\n".join(["#!/usr/bin/env bash", "rc=0; pids=()"] + body + ["exit $rc"]) + "\n"
    return scripts


def compose_files(instances, ships):
    """One compose file per ship. Compose cannot express a dependency on another ship, so the
    scripts bring the levels up one after another, ships in parallel."""
    files = {}
    lv = by_level_and_ship(instances, ships)
    for s in ships:
        lines = ["version: '2.4'", "services:"]
        for svc, inst, ship in instances:
            if ship != s["name"]:
                continue
            level = LEVELS.index(svc)
            lines += [
                f"  {inst}:",
                f"    image: {IMAGE}",
                f"    container_name: {inst}",
                "    network_mode: bridge",
                "    stop_grace_period: 2s",
                f"    command: [{', '.join(yaml_str(c) for c in COMMAND)}]",
            ]
            deps = lv.get(level - 1, {}).get(s["name"], []) if level > 0 else []
            if deps:
                lines.append(f"    depends_on: [{', '.join(deps)}]")
        files[s["name"]] = "\n".join(lines) + "\n"
    return files


def compose_scripts(instances, ships, workdir):
    lv = by_level_and_ship(instances, ships)

    def c(ship):
        return f"docker-compose -H ssh://root@{ship} -p bench -f {workdir}/compose/{ship}.yml"

    start, stop = [], []
    for level in range(len(LEVELS)):
        start += parallel_block({s: [f"{c(s)} up -d --no-deps {' '.join(i)} 2>/dev/null"] for s, i in lv.get(level, {}).items()})
    for level in reversed(range(len(LEVELS))):
        stop += parallel_block({s: [f"{c(s)} stop -t 2 {' '.join(i)} 2>/dev/null"] for s, i in lv.get(level, {}).items()})
    status = parallel_block({s["name"]: [f"{c(s['name'])} ps 2>/dev/null"] for s in ships})
    web = lv.get(LEVELS.index(RESTARTED), {})
    restart = parallel_block({s: [f"{c(s)} restart -t 2 {' '.join(i)} 2>/dev/null"] for s, i in web.items()})
    out = {}
    for op, body in [("start", start), ("noop_start", start), ("status", status), ("restart", restart), ("stop", stop)]:
        out[op] = "\n".join(["#!/usr/bin/env bash", "rc=0; pids=()"] + body + ["exit $rc"]) + "\n"
    return out


# ----------------------------------------------------------------------------------------
# Running and timing.


def cpu_jiffies():
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + (v[4] if len(v) > 4 else 0)  # idle + iowait
    return sum(v) - idle, sum(v)


class MemCgroup:
    """Each timed command's own peak memory: the command runs in a memory cgroup of its own,
    made for it (cgroup v2 `memory.peak`, or v1 `memory.max_usage_in_bytes`), entered by a
    tiny shell that then execs the command. `ru_maxrss` from `wait4` cannot tell it: exec keeps
    the high-water mark of the process that forked, here the harness's own Python, so every
    tool read as big as the harness. The cgroup also counts what the command starts (a script's
    docker processes and their ssh, all at once), which is what it costs the operator's
    machine. None where this machine gives no writable memory cgroup: then no figure is
    published, rather than a wrong one."""

    def __init__(self):
        self.base, self.peak_file, self.kind = None, None, None
        try:
            with open("/proc/self/cgroup") as f:
                lines = [l.rstrip("\n").split(":", 2) for l in f]
        except OSError:
            return
        for _, ctrls, path in lines:
            if "memory" in ctrls.split(",") and os.path.isdir("/sys/fs/cgroup/memory"):
                self.base = "/sys/fs/cgroup/memory" + path
                self.peak_file, self.kind = "memory.max_usage_in_bytes", "cgroup v1 memory.max_usage_in_bytes"
        if self.base is None:
            for _, ctrls, path in lines:
                if ctrls == "" and os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
                    # v2: a process may not sit in an inner cgroup that has children, so the
                    # timed commands' cgroups are siblings under the parent.
                    self.base = "/sys/fs/cgroup" + os.path.dirname(path.rstrip("/") or "/")
                    self.peak_file, self.kind = "memory.peak", "cgroup v2 memory.peak"
        self.n = 0
        if self.base is not None:
            # Usable only if a process can be moved in too (a cgroup may be made and not
            # entered, under a delegation or a container's rules): else no figure at all.
            probe = self.make()
            usable = probe is not None and os.path.exists(os.path.join(probe, self.peak_file)) and \
                subprocess.run(self.wrap(probe, ["true"]), capture_output=True, timeout=30).returncode == 0
            if probe is not None:
                self.remove(probe)
            if not usable:
                self.base = None

    def make(self):
        self.n += 1
        d = os.path.join(self.base, f"maestro-bench-{os.getpid()}-{self.n}")
        try:
            os.mkdir(d)
            return d
        except OSError:
            return None

    def wrap(self, cg, argv):
        return ["/bin/sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', cg, *argv]

    def peak_kib(self, cg):
        try:
            with open(os.path.join(cg, self.peak_file)) as f:
                return int(f.read().strip()) // 1024
        except (OSError, ValueError):
            return None

    def remove(self, cg):
        # Whatever the command left running (a background daemon it started) goes back to
        # the harness's cgroup, so the directory can go.
        parent = os.path.join(os.path.dirname(cg), "cgroup.procs") if self.kind.startswith("cgroup v2") else \
            os.path.join(self.base, "cgroup.procs")
        for _ in range(3):
            try:
                with open(os.path.join(cg, "cgroup.procs")) as f:
                    pids = f.read().split()
                for pid in pids:
                    with open(parent, "w") as f:
                        f.write(pid)
                os.rmdir(cg)
                return
            except OSError:
                time.sleep(0.05)


MEM = None


def mem_cgroup():
    global MEM
    if MEM is None:
        MEM = MemCgroup()
    return MEM


def run_timed(argv, env, log_path, usage=None, timeout=COMMAND_TIMEOUT, stdout_path=None):
    """(seconds, exit code, peak memory KiB or None) of one command; exit code -9 when it
    overran timeout and was killed. The peak is the command's own, with what it started (see
    MemCgroup). With usage (a dict), also its CPU seconds (user + system, children included) and
    how busy the whole machine was meanwhile (0..1 of all CPUs: the ships' sshd and dockerd run
    on them too). stdout_path: its standard output goes there (read by the checks) instead of
    the log."""
    busy0, total0 = cpu_jiffies()
    mem = mem_cgroup()
    cg = mem.make() if mem.base else None
    try:
        with open(log_path, "ab") as out, open(stdout_path or os.devnull, "wb") as so:
            out.write(f"\n$ {' '.join(argv)}\n".encode())
            out.flush()
            t0 = time.perf_counter()
            p = subprocess.Popen(mem.wrap(cg, argv) if cg else argv, env=env, stdout=so if stdout_path else out,
                                 stderr=out, stdin=subprocess.DEVNULL, start_new_session=True)
            deadline = t0 + timeout
            while True:
                pid, status, rusage = os.wait4(p.pid, os.WNOHANG)
                if pid:
                    break
                if time.perf_counter() > deadline:
                    os.killpg(p.pid, signal.SIGKILL)
                    pid, status, rusage = os.wait4(p.pid, 0)
                    p.returncode = -9
                    out.write(f"# killed after {timeout}s\n".encode())
                    return timeout, -9, (mem.peak_kib(cg) if cg else None)
                time.sleep(0.002)
            elapsed = time.perf_counter() - t0
            p.returncode = os.waitstatus_to_exitcode(status)
            busy1, total1 = cpu_jiffies()
            cpu = rusage.ru_utime + rusage.ru_stime
            peak = mem.peak_kib(cg) if cg else None
            if usage is not None:
                usage["cpu_s"] = round(cpu, 3)
                usage["machine_busy"] = round((busy1 - busy0) / max(1, total1 - total0), 3)
            out.write(f"# exit {p.returncode} in {elapsed:.3f}s, peak memory {peak} KiB, cpu {cpu:.3f}s\n".encode())
        if stdout_path:
            with open(stdout_path, "rb") as so, open(log_path, "ab") as out:
                out.write(so.read())
        return elapsed, p.returncode, peak
    finally:
        if cg:
            mem.remove(cg)


def ssh_logins(ships):
    """SSH logins the ships' sshd have accepted so far (the bed's sshd logs VERBOSE)."""
    total = 0
    for s in ships:
        try:
            with open(os.path.join(s["dir"], "sshd.log"), errors="replace") as f:
                total += sum(1 for line in f if "Accepted publickey" in line)
        except OSError:
            pass
    return total


def ts_ns(text):
    """Nanoseconds since the epoch of one of Docker's RFC 3339 times (Go trims trailing zeros
    of the fraction, so the strings do not compare as text); None for Docker's zero time."""
    if not text or text.startswith("0001-"):
        return None
    date, _, frac = text.rstrip("Z").partition(".")
    secs = calendar.timegm(time.strptime(date, "%Y-%m-%dT%H:%M:%S"))
    return secs * 10**9 + int((frac + "000000000")[:9])


def snapshot(ships, prefix=""):
    """{name: {id, ship, state, started, finished}} of the containers whose name starts with
    prefix, read from each ship's daemon (StartedAt and FinishedAt need an inspect each). A ship
    with a socket of its own owns what is on it; on a socket shared by several ships (cheap
    ships) a container belongs to the ship its SHIP_LABEL names."""

    def one(item):
        sock, names = item
        rows = []
        for c in api(sock, "GET", "/containers/json?all=1"):
            name = c["Names"][0].lstrip("/")
            if not name.startswith(prefix):
                continue
            st = api(sock, "GET", f"/containers/{c['Id']}/json")["State"]
            ship = names[0] if len(names) == 1 else (c.get("Labels") or {}).get(SHIP_LABEL)
            rows.append((name, {"id": c["Id"], "ship": ship, "state": c.get("State"),
                                "started": ts_ns(st.get("StartedAt")), "finished": ts_ns(st.get("FinishedAt"))}))
        return rows

    out = {}
    items = list(sockets_of(ships).items())
    with cf.ThreadPoolExecutor(len(items)) as ex:
        for rows in ex.map(one, items):
            out.update(rows)
    return out


def status_report(text, names):
    """{instance: True (reported running) / False (reported otherwise)} from a status command's
    output: the line that names the instance, read the way each tool writes a state (maestro and
    MaestroNG `running`, the docker CLI `Up ...`, compose `Up`). An instance on no line is
    missing from the map."""
    out = {}
    for line in text.splitlines():
        for n in names:
            if re.search(rf"(?<![\w-]){re.escape(n)}(?![\w-])", line):
                out[n] = bool(re.search(r"\b(running|Up|up)\b", line))
    return out


def check(op, instances, before, after, status_text=None, stopped=()):
    """What is wrong after op, as short sentences ([] when nothing is). before and after are
    snapshots; the checks are those the tests make of maestro, for every tool alike:
    - every instance exists on its own ship, running (exited after stop);
    - start: each dependency level started after every container of the level it needs;
    - stop: each level stopped after every container of the level that needs it had stopped;
    - restart: every restarted container's StartedAt moved, and no other container changed;
    - a no-op start changed no container (same id, same StartedAt);
    - status: the tool's output reports each instance as Docker does (the harness stops the
      instances in `stopped` before the command, so that a status that always says "running"
      shows)."""
    bad = []
    want_state = "exited" if op == "stop" else "running"
    for svc, inst, ship in instances:
        c = after.get(inst)
        state = "exited" if inst in stopped else want_state
        if c is None:
            bad.append(f"{inst} missing")
        elif c["ship"] != ship:
            bad.append(f"{inst} on {c['ship']}, not {ship}")
        elif c["state"] != state:
            bad.append(f"{inst} {c['state']}, not {state}")
    levels = [[i for svc, i, _ in instances if svc == lv and i in after] for lv in LEVELS]
    if op == "start":
        for lo, hi in zip(levels, levels[1:]):
            last = max((after[i]["started"] or 0 for i in lo), default=0)
            early = [i for i in hi if (after[i]["started"] or 0) < last]
            if early:
                bad.append(f"{early[0]} started before its dependency level had started ({len(early)} early)")
    if op == "stop":
        for lo, hi in zip(levels, levels[1:]):
            first = min((after[i]["finished"] or 0 for i in lo), default=0)
            late = [i for i in hi if (after[i]["finished"] or 0) > first]
            if late:
                bad.append(f"{late[0]} stopped after a container it requires ({len(late)} late)")
    if op in ("restart", "noop_start"):
        moved = {i for svc, i, _ in instances if op == "restart" and svc == RESTARTED}
        for _, inst, _ in instances:
            b, a = before.get(inst), after.get(inst)
            if b is None or a is None:
                continue
            if inst in moved:
                if a["started"] == b["started"]:
                    bad.append(f"{inst} not restarted (StartedAt unchanged)")
            elif (a["id"], a["started"]) != (b["id"], b["started"]):
                bad.append(f"{inst} {TOUCHED}")
    if op == "status":
        seen = status_report(status_text or "", [i for _, i, _ in instances])
        for _, inst, _ in instances:
            running = after.get(inst, {}).get("state") == "running"
            if inst not in seen:
                bad.append(f"{inst} not in the status output")
            elif seen[inst] != running:
                bad.append(f"{inst} reported {'running' if seen[inst] else 'not running'}, Docker says {after.get(inst, {}).get('state')}")
    return bad


class Config:
    """One bed (K ships) with its proxy, and the files for N instances."""

    def __init__(self, args, k, n, bed, shape=None, prefix="", workdir=None, direct=False):
        """shape None: the side-by-side and grid beds (every tool); "direct" or "bastion": a
        scale row (maestro only, cheap ships sharing one dockerd, see --scale). prefix: of every
        container name (the self-test's, on a bed others use). direct: the tools reach the ships
        at their own addresses, with no proxy (the self-test)."""
        self.args, self.k, self.n, self.bed, self.shape = args, k, n, bed, shape
        self.prefix, self.direct = prefix, direct
        self.ships = bed["ships"]
        self.workdir = workdir or os.path.join(HERE, "work", f"k{k}-n{n}" if shape is None else f"scale-{shape}-k{k}-n{n}")
        shutil.rmtree(self.workdir, ignore_errors=True)
        os.makedirs(os.path.join(self.workdir, "bin"))
        os.makedirs(os.path.join(self.workdir, "compose"))
        self.instances = plan_instances(n, self.ships, prefix)
        # Hosts whose sshd logins are counted apart from the ships' (the jump host).
        self.jump_hosts = [bed["bastion"]] if shape == "bastion" else []
        self.write_ssh_files()
        self.write_env_files()

    def write_ssh_files(self):
        d = self.workdir
        op = self.bed["operator"]
        self.known_hosts = os.path.join(d, "known_hosts")
        with open(self.known_hosts, "w") as f:
            if self.shape == "bastion":
                # The bastion at the proxy's first address; the ships at their own (reached
                # from the bastion).
                with open(self.bed["bastion"]["host_key_public"]) as pub:
                    key = " ".join(pub.read().split()[:2])
                addr = f"{PROXY_NET}1" if PROXY_PORT == 22 else f"[{PROXY_NET}1]:{PROXY_PORT}"
                f.write(f"{addr} {key}\n")
            for i, s in enumerate(self.ships):
                with open(s["host_key_public"]) as pub:
                    key = " ".join(pub.read().split()[:2])
                addr = f"{PROXY_NET}{i + 1}" if PROXY_PORT == 22 else f"[{PROXY_NET}{i + 1}]:{PROXY_PORT}"
                if self.shape == "bastion":
                    f.write(f"{s['ip']} {key}\n")
                else:
                    f.write(f"{addr} {key}\n{s['ip']} {key}\n")
        common = [
            "    User root",
            f"    IdentityFile {op['key']}",
            "    IdentitiesOnly yes",
            f"    UserKnownHostsFile {self.known_hosts}",
            "    StrictHostKeyChecking yes",
            "    BatchMode yes",
            "    LogLevel ERROR",
        ]
        for variant in ["plain", "cm"]:
            lines = []
            for i, s in enumerate(self.ships):
                if self.direct:
                    lines += [f"Host {s['name']}", f"    HostName {s['ip']}", "    Port 22"] + common
                else:
                    lines += [f"Host {s['name']}", f"    HostName {PROXY_NET}{i + 1}", f"    Port {PROXY_PORT}"] + common
                if variant == "cm":
                    lines += [
                        "    ControlMaster auto",
                        f"    ControlPath {d}/cm-%C",
                        "    ControlPersist 600",
                    ]
            # Programs that reach a ship by its proxy address rather than its name (MaestroNG's
            # ssh_tunnel runs `ssh -p PORT root@127.77.0.i`) get the same settings.
            lines += ["Host *"] + common
            with open(os.path.join(d, f"ssh_config.{variant}"), "w") as f:
                f.write("\n".join(lines) + "\n")
        # The docker CLI and compose run `ssh` from PATH with no -F: this wrapper points it
        # at the bench's config (through the proxy), chosen per tool by BENCH_SSH_CONFIG.
        wrapper = os.path.join(d, "bin", "ssh")
        with open(wrapper, "w") as f:
            f.write('#!/bin/sh\nexec /usr/bin/ssh -F "$BENCH_SSH_CONFIG" "$@"\n')
        os.chmod(wrapper, 0o755)

    def write_env_files(self):
        d = self.workdir
        self.tunnel_ports = {s["name"]: 23750 + i + 1 for i, s in enumerate(self.ships)}
        shared = any(len(names) > 1 for names in sockets_of(self.ships).values())
        with open(os.path.join(d, "maestro.yaml"), "w") as f:
            f.write(maestro_yaml(self.bed, self.instances, self.known_hosts,
                                 jump=self.shape == "bastion", ship_labels=shared))
        self.scripts = {}
        if self.shape is not None:
            return  # scale rows: maestro only
        with open(os.path.join(d, "maestrong.yaml"), "w") as f:
            f.write(maestrong_yaml(self.bed, self.instances, self.tunnel_ports))
        with open(os.path.join(d, "maestrong-tunnel.yaml"), "w") as f:
            f.write(maestrong_yaml(self.bed, self.instances, self.tunnel_ports, own_tunnel=True))
        for tool, scripts in [
            ("docker", docker_scripts(self.instances, self.ships)),
            ("compose", compose_scripts(self.instances, self.ships, d)),
        ]:
            os.makedirs(os.path.join(d, tool), exist_ok=True)
            for op, text in scripts.items():
                p = os.path.join(d, tool, f"{op}.sh")
                with open(p, "w") as f:
                    f.write(text)
                os.chmod(p, 0o755)
                self.scripts[(tool, op)] = p
        for ship, text in compose_files(self.instances, self.ships).items():
            with open(os.path.join(d, "compose", f"{ship}.yml"), "w") as f:
                f.write(text)

    def env(self, tool):
        e = dict(os.environ)
        e["PATH"] = os.path.join(self.workdir, "bin") + ":" + e.get("PATH", "")
        e["BENCH_SSH_CONFIG"] = os.path.join(self.workdir, "ssh_config." + ("cm" if tool.endswith("_cm") else "plain"))
        e.pop("DOCKER_HOST", None)
        e["NO_COLOR"] = "1"
        # maestro remembers each daemon's API version under the cache directory: keep the
        # bench's (warm after the first command, as for an operator) out of the user's ~/.cache.
        e["XDG_CACHE_HOME"] = os.path.join(self.workdir, "cache")
        e.pop("MAESTRO_PERSIST", None)
        if tool == "maestro_warm":
            # Sessions kept by a background maestro, its socket in a directory of the run's.
            e["MAESTRO_PERSIST"] = "10m"
            e["MAESTRO_RUNTIME_DIR"] = self.runtime_dir()
        return e

    def runtime_dir(self):
        d = os.path.join(self.workdir, "rt")
        os.makedirs(d, mode=0o700, exist_ok=True)
        os.chmod(d, 0o700)
        return d

    def argv(self, tool, op):
        if (tool, op) in self.scripts:  # the self-test's broken tools
            return ["bash", self.scripts[(tool, op)]]
        if tool in ("docker", "docker_cm", "compose", "compose_cm"):
            return ["bash", self.scripts[(tool.removesuffix("_cm"), op)]]
        if tool in ("maestrong", "maestrong_tunnel"):
            f = os.path.join(self.workdir, "maestrong.yaml" if tool == "maestrong" else "maestrong-tunnel.yaml")
            base = [MAESTRONG, "-f", f]
        else:
            f = os.path.join(self.workdir, "maestro.yaml")
            base = [self.args.maestro, "-f", f, "--plain"]
        return base + {
            "start": ["start"],
            "noop_start": ["start"],
            "status": ["status"],
            # Both take a service name for all its instances only with -s.
            "restart": ["restart", "-s", RESTARTED],
            "stop": ["stop", "-a"],
        }[op]


def rtt_ms():
    out = subprocess.run([PROXY, "rtt", ECHO_ADDR, "--samples", "20"], capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        raise RuntimeError(f"rtt measurement failed: {out.stderr}")
    return float(out.stdout.strip())


# The fewest Docker API round trips of each operation, all ships in parallel: one list of
# containers, then per dependency level create and start, or one stop or restart. maestro's
# own are counted from a trace of its commands (traced_api_rtts), as a login's are
# (traced_login_rtts); the model charges the smaller (api_rtts_of) and the page shows both.
# A tool riding an SSH session opened before timing pays one channel open instead of a login.
API_RTTS = {
    "status": 1,
    "noop_start": 1,
    "start": 1 + 2 * len(LEVELS),
    "stop": 1 + len(LEVELS),
    "restart": 1 + 1,
}
CHANNEL_RTTS = 1
TRACE_ADDR = "127.77.1.1"


def api_rtts_of(traced):
    """The API round trips the model charges: the fewest the API allows, or maestro's traced
    count where that is fewer (then the assumption was wrong, and the trace shows it). A model
    of what a tool must pay cannot charge maestro's own extra round trips to every tool."""
    api = (traced or {}).get("api") or {}
    return {op: min(API_RTTS[op], api[op]) if api.get(op) is not None else API_RTTS[op] for op in OPS}


def lower_bound_s(op, rtt, daemon, floor, setup_rtts, hops=1, api=None):
    """The model's seconds: setup_rtts + the API's round trips, plus the daemon's own work along
    the longest chain, or the machine's measured floor for that work when it is longer (CPUs
    shared). hops=2: the ship behind a jump host whose link alone is delayed, so the ship's own
    SSH set-up also crosses it (the jump's login, then the ship's through a channel of it)."""
    own = {
        "status": daemon["list"],
        "noop_start": daemon["list"],
        "start": daemon["list"] + len(LEVELS) * (daemon["create"] + daemon["start"]),
        "stop": daemon["list"] + len(LEVELS) * daemon["stop"],
        "restart": daemon["list"] + daemon["restart"],
    }[op]
    own = max(own, 1000.0 * floor.get(op, 0.0))
    return ((hops * setup_rtts + (api or API_RTTS)[op]) * rtt + own) / 1000.0


def turns(trace_path):
    """{conn: [(ms since accept, bytes sent, bytes received)]}: one entry per round trip the
    client waited for (its bytes, then the server's answer)."""
    conns = {}
    with open(trace_path) as f:
        for line in f:
            c, t, d, n = line.split()
            conns.setdefault(int(c), []).append((float(t), d, int(n)))
    out = {}
    for c, events in conns.items():
        t0 = events[0][0]
        rounds, sent, got, last = [], 0, 0, None
        for t, d, n in events[1:]:
            if n == 0:
                continue
            if d == ">" and last == "<":
                rounds.append((round(t_recv - t0), sent, got))
                sent, got = 0, 0
            if d == ">":
                sent += n
            else:
                got += n
                t_recv = t
            last = d
        if got:
            rounds.append((round(t_recv - t0), sent, got))
        out[c] = (round(events[-1][0] - t0), rounds)
    return out


def traced(cfg, ship, trace, argv, env, timeout):
    """turns() of one run of argv through a fresh tracing proxy in front of `ship`."""
    if os.path.exists(trace):
        os.remove(trace)
    p = subprocess.Popen([PROXY, "serve", "--delay-ms", str(cfg.args.delay_ms),
                          "--map", f"{TRACE_ADDR}:22={ship['ip']}:22", "--trace", trace],
                         stdout=subprocess.PIPE, text=True)
    try:
        p.stdout.readline()
        subprocess.run(argv, env=env, capture_output=True, timeout=timeout)
    finally:
        p.terminate()
        p.wait(10)
    return turns(trace)


def traced_login_rtts(cfg, logdir):
    """{"maestro": n, "openssh": n, "login": min}: round trips from a TCP connect to a channel
    on the Docker socket, counted in a trace of the protocol through a delaying proxy on the
    first ship (every wait of the client for the server on the connection, see turns(), plus
    the TCP handshake). maestro: its `status` of that ship (the API version already cached, as
    on every command but the first), less its one list. OpenSSH: `ssh ship true`, less the exec
    of the command and the close of the session (two turns once its channel is open)."""
    ship = cfg.ships[0]
    trace = os.path.join(logdir, "trace.txt")
    d = os.path.join(cfg.workdir, "trace")
    os.makedirs(d, exist_ok=True)
    kh = os.path.join(d, "known_hosts")
    with open(ship["host_key_public"]) as pub, open(kh, "w") as f:
        f.write(f"{TRACE_ADDR} {' '.join(pub.read().split()[:2])}\n")
    op = cfg.bed["operator"]
    with open(os.path.join(d, "maestro.yaml"), "w") as f:
        f.write("\n".join([
            "__maestro:", "  schema: 2", "name: bench-trace", "ships:",
            f"  {ship['name']}:", f"    ip: {ship['ip']}", f"    endpoint: {TRACE_ADDR}",
            f"    socket_path: {ship['docker_socket']}",
            "    ssh:", "      user: root", f"      key: {op['key']}", f"      known_hosts_file: {kh}",
            "services:", "  db:", f"    image: {IMAGE}", "    instances:", f"      trace-db: {{ship: {ship['name']}}}",
        ]) + "\n")
    with open(os.path.join(d, "ssh_config"), "w") as f:
        f.write(f"Host trace\n    HostName {TRACE_ADDR}\n    User root\n    IdentityFile {op['key']}\n"
                f"    IdentitiesOnly yes\n    UserKnownHostsFile {kh}\n    StrictHostKeyChecking yes\n"
                "    BatchMode yes\n    LogLevel ERROR\n")
    env = cfg.env("maestro")
    # Turns at the end of each run that are not part of getting the channel.
    after = {"maestro": 1, "openssh": 2}
    runs = {
        "maestro": [cfg.args.maestro, "-f", os.path.join(d, "maestro.yaml"), "--plain", "status"],
        "openssh": ["/usr/bin/ssh", "-F", os.path.join(d, "ssh_config"), "trace", "true"],
    }
    out = {}
    for tool, argv in runs.items():
        counts = []
        for _ in range(3):  # the first maestro run fills the API version cache
            conns = traced(cfg, ship, trace, argv, env, 120)
            # One connection that got as far as a channel, or the run tells nothing.
            if len(conns) == 1 and len(next(iter(conns.values()))[1]) > after[tool]:
                counts.append(len(next(iter(conns.values()))[1]))
        if counts:
            # TCP's handshake, then the turns up to the channel.
            out[tool] = 1 + min(counts[1:] or counts) - after[tool]
    if out:
        out["login"] = min(out.values())
    if "maestro" in out:
        out["api"] = traced_api_rtts(cfg, d, kh, trace, out["maestro"] - 1)
    return out


def traced_api_rtts(cfg, d, kh, trace, login_turns):
    """{op: n}: the Docker API round trips of each operation, counted in a trace of maestro's own
    commands on the trace ship (one instance per level, the chain of the benchmark): every wait
    of the client on the connection, less those of its login (login_turns, from the same kind of
    trace). What maestro's protocol does, its deploy lock and its waits for a container to run
    included. None where no run of an operation gave one whole connection."""
    ship = cfg.ships[0]
    op_user = cfg.bed["operator"]
    inst = [(svc, f"trace-{svc}", ship["name"]) for svc in LEVELS]
    path = os.path.join(d, "maestro-chain.yaml")
    with open(path, "w") as f:
        f.write("\n".join([
            "__maestro:", "  schema: 2", "name: bench-trace-api", "ships:",
            f"  {ship['name']}:", f"    ip: {ship['ip']}", f"    endpoint: {TRACE_ADDR}",
            f"    socket_path: {ship['docker_socket']}", "    timeout: 120",
            "    ssh:", "      user: root", f"      key: {op_user['key']}", f"      known_hosts_file: {kh}",
        ] + services_yaml(inst)) + "\n")
    env = cfg.env("maestro")
    ops = {
        "start": ["start"], "noop_start": ["start"], "status": ["status"],
        "restart": ["restart", "-s", RESTARTED], "stop": ["stop", "-a"],
    }
    base = [cfg.args.maestro, "-f", path, "--plain"]
    counts = {op: [] for op in ops}
    try:
        for rnd in range(3):  # the first round also takes what a ship's first run needs (the lock's image)
            for op, rest in ops.items():
                conns = traced(cfg, ship, trace, base + rest, env, 300)
                if rnd > 0 and len(conns) == 1:
                    counts[op].append(len(next(iter(conns.values()))[1]) - login_turns)
            remove_all([ship], "trace-")
    finally:
        remove_all([ship], "trace-")
    return {op: (min(v) if v else None) for op, v in counts.items()}


def wait_port(host, port, seconds=60):
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            socket.create_connection((host, port), timeout=1).close()
            return True
        except OSError:
            time.sleep(0.1)
    return False


def list_fanout(sock, k, environment="bench"):
    """The shared dockerd's side of K ships listing at once: seconds for K concurrent lists of
    the environment's containers (as maestro asks, filtered by its environment label) on the
    local socket, no SSH, and the bytes of one answer. On cheap ships every ship's list returns
    every ship's containers, which a fleet of real hosts would not."""
    q = urllib.parse.quote(json.dumps({"label": [f"io.maestro.environment={environment}"]}))
    path = f"/containers/json?all=1&filters={q}"

    def one(_):
        conn = UnixHTTPConnection(sock)
        try:
            conn.request("GET", path)
            return len(conn.getresponse().read())
        finally:
            conn.close()

    t0 = time.perf_counter()
    with cf.ThreadPoolExecutor(k) as ex:
        sizes = list(ex.map(one, range(k)))
    return {"ships": k, "seconds": round(time.perf_counter() - t0, 3), "bytes_each": max(sizes)}


def status_victim(cfg):
    """The instance the harness stops before a timed `status`, so that the status a tool prints
    has something to get right: the first instance of the level under web (or the first)."""
    below = [i for svc, i, _ in cfg.instances if svc == LEVELS[-2]]
    return below[0] if below else cfg.instances[0][1]


def socket_of(cfg, inst):
    ship = next(sh for _, i, sh in cfg.instances if i == inst)
    return next(s["docker_socket"] for s in cfg.ships if s["name"] == ship)


def bench_tool(cfg, tool, reps, logdir, before_rep=None):
    """{op: {"runs": [...], "median_s", "ok", "bad", ...}} for one tool; before_rep(rep), if
    given, runs (untimed) before each round, with no container of the environment left."""
    env = cfg.env(tool)
    log_path = os.path.join(logdir, f"{tool}.log")
    extra = {}
    tunnels = []
    try:
        if tool == "maestrong":
            # As its users do: one `ssh -N -L` per ship kept open across commands, forwarding a
            # local port to the ship's Docker socket (through the delaying proxy).
            t0 = time.perf_counter()
            for s in cfg.ships:
                port = cfg.tunnel_ports[s["name"]]
                tunnels.append(
                    subprocess.Popen(
                        ["/usr/bin/ssh", "-F", env["BENCH_SSH_CONFIG"], "-N", "-o", "ExitOnForwardFailure=yes",
                         "-L", f"127.0.0.1:{port}:{s['docker_socket']}", s["name"]],
                        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=open(log_path, "ab"),
                    )
                )
            # A forward listens before the session is authenticated; a request through it
            # proves the whole path works.
            for s in cfg.ships:
                port = cfg.tunnel_ports[s["name"]]
                if not wait_port("127.0.0.1", port):
                    raise RuntimeError(f"tunnel to {s['name']} did not open")
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                c.request("GET", "/_ping")
                c.getresponse().read()
                c.close()
            extra["tunnel_setup_s"] = round(time.perf_counter() - t0, 3)
        if tool == "maestro_warm":
            # As an operator's earlier command leaves it: the background maestro logged in to
            # every ship (one untimed status), its sessions kept through the same proxy.
            t0 = time.perf_counter()
            subprocess.run(cfg.argv(tool, "status"), env=env, capture_output=True, timeout=300)
            extra["persist_setup_s"] = round(time.perf_counter() - t0, 3)
        if tool in ("docker_cm", "compose_cm"):
            # Masters opened once, as ControlPersist leaves them between a user's commands.
            t0 = time.perf_counter()
            with cf.ThreadPoolExecutor(len(cfg.ships)) as ex:
                list(ex.map(lambda s: subprocess.run(["ssh", s["name"], "true"], env=env, timeout=120), cfg.ships))
            extra["master_setup_s"] = round(time.perf_counter() - t0, 3)
        timeout = TUNNEL_TOOL_TIMEOUT if tool == "maestrong_tunnel" else COMMAND_TIMEOUT
        results = {op: {"runs": [], "ok": True, "bad": [], "peak_kib": None, "exit": [], "ssh_logins": [],
                        "cpu_s": [], "machine_busy": []} for op in OPS}
        status_out = os.path.join(logdir, f"{tool}.status.out")
        victim = status_victim(cfg)
        hung = None
        for rep in range(reps):
            remove_all(cfg.ships, cfg.prefix)
            if before_rep is not None:
                before_rep(rep)
            for op in OPS:
                if hung:
                    break
                stopped = ()
                if op == "status":
                    # Untimed: one instance stopped behind the tool's back, started again after
                    # (when an earlier command left it missing, the check says so).
                    try:
                        api(socket_of(cfg, victim), "POST", f"/containers/{victim}/stop?t=0")
                        stopped = (victim,)
                    except RuntimeError:
                        pass
                logins = ssh_logins(cfg.ships)
                jumps = ssh_logins(cfg.jump_hosts)
                before = snapshot(cfg.ships, cfg.prefix) if op in ("noop_start", "restart") else {}
                usage = {}
                secs, code, rss = run_timed(cfg.argv(tool, op), env, log_path, usage, timeout,
                                            status_out if op == "status" else None)
                logins = ssh_logins(cfg.ships) - logins
                if cfg.jump_hosts:
                    results[op].setdefault("jump_logins", []).append(ssh_logins(cfg.jump_hosts) - jumps)
                results[op]["cpu_s"].append(usage.get("cpu_s"))
                results[op]["machine_busy"].append(usage.get("machine_busy"))
                after = snapshot(cfg.ships, cfg.prefix)
                text = None
                if op == "status":
                    with open(status_out, errors="replace") as f:
                        text = f.read()
                bad = check(op, cfg.instances, before, after, text, stopped)
                if op == "noop_start":
                    results[op].setdefault("touched", []).append(sum(1 for b in bad if b.endswith(TOUCHED)))
                if code == -9:
                    hung = f"{op} did not finish within {timeout} s (killed; log {os.path.relpath(log_path, ROOT)})"
                    bad = [hung] + bad
                elif code != 0 and not (op == "status" and code == 1):
                    # status may exit 1 for "not everything is running" (maestro's health gate
                    # does, with the instance the harness stopped); its output is checked.
                    bad = [f"exit {code}"] + bad
                if stopped:
                    api(socket_of(cfg, victim), "POST", f"/containers/{victim}/start")
                r = results[op]
                r["runs"].append(round(secs, 4))
                r["exit"].append(code)
                r["ssh_logins"].append(logins)
                if rss is not None:
                    r["peak_kib"] = max(r["peak_kib"] or 0, rss)
                if bad:
                    r["ok"] = False
                    r["bad"] = r["bad"] or bad[:5]
                log(f"  {tool:16} {op:10} rep {rep + 1}: {secs:7.3f}s exit {code} ssh logins {logins}"
                    + (f" (+{r['jump_logins'][-1]} jump)" if cfg.jump_hosts else "")
                    + f" cpu {usage.get('cpu_s', 0):.2f}s machine {100 * usage.get('machine_busy', 0):.0f}%"
                    + (" WRONG: " + "; ".join(bad[:3]) if bad else ""))
                if cfg.shape is not None and op == "status" and rep == reps - 1:
                    # Everything is running: what K lists cost the shared dockerd alone.
                    socks = sockets_of(cfg.ships)
                    if len(socks) == 1:
                        results["_list_fanout"] = list_fanout(next(iter(socks)), len(cfg.ships))
        for op in OPS:
            runs = results[op]["runs"]
            if not runs:  # after a hang
                results[op].update({"ok": False, "bad": results[op]["bad"] or [f"not run: {hung}"]})
                continue
            results[op]["median_s"] = round(statistics.median(runs), 4)
            cpus = [c for c in results[op]["cpu_s"] if c is not None]
            if cpus:
                results[op]["median_cpu_s"] = round(statistics.median(cpus), 3)
        if hung:
            results["_hung"] = hung
        results["_setup"] = extra
        return results
    finally:
        for t in tunnels:
            t.terminate()
            try:
                t.wait(5)
            except subprocess.TimeoutExpired:
                t.kill()
        if tool in ("docker_cm", "compose_cm"):
            for s in cfg.ships:
                subprocess.run(["ssh", "-O", "exit", s["name"]], env=env, capture_output=True, timeout=30)
        if tool == "maestro_warm":
            subprocess.run([cfg.args.maestro, "persist", "stop"], env=env, capture_output=True, timeout=60)
        remove_all(cfg.ships, cfg.prefix)


class Proxy:
    def __init__(self, bed, delay_ms, logdir, targets=None):
        """One delayed address per ship (or per ip of targets): 127.77.0.<i> -> ship i's sshd."""
        argv = [PROXY, "serve", "--delay-ms", str(delay_ms), "--echo", ECHO_ADDR]
        for i, ip in enumerate(targets if targets is not None else [s["ip"] for s in bed["ships"]]):
            argv += ["--map", f"{PROXY_NET}{i + 1}:{PROXY_PORT}={ip}:22"]
        self.p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=open(os.path.join(logdir, "proxy.log"), "ab"), text=True)
        # bench.sh's trap ends it by this pid if the harness itself is killed.
        with open(os.path.join(HERE, "work", "proxy.pid"), "w") as f:
            f.write(str(self.p.pid))
        line = self.p.stdout.readline()
        if line.strip() != "ready":
            self.stop()
            raise RuntimeError("the delaying proxy did not start (see proxy.log)")

    def stop(self):
        if self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(5)
            except subprocess.TimeoutExpired:
                self.p.kill()


def bed_up(name, k, extra=()):
    out = subprocess.run([BED, "up", "--name", name, "--ships", str(k), *extra], capture_output=True, text=True, timeout=900)
    if out.returncode != 0:
        raise RuntimeError(f"bed.sh up failed:\n{out.stderr}")
    with open(out.stdout.strip().splitlines()[-1]) as f:
        return json.load(f)


def bed_down(name):
    subprocess.run([BED, "down", "--name", name], capture_output=True, timeout=300)


def run_scale(args, scale):
    """The scale rows (see the module's doc): {"rows": [...], ...} for results["scale"]."""
    k, base, n = args.scale, args.scale_base, args.scale_instances
    shapes = [x for x in args.scale_shapes.split(",") if x]
    for x in shapes:
        if x not in SCALE_SHAPES:
            raise SystemExit(f"--scale-shapes: unknown shape {x!r} (direct, bastion)")
    scale.update({"ships": k, "base": base, "instances": n, "shapes": shapes, "reps": args.scale_reps,
                  "delay_ms": args.delay_ms, "rows": [],
                  "host": {"nproc": os.cpu_count(), "loadavg_at_start": os.getloadavg(),
                           "mem_total_kib": mem_total_kib()},
                  "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
    extra = []
    if "direct" in shapes:
        extra += ["--cheap-outer", str(k)]
    if "bastion" in shapes:
        extra += ["--cheap-inner", str(k)]
    log(f"bed {SCALE_BED}: {k} cheap ship(s) per shape ({', '.join(shapes)})")
    t0 = time.perf_counter()
    bed = bed_up(SCALE_BED, 0, extra)
    scale["bed_up_s"] = round(time.perf_counter() - t0, 1)
    try:
        logdir = os.path.join(HERE, "work", "logs-scale")
        os.makedirs(logdir, exist_ok=True)
        sock = bed["cheap_docker"]["docker_socket"]
        daemon = daemon_times(sock)
        floor, logins, rows = None, {}, []
        for shape in shapes:
            ships = [s for s in bed["ships"] if s.get("cheap") and s["inner"] == (shape == "bastion")]
            targets = [bed["bastion"]["ip"]] if shape == "bastion" else [s["ip"] for s in ships]
            proxy = Proxy(bed, args.delay_ms, logdir, targets)
            try:
                rtt = rtt_ms()
                if floor is None:
                    # One dockerd serves every ship: the floor does not depend on K or shape.
                    floor = Floor(ships[:1], n, each_tool=False)
                for kk in sorted({min(base, k), k}):
                    sub = dict(bed, ships=ships[:kk])
                    cfg = Config(args, kk, n, sub, shape=shape)
                    if shape not in logins:
                        # Inner ships cannot be reached from here to trace them: a login is
                        # the same protocol whatever the shape, so the direct ships' count
                        # serves (hops=2 charges the bastion's login as well).
                        direct = logins.get("direct")
                        logins[shape] = direct if shape == "bastion" and direct else traced_login_rtts(cfg, logdir)
                        log(f"scale {shape}: round trip {rtt:.1f} ms; daemon (ms) {daemon}; login (traced) {logins[shape]}")
                    log(f"scale {shape} K={kk} N={n}: maestro")
                    load = settle_load()
                    try:
                        r = bench_tool(cfg, "maestro", args.scale_reps, logdir, floor.before_rep)
                    except Exception as e:
                        log(f"  maestro failed: {e}")
                        r = {"error": str(e)}
                    row = {"tool": "maestro", "shape": shape, "ships": kk, "instances": n, "rtt_ms": rtt,
                           "daemon_ms": daemon, "traced_rtts": logins[shape], "ops": r, "load_before": load}
                    scale["rows"].append(row)
                    rows.append((row, 2 if shape == "bastion" else 1))
                    floor.fill()
                    for rw, hops in rows:
                        bounds(rw, floor, rw["traced_rtts"].get("login", 7), hops)
                    yield
            finally:
                proxy.stop()
    finally:
        bed_down(SCALE_BED)
    scale["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


PUSH_BED = "bench-push"
PUSH_IMAGE = "bench-push:1"


def ns_iptables(netns, *args):
    return subprocess.run(["nsenter", f"--net=/var/run/netns/{netns}", "iptables", *args],
                          capture_output=True, text=True, timeout=30)


class SshdBytes:
    """Bytes that reached each ship's sshd (port 22, counted by an iptables rule in the ship's
    namespace): what crossed the wire, whatever the tool says it sent."""

    def __init__(self, ships):
        self.ships = ships
        for s in ships:
            ns_iptables(s["netns"], "-I", "INPUT", "-p", "tcp", "--dport", "22", "-m", "comment",
                        "--comment", "bench-push")

    def zero(self):
        for s in self.ships:
            ns_iptables(s["netns"], "-Z", "INPUT")

    def read(self):
        out = {}
        for s in self.ships:
            text = ns_iptables(s["netns"], "-L", "INPUT", "-vxn").stdout
            line = next((l for l in text.splitlines() if "bench-push" in l), "")
            fields = line.split()
            out[s["name"]] = int(fields[1]) if len(fields) > 1 and fields[1].isdigit() else None
        return out

    def remove(self):
        for s in self.ships:
            ns_iptables(s["netns"], "-D", "INPUT", "-p", "tcp", "--dport", "22", "-m", "comment",
                        "--comment", "bench-push")


def build_push_image(builder_sock, workdir, base_mib, small_kib, generation):
    """On the builder's daemon (the operator's machine): PUSH_IMAGE from the bed's image, a
    base_mib layer of random bytes, then a small_kib layer that changes with `generation`."""
    env = dict(os.environ, DOCKER_HOST=f"unix://{builder_sock}", DOCKER_BUILDKIT="0")
    ctx = os.path.join(workdir, "push-ctx")
    os.makedirs(ctx, exist_ok=True)
    if generation == 0:
        with open(os.path.join(ctx, "big.bin"), "wb") as f:
            f.write(os.urandom(base_mib << 20))
        with open(os.path.join(ctx, "Dockerfile.base"), "w") as f:
            f.write(f"FROM {IMAGE}\nCOPY big.bin /big.bin\n")
        subprocess.run(["docker", "build", "-q", "-f", os.path.join(ctx, "Dockerfile.base"), "-t",
                        "bench-push-base:1", ctx], env=env, check=True, capture_output=True, timeout=600)
    with open(os.path.join(ctx, "small.bin"), "wb") as f:
        f.write(os.urandom(small_kib << 10))
    with open(os.path.join(ctx, "Dockerfile"), "w") as f:
        f.write("FROM bench-push-base:1\nCOPY small.bin /small.bin\n")
    subprocess.run(["docker", "build", "-q", "-t", PUSH_IMAGE, ctx], env=env, check=True,
                   capture_output=True, timeout=600)


def run_push(args, results):
    """The push rows: a locally built image (the bed's image, then --push-base-mib of random
    bytes, then a --push-small-kib layer) put on K ships behind the delaying proxy, by
    `maestro push` (a registry served through each ship's SSH session: only missing layers) and
    by `docker save | gzip | ssh SHIP docker load`, 4 at once; first onto ships that lack both
    layers, then after a change of the small layer. Seconds, and bytes into each ship's sshd."""
    k = args.push_ships
    log(f"bed {PUSH_BED}: {k} ship(s) and a builder (the operator's daemon)")
    bed = bed_up(PUSH_BED, k + 1)
    out = {"ships": k, "base_mib": args.push_base_mib, "small_kib": args.push_small_kib,
           "delay_ms": args.delay_ms, "reps": args.push_reps, "rows": {},
           "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    results["push"] = out
    logdir = os.path.join(HERE, "work", "logs-push")
    os.makedirs(logdir, exist_ok=True)
    ships, builder = bed["ships"][:k], bed["ships"][k]
    counters = None
    proxy = Proxy(bed, args.delay_ms, logdir, [s["ip"] for s in ships])
    try:
        out["rtt_ms"] = rtt_ms()
        cfg = Config(args, k, k, dict(bed, ships=ships), workdir=os.path.join(HERE, "work", "push"))
        path = os.path.join(cfg.workdir, "push.yaml")
        text = open(os.path.join(cfg.workdir, "maestro.yaml")).read().split("services:")[0]
        text += "services:\n  big:\n    image: " + PUSH_IMAGE + "\n    image_source: local\n    instances:\n"
        text += "".join(f"      push-{i + 1}: {{ship: {s['name']}}}\n" for i, s in enumerate(ships))
        with open(path, "w") as f:
            f.write(text)
        env = cfg.env("maestro")
        env["DOCKER_HOST"] = f"unix://{builder['docker_socket']}"
        counters = SshdBytes(ships)

        def clean_ships():
            for s in ships:
                for img in (PUSH_IMAGE, "bench-push-base:1"):
                    api_quiet(s["docker_socket"], "DELETE", f"/images/{img}?force=1")
                api_quiet(s["docker_socket"], "POST", "/images/prune?filters=" +
                          urllib.parse.quote(json.dumps({"dangling": ["false"]})))
            # maestro's memory of compressed layer digests: a cold push computes them again.
            for home in (env["XDG_CACHE_HOME"], os.path.join(os.environ.get("HOME", "/root"), ".cache")):
                cached = os.path.join(home, "maestro", "layer-digests")
                if os.path.isdir(cached):
                    shutil.rmtree(cached, ignore_errors=True)
                elif os.path.exists(cached):
                    os.remove(cached)

        def timed(label, argv):
            counters.zero()
            secs, code, _ = run_timed(argv, env, os.path.join(logdir, "push.log"))
            per_ship = counters.read()
            row = out["rows"].setdefault(label, {"runs": [], "bytes": [], "exit": []})
            row["runs"].append(round(secs, 3))
            row["bytes"].append(per_ship)
            row["exit"].append(code)
            log(f"  {label:28} {secs:7.2f}s exit {code} bytes per ship {per_ship}")

        save_load = os.path.join(cfg.workdir, "save-load.sh")
        with open(save_load, "w") as f:
            f.write("#!/usr/bin/env bash\nrc=0; pids=()\n")
            for s in ships:
                f.write(f"docker save {PUSH_IMAGE} | gzip | /usr/bin/ssh -F {env['BENCH_SSH_CONFIG']} {s['name']} "
                        f"docker -H unix://{s['docker_socket']} load >/dev/null & pids+=($!)\n")
            f.write('for p in "${pids[@]}"; do wait "$p" || rc=1; done\nexit $rc\n')
        os.chmod(save_load, 0o755)
        for rep in range(args.push_reps):
            build_push_image(builder["docker_socket"], cfg.workdir, args.push_base_mib, args.push_small_kib, 0)
            clean_ships()
            timed("maestro push, first", [args.maestro, "-f", path, "--json", "push"])
            build_push_image(builder["docker_socket"], cfg.workdir, args.push_base_mib, args.push_small_kib, 1)
            timed("maestro push, second", [args.maestro, "-f", path, "--json", "push"])
            build_push_image(builder["docker_socket"], cfg.workdir, args.push_base_mib, args.push_small_kib, 2)
            clean_ships()
            timed("docker save | gzip | ssh docker load, first", ["bash", save_load])
            build_push_image(builder["docker_socket"], cfg.workdir, args.push_base_mib, args.push_small_kib, 3)
            timed("docker save | gzip | ssh docker load, second", ["bash", save_load])
        for row in out["rows"].values():
            row["median_s"] = round(statistics.median(row["runs"]), 3)
            per = [b for run in row["bytes"] for b in run.values() if b is not None]
            row["median_bytes_per_ship"] = int(statistics.median(per)) if per else None
            row["ok"] = all(c == 0 for c in row["exit"])
    finally:
        if counters is not None:
            counters.remove()
        proxy.stop()
        bed_down(PUSH_BED)
    out["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def api_quiet(sock, method, path):
    try:
        api(sock, method, path)
    except Exception:  # an image already gone is what was wanted
        pass


def mem_total_kib():
    try:
        with open("/proc/meminfo") as f:
            return int(f.readline().split()[1])
    except (OSError, ValueError, IndexError):
        return None


def main():
    # Teardown (finally blocks) must also run when the harness is interrupted or terminated.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--delay-ms", type=float, default=25.0, help="one-way delay (default 25)")
    ap.add_argument("--reps", type=int, default=5, help="rounds per tool and configuration (median; at least 5 for a published run)")
    ap.add_argument("--reps-compose", type=int, default=1, help="rounds for docker-compose (slow)")
    ap.add_argument("--reps-tunnel", type=int, default=1,
                    help=f"rounds for MaestroNG's own ssh_tunnel (each command limited to {TUNNEL_TOOL_TIMEOUT} s)")
    ap.add_argument("--ships", type=int, default=4, help="K for the side-by-side table")
    ap.add_argument("--instances", type=int, default=40, help="N for the side-by-side table")
    ap.add_argument("--tools", default=",".join(TOOLS), help="comma-separated: " + ",".join(TOOLS))
    ap.add_argument("--grid", default="1,4,16x10,40,200", help="maestro's curves: Ks x Ns ('' = none)")
    ap.add_argument("--grid-reps", type=int, default=2, help="rounds at the grid's other points")
    ap.add_argument("--grid-tools", default="maestro", help="tools run over the whole grid")
    ap.add_argument("--proxy-port", type=int, default=22, help="port of the proxies on 127.77.0.<i> (default 22)")
    ap.add_argument("--maestro", default=os.path.join(ROOT, "target", "release", "maestro"))
    ap.add_argument("--out", default=os.path.join(HERE, "results.json"))
    ap.add_argument("--merge", action="store_true", help="keep other tools' rows already in --out")
    ap.add_argument("--scale", type=int, default=0,
                    help="also the scale rows: maestro at K=SCALE cheap ships (0 = none; 1..100)")
    ap.add_argument("--scale-only", action="store_true",
                    help="only the scale rows (K=100 unless --scale), merged into --out: its other rows are kept")
    ap.add_argument("--scale-base", type=int, default=4, help="K the scale rows are compared with (default 4)")
    ap.add_argument("--scale-instances", type=int, default=200, help="N of the scale rows (default 200)")
    ap.add_argument("--scale-shapes", default=",".join(SCALE_SHAPES), help="direct,bastion (default both)")
    ap.add_argument("--scale-reps", type=int, default=5, help="rounds per scale row (median)")
    ap.add_argument("--push", action="store_true", help="also the push rows (maestro push against docker save|load)")
    ap.add_argument("--push-only", action="store_true", help="only the push rows, merged into --out")
    ap.add_argument("--push-ships", type=int, default=4, help="K of the push rows (default 4)")
    ap.add_argument("--push-base-mib", type=int, default=100, help="the image's big layer (MiB, default 100)")
    ap.add_argument("--push-small-kib", type=int, default=1024, help="the layer that changes (KiB, default 1024)")
    ap.add_argument("--push-reps", type=int, default=3, help="rounds of the push rows (default 3)")
    ap.add_argument("--selftest", metavar="BED_JSON",
                    help="test the harness's checks on an existing test bed (see selftest) and exit")
    args = ap.parse_args()
    if args.selftest:
        return selftest(args.selftest)
    if args.scale_only and not args.scale:
        args.scale = 100
    if not 0 <= args.scale <= 100 or (args.scale and not 1 <= args.scale_base):
        raise SystemExit("--scale must be 0..100 (the bed's cheap ships) and --scale-base at least 1")
    global PROXY_PORT
    PROXY_PORT = args.proxy_port
    tools = [t for t in args.tools.split(",") if t]
    grid_tools = [t for t in args.grid_tools.split(",") if t and t in tools]

    # Which (K, N) each tool runs at.
    plan = {}
    plan.setdefault((args.ships, args.instances), []).extend(tools)
    if args.grid:
        ks, ns = args.grid.split("x")
        for k in map(int, ks.split(",")):
            for n in map(int, ns.split(",")):
                for t in grid_tools:
                    if t not in plan.setdefault((k, n), []):
                        plan[(k, n)].append(t)

    if args.scale_only:
        return main_scale_only(args)
    if args.push_only:
        results = {"runs": []}
        if os.path.exists(args.out):
            with open(args.out) as f:
                results = json.load(f)
        try:
            run_push(args, results)
        finally:
            with open(args.out, "w") as f:
                json.dump(results, f, indent=1)
        return None
    results = {"runs": []}
    if args.merge and os.path.exists(args.out):
        with open(args.out) as f:
            results = json.load(f)
        keep = [r for r in results.get("runs", []) if r["tool"] not in tools]
        results["runs"] = keep
    results.update(
        {
            "delay_ms": args.delay_ms,
            "reps": args.reps,
            "reps_compose": args.reps_compose,
            "reps_tunnel": args.reps_tunnel,
            "tunnel_timeout_s": TUNNEL_TOOL_TIMEOUT,
            "grid_reps": args.grid_reps,
            "levels": LEVELS,
            "api_rtts": API_RTTS,
            "mem_source": mem_cgroup().kind,
            "channel_rtts": CHANNEL_RTTS,
            "connects": CONNECTS,
            "default": {"ships": args.ships, "instances": args.instances},
            "host": {"nproc": os.cpu_count(), "loadavg_at_start": os.getloadavg()},
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
    )
    versions, startup = {}, {}
    for t, argv in [
        ("maestro", [args.maestro, "--version"]),
        ("maestrong", [MAESTRONG, "--version"]),
        ("docker", ["docker", "--version"]),
        ("compose", ["docker-compose", "version", "--short"]),
        ("ssh", ["ssh", "-V"]),
    ]:
        try:
            times = []
            for _ in range(3):
                t0 = time.perf_counter()
                o = subprocess.run(argv, capture_output=True, text=True, timeout=30)
                times.append(time.perf_counter() - t0)
            versions[t] = (o.stdout + o.stderr).strip().splitlines()[0]
            # What the tool costs before it does any work: its start-up, on this machine.
            startup[t] = round(statistics.median(times), 3)
        except Exception as e:  # a missing tool is reported, not fatal
            versions[t] = f"unavailable: {e}"
    # Which maestro was measured (the tree its release binary was built from), and which harness.
    versions["maestro_commit"] = commit_of("src", "Cargo.toml", "Cargo.lock")
    versions["head"] = head_of()
    versions["harness_commit"] = commit_of("bench", "bench.sh", "testbed")
    results["versions"] = versions
    results["startup_s"] = startup

    by_k = {}
    for (k, n), ts in plan.items():
        by_k.setdefault(k, []).append((n, ts))
    current_bed = None
    try:
        # The side-by-side configuration first: if a run is cut short, the headline numbers exist.
        for k in sorted(by_k, key=lambda k: (k != args.ships, k)):
            name = f"bench-k{k}"
            log(f"bed {name}: {k} ship(s)")
            current_bed = name
            bed = bed_up(name, k)
            logdir = os.path.join(HERE, "work", f"logs-k{k}")
            os.makedirs(logdir, exist_ok=True)
            proxy = Proxy(bed, args.delay_ms, logdir)
            try:
                rtt = rtt_ms()
                daemon = daemon_times(bed["ships"][0]["docker_socket"],
                                      lock_socks=list(sockets_of(bed["ships"])))
                log(f"round trip through the proxy {rtt:.1f} ms; daemon (ms) {daemon}")
                logins = None
                for n, ts in sorted(by_k[k], key=lambda x: (x[0] != args.instances, x[0])):
                    cfg = Config(args, k, n, bed)
                    if logins is None:
                        logins = traced_login_rtts(cfg, logdir)
                        log(f"a login's round trips, traced: {logins}")
                    floor = Floor(bed["ships"], n)
                    rows = []
                    for tool in ts:
                        if tool.startswith("maestro") and not tool.startswith("maestrong") \
                                and not os.access(args.maestro, os.X_OK):
                            log(f"maestro binary {args.maestro} missing: skipped")
                            continue
                        log(f"K={k} N={n}: {tool}")
                        load = None
                        try:
                            reps = args.reps_compose if tool.startswith("compose") else args.reps
                            if tool == "maestrong_tunnel":
                                reps = min(reps, args.reps_tunnel)
                            if (k, n) != (args.ships, args.instances) and args.grid_reps:
                                reps = min(reps, args.grid_reps)
                            load = settle_load()
                            t0 = time.perf_counter()
                            r = bench_tool(cfg, tool, reps, logdir, floor.before_rep)
                        except Exception as e:
                            log(f"  {tool} failed: {e}")
                            r = {"error": str(e)}
                        row = {"tool": tool, "label": TOOL_LABELS[tool], "ships": k, "instances": n,
                               "rtt_ms": rtt, "daemon_ms": daemon, "traced_rtts": logins, "ops": r,
                               "wall_s": round(time.perf_counter() - t0), "load_before": load}
                        rows.append(row)
                        results["runs"].append(row)
                        for rw in rows:
                            bounds(rw, floor, logins.get("login", 7))
                        with open(args.out, "w") as f:
                            json.dump(results, f, indent=1)
                    floor.fill()
                    for rw in rows:
                        bounds(rw, floor, logins.get("login", 7))
                    with open(args.out, "w") as f:
                        json.dump(results, f, indent=1)
            finally:
                proxy.stop()
                bed_down(name)
                current_bed = None
    finally:
        if current_bed:
            bed_down(current_bed)
    if args.scale:
        # The same binary as the rows above: its commit as recorded when the run began (the
        # tree may have changed since, the binary has not).
        results["scale"] = {"maestro_version": {"version": versions.get("maestro", "?"),
                                                "commit": versions.get("maestro_commit", "?"),
                                                "harness_commit": versions.get("harness_commit", "?")}}
        for _ in run_scale(args, results["scale"]):
            with open(args.out, "w") as f:
                json.dump(results, f, indent=1)
    if args.push:
        try:
            run_push(args, results)
        except Exception as e:
            log(f"push rows failed: {e}")
            results.setdefault("push", {})["error"] = str(e)
    results["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    with open(args.out, "w") as f:
        json.dump(results, f, indent=1)
    log(f"wrote {args.out}")


def main_scale_only(args):
    """Only the scale rows, into --out's "scale"; every other row and field of --out is kept."""
    results = {"runs": []}
    if os.path.exists(args.out):
        with open(args.out) as f:
            results = json.load(f)
    scale = {"maestro_version": maestro_version(args.maestro)}
    results["scale"] = scale
    for _ in run_scale(args, scale):
        with open(args.out, "w") as f:
            json.dump(results, f, indent=1)
    with open(args.out, "w") as f:
        json.dump(results, f, indent=1)
    log(f"wrote the scale rows into {args.out}")


def selftest(bed_json):
    """The harness's own test (run by ./test.sh on the test bed): the docker CLI script must
    pass every check, and each deliberately broken tool must be marked wrong on the operation it
    breaks. Uses 2 ships of the bed at their own addresses (no proxy) and only containers named
    hs-*, so that it can share a bed. Exit status 0 when the harness caught every broken tool."""
    selftest_memory()
    with open(bed_json) as f:
        bed = json.load(f)
    ships = [s for s in bed["ships"] if not s.get("inner") and not s.get("cheap")][:2]
    if len(ships) < 2:
        raise SystemExit(f"selftest: {bed_json} has fewer than 2 outer ships with a dockerd each")
    args = argparse.Namespace(maestro="", delay_ms=0.0)
    workdir = os.path.join(HERE, "work", f"selftest-{os.getpid()}")
    cfg = Config(args, len(ships), 8, dict(bed, ships=ships), prefix="hs-", workdir=workdir, direct=True)
    base = {op: open(cfg.scripts[("docker", op)]).read() for op in OPS}
    # Each broken tool: the operation it breaks and its script for it (the others are right).
    swapped = [(svc, i, ships[1]["name"] if k == 0 else sh) for k, (svc, i, sh) in enumerate(cfg.instances)]
    names = [i for _, i, _ in cfg.instances]
    broken = {
        "skips_restart": ("restart", "#!/usr/bin/env bash\nexit 0\n"),
        "wrong_ship": ("start", docker_scripts(swapped, ships)["start"]),
        "levels_reversed": ("start", docker_scripts([(LEVELS[-1 - LEVELS.index(svc)], i, sh)
                                                      for svc, i, sh in cfg.instances], ships)["start"]),
        "stop_in_start_order": ("stop", docker_scripts([(LEVELS[-1 - LEVELS.index(svc)], i, sh)
                                                         for svc, i, sh in cfg.instances], ships)["stop"]),
        "noop_restarts": ("noop_start", "#!/usr/bin/env bash\n" + "".join(
            f"docker -H ssh://root@{sh['name']} restart -t 0 "
            + " ".join(i for _, i, x in cfg.instances if x == sh["name"]) + " >/dev/null\n" for sh in ships)),
        "status_always_up": ("status", "#!/usr/bin/env bash\n" + "".join(f"echo '{n} Up 1 second'\n" for n in names)),
    }
    for tool, (op, text) in broken.items():
        for o in OPS:
            p = os.path.join(workdir, tool, f"{o}.sh")
            os.makedirs(os.path.dirname(p), exist_ok=True)
            with open(p, "w") as f:
                f.write(text if o == op else base[o])
            os.chmod(p, 0o755)
            cfg.scripts[(tool, o)] = p
    logdir = os.path.join(workdir, "logs")
    os.makedirs(logdir, exist_ok=True)
    failures = []
    try:
        for tool in ["docker", *broken]:
            r = bench_tool(cfg, tool, 1, logdir)
            wrong = sorted(op for op in OPS if not r[op]["ok"])
            want = [broken[tool][0]] if tool in broken else []
            verdict = "ok" if (want[0] in wrong if want else not wrong) else "MISSED"
            print(f"selftest: {tool:20} wrong on {', '.join(wrong) or 'nothing'}"
                  + (f" (expected {want[0]})" if want else " (expected nothing)") + f": {verdict}")
            for op in wrong:
                print(f"    {op}: {'; '.join(r[op]['bad'][:2])}")
            if verdict != "ok":
                failures.append(tool)
    finally:
        remove_all(ships, "hs-")
    if failures:
        raise SystemExit(f"selftest: the harness did not catch: {', '.join(failures)} (logs: {logdir})")
    shutil.rmtree(workdir, ignore_errors=True)
    print("selftest: the harness marks every broken tool wrong")


def selftest_memory():
    """A known case for the peak memory column: `dd bs=50M` holds one 50 MiB buffer, and must
    read 50 MiB (plus its own few hundred KiB) while the harness itself holds far more."""
    ballast = bytearray(200 << 20)  # the harness's own memory must not show in the figure
    ballast[::4096] = b"x" * len(ballast[::4096])
    log_path = os.path.join(HERE, "work", f"selftest-memory-{os.getpid()}.log")
    os.makedirs(os.path.dirname(log_path), exist_ok=True)
    _, code, peak = run_timed(["dd", "if=/dev/zero", "of=/dev/null", "bs=50M", "count=1"], dict(os.environ), log_path)
    os.remove(log_path)
    mem = mem_cgroup()
    if mem.base is None:
        print("selftest: peak memory: this machine gives no writable memory cgroup; the column is left empty")
        return
    mib = (peak or 0) / 1024
    if code != 0 or not 50 <= mib < 53:
        raise SystemExit(f"selftest: a command holding 50 MiB read {mib:.1f} MiB of peak memory ({mem.kind}), exit {code}")
    print(f"selftest: peak memory: a command holding 50 MiB reads {mib:.1f} MiB ({mem.kind}): ok")
    del ballast


def commit_of(*paths):
    """The last commit that changed paths, and whether they differ from it now: results.json
    says which maestro and which harness made its numbers."""
    try:
        last = subprocess.run(["git", "-C", ROOT, "log", "-1", "--format=%h", "--", *paths],
                              capture_output=True, text=True, timeout=30).stdout.strip()
        dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--", *paths],
                               capture_output=True, text=True, timeout=30).stdout.strip()
        return (last or "unknown") + (" (modified)" if dirty else "")
    except (OSError, subprocess.SubprocessError) as e:
        return f"unknown: {e}"


def head_of():
    """The checkout's commit when the run began, and whether its tree differed from it: the page
    says the binary measured is main's at the time (bench.sh builds it from this tree first)."""
    try:
        head = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, timeout=30).stdout.strip()
        branch = subprocess.run(["git", "-C", ROOT, "rev-parse", "--abbrev-ref", "HEAD"],
                                capture_output=True, text=True, timeout=30).stdout.strip()
        dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--", "src", "Cargo.toml", "Cargo.lock"],
                               capture_output=True, text=True, timeout=30).stdout.strip()
        return {"commit": head or "unknown", "branch": branch or "unknown", "sources_modified": bool(dirty)}
    except (OSError, subprocess.SubprocessError) as e:
        return {"commit": f"unknown: {e}", "branch": "unknown", "sources_modified": None}


def maestro_version(binary):
    out = {}
    try:
        o = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=30)
        out["version"] = (o.stdout + o.stderr).strip().splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError) as e:
        out["error"] = str(e)
    out["commit"] = commit_of("src", "Cargo.toml", "Cargo.lock")
    out["head"] = head_of()
    out["harness_commit"] = commit_of("bench", "bench.sh", "testbed")
    return out


if __name__ == "__main__":
    main()
