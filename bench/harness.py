#!/usr/bin/env python3
"""maestro's benchmark harness: the same environment, the same test bed, every tool.

Run through ../bench.sh (which installs the peers and builds the binaries); see
docs/benchmarks.md. For each configuration (K ships, N instances, one-way delay D):

  1. brings up a test bed of K ships (testbed/bed.sh) and puts the delaying proxy
     (bench/src/bin/delay-proxy.rs) in front of every ship's sshd, on 127.77.0.<i>:22;
  2. writes the environment (4 services in a chain db <- queue <- app <- web, N instances
     round-robin over the ships) for each tool: MaestroNG YAML, maestro YAML, docker CLI
     scripts, one compose file per ship;
  3. measures the round trip through the proxy and the daemon's own create/start/stop times;
  4. times, for each tool, several rounds of: start from nothing, no-op start, status,
     restart of one service (web, which nothing depends on), stop; checks after each command
     that the ships are in the expected state (untimed), so a fast but wrong run shows;
  5. writes the raw numbers as JSON.

Scale rows (--scale K, or only them with --scale-only): maestro alone, N=--scale-instances,
at K=--scale-base and K ships of the same kind in one bed, for each shape of --scale-shapes:
"direct" (K sshd-only outer ships, bed.sh --cheap-outer, each behind its own delaying proxy)
and "bastion" (K sshd-only inner ships behind the bastion, bed.sh --cheap-inner; only the
bastion is behind the proxy, the inner links are a LAN). Cheap ships share one dockerd, so
containers carry a `bench.ship` label naming their ship and the checks attribute them by it.

Only the standard library: the harness must run before anything is installed.
"""

import argparse
import concurrent.futures as cf
import http.client
import json
import os
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
TOOLS = ["maestro", "maestrong", "docker", "docker_cm", "compose"]
TOOL_LABELS = {
    "maestro": "maestro",
    "maestrong": "MaestroNG 0.8.3 (ssh -L tunnels)",
    "docker": "docker CLI, ssh://",
    "docker_cm": "docker CLI, ssh:// + ControlMaster",
    "compose": "docker-compose 1.29, ssh://",
}
COMMAND_TIMEOUT = 900
# On a dockerd shared by several ships (the bed's cheap ships), the ship a container belongs
# to is told by this label (set in maestro's environment), not by the socket it is found on.
SHIP_LABEL = "bench.ship"
SCALE_BED = "bench-scale"
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


def remove_all(ships):
    def one(sock):
        for c in api(sock, "GET", "/containers/json?all=1"):
            api(sock, "DELETE", f"/containers/{c['Id']}?force=1&v=1")

    socks = list(sockets_of(ships))
    with cf.ThreadPoolExecutor(len(socks)) as ex:
        list(ex.map(one, socks))


def daemon_times(sock, samples=5):
    """Median milliseconds the daemon itself takes to create, start, list, stop, restart."""
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
    return {k: round(statistics.median(v) * 1000, 2) for k, v in t.items()}


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


# ----------------------------------------------------------------------------------------
# The environment and each tool's equivalent of it.


def plan_instances(n, ships):
    """[(service, instance, ship)], services filled in level order, ships round robin."""
    per = [n // len(LEVELS) + (1 if i < n % len(LEVELS) else 0) for i in range(len(LEVELS))]
    out, j = [], 0
    for level, svc in enumerate(LEVELS):
        for k in range(per[level]):
            out.append((svc, f"{svc}-{k + 1:03d}", ships[j % len(ships)]["name"]))
            j += 1
    return out


def yaml_str(s):
    return json.dumps(s)  # JSON strings are valid YAML scalars


def maestrong_yaml(bed, instances, ports):
    lines = ["__maestro:", "  schema: 2", "name: bench", "ships:"]
    for s in bed["ships"]:
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
    """Shell lines running each ship's commands in the background, then waiting for all."""
    lines = []
    for ship, cmds in per_ship_cmds.items():
        if cmds:
            lines.append("( " + " && ".join(cmds) + f" ) & pids+=($!)")
    lines.append('for p in "${pids[@]}"; do wait "$p" || rc=1; done; pids=()')
    return lines


def docker_scripts(instances, ships):
    """The docker CLI, as a careful script author would drive it: ships in parallel, one
    dependency level after another; one command per container where the CLI needs it."""
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
        noop += parallel_block({s: [f"{d(s)} start {' '.join(insts)} >/dev/null"] for s, insts in lv.get(level, {}).items()})
    for level in reversed(range(len(LEVELS))):
        stop += parallel_block({s: [f"{d(s)} stop -t 2 {' '.join(insts)} >/dev/null"] for s, insts in lv.get(level, {}).items()})
    status = parallel_block({s["name"]: [f"{d(s['name'])} ps -a >/dev/null"] for s in ships})
    web = lv.get(LEVELS.index(RESTARTED), {})
    restart = parallel_block({s: [f"{d(s)} restart -t 2 {' '.join(insts)} >/dev/null"] for s, insts in web.items()})
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
    status = parallel_block({s["name"]: [f"{c(s['name'])} ps >/dev/null"] for s in ships})
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


def run_timed(argv, env, log_path, usage=None):
    """(seconds, exit code, peak RSS KiB) of one command, measured with wait4. With usage (a
    dict), also its CPU seconds (user + system, children included) and how busy the whole
    machine was meanwhile (0..1 of all CPUs: the ships' sshd and dockerd run on them too)."""
    busy0, total0 = cpu_jiffies()
    with open(log_path, "ab") as out:
        out.write(f"\n$ {' '.join(argv)}\n".encode())
        out.flush()
        t0 = time.perf_counter()
        p = subprocess.Popen(argv, env=env, stdout=out, stderr=out, stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = t0 + COMMAND_TIMEOUT
        while True:
            pid, status, rusage = os.wait4(p.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                os.killpg(p.pid, signal.SIGKILL)
                pid, status, rusage = os.wait4(p.pid, 0)
                p.returncode = -9
                return COMMAND_TIMEOUT, -9, rusage.ru_maxrss
            time.sleep(0.002)
        elapsed = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
        busy1, total1 = cpu_jiffies()
        cpu = rusage.ru_utime + rusage.ru_stime
        if usage is not None:
            usage["cpu_s"] = round(cpu, 3)
            usage["machine_busy"] = round((busy1 - busy0) / max(1, total1 - total0), 3)
        out.write(f"# exit {p.returncode} in {elapsed:.3f}s, maxrss {rusage.ru_maxrss} KiB, cpu {cpu:.3f}s\n".encode())
    return elapsed, p.returncode, rusage.ru_maxrss


def expected_state(op, instances):
    """What every instance must be after op."""
    if op == "stop":
        return {i: "exited" for _, i, _ in instances}
    return {i: "running" for _, i, _ in instances}


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


def fingerprints(ships):
    """{name: (id, started at)} of every container: what a no-op must leave unchanged."""
    out = {}

    def one(sock):
        return [
            (c["Names"][0].lstrip("/"), c["Id"], api(sock, "GET", f"/containers/{c['Id']}/json")["State"]["StartedAt"])
            for c in api(sock, "GET", "/containers/json?all=1")
        ]

    socks = list(sockets_of(ships))
    with cf.ThreadPoolExecutor(len(socks)) as ex:
        for rows in ex.map(one, socks):
            for name, cid, started in rows:
                out[name] = (cid, started)
    return out


def check_state(ships, instances, op):
    """Instances not in the state op must leave them in, or not on their own ship. A ship with
    a socket of its own owns what is on it; on a socket shared by several ships (cheap ships)
    a container belongs to the ship its SHIP_LABEL names."""
    want = expected_state(op, instances)
    where = {i: ship for _, i, ship in instances}
    have = {}  # name -> (state, ship)
    for sock, names in sockets_of(ships).items():
        for c in api(sock, "GET", "/containers/json?all=1"):
            ship = names[0] if len(names) == 1 else (c.get("Labels") or {}).get(SHIP_LABEL)
            for n in c.get("Names", []):
                have[n.lstrip("/")] = (c.get("State"), ship)
    bad = [i for i, st in want.items() if have.get(i) != (st, where[i])]
    return bad


class Config:
    """One bed (K ships) with its proxy, and the files for N instances."""

    def __init__(self, args, k, n, bed, shape=None):
        """shape None: the side-by-side and grid beds (every tool); "direct" or "bastion": a
        scale row (maestro only, cheap ships sharing one dockerd, see --scale)."""
        self.args, self.k, self.n, self.bed, self.shape = args, k, n, bed, shape
        self.ships = bed["ships"]
        self.workdir = os.path.join(HERE, "work", f"k{k}-n{n}" if shape is None else f"scale-{shape}-k{k}-n{n}")
        shutil.rmtree(self.workdir, ignore_errors=True)
        os.makedirs(os.path.join(self.workdir, "bin"))
        os.makedirs(os.path.join(self.workdir, "compose"))
        self.instances = plan_instances(n, self.ships)
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
                lines += [f"Host {s['name']}", f"    HostName {PROXY_NET}{i + 1}", f"    Port {PROXY_PORT}"] + common
                if variant == "cm":
                    lines += [
                        "    ControlMaster auto",
                        f"    ControlPath {d}/cm-%C",
                        "    ControlPersist 600",
                    ]
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
        e["BENCH_SSH_CONFIG"] = os.path.join(self.workdir, "ssh_config." + ("cm" if tool == "docker_cm" else "plain"))
        e.pop("DOCKER_HOST", None)
        e["NO_COLOR"] = "1"
        # maestro remembers each daemon's API version under the cache directory: keep the
        # bench's (warm after the first command, as for an operator) out of the user's ~/.cache.
        e["XDG_CACHE_HOME"] = os.path.join(self.workdir, "cache")
        return e

    def argv(self, tool, op):
        if tool in ("docker", "docker_cm", "compose"):
            return ["bash", self.scripts[("compose" if tool == "compose" else "docker", op)]]
        if tool == "maestrong":
            f = os.path.join(self.workdir, "maestrong.yaml")
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


# Round trips a minimal client cannot avoid, per operation (all ships in parallel):
# TCP 1 + SSH version/KEXINIT 1 + key exchange 1 + service request 1 + publickey auth with
# the signature sent at once 1 + opening the channel to the Docker socket 1 = 6, then the API:
# one list of containers, then per dependency level what the Docker API needs (create and
# start are two calls; stop, restart one).
SSH_SETUP_RTTS = 6
API_RTTS = {
    "status": 1,
    "noop_start": 1,
    "start": 1 + 2 * len(LEVELS),
    "stop": 1 + len(LEVELS),
    "restart": 1 + 1,
}


def lower_bound_s(op, rtt, daemon, floor, hops=1):
    """Seconds: the round trips above plus the daemon's own work along the longest chain, or
    the machine's measured floor for that work when it is longer (CPUs shared). hops=2: the
    ship behind a jump host whose link alone is delayed, so the ship's own SSH set-up also
    crosses it (the jump's login, then the ship's through a channel of it)."""
    own = {
        "status": daemon["list"],
        "noop_start": daemon["list"],
        "start": daemon["list"] + len(LEVELS) * (daemon["create"] + daemon["start"]),
        "stop": daemon["list"] + len(LEVELS) * daemon["stop"],
        "restart": daemon["list"] + daemon["restart"],
    }[op]
    own = max(own, 1000.0 * floor.get(op, 0.0))
    return ((hops * SSH_SETUP_RTTS + API_RTTS[op]) * rtt + own) / 1000.0


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


def bench_tool(cfg, tool, reps, logdir):
    """{op: {"runs": [...], "median_s", "ok", "maxrss_kib"}} for one tool."""
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
        if tool == "docker_cm":
            # Masters opened once, as ControlPersist leaves them between a user's commands.
            t0 = time.perf_counter()
            with cf.ThreadPoolExecutor(len(cfg.ships)) as ex:
                list(ex.map(lambda s: subprocess.run(["ssh", s["name"], "true"], env=env, timeout=120), cfg.ships))
            extra["master_setup_s"] = round(time.perf_counter() - t0, 3)
        results = {op: {"runs": [], "ok": True, "bad": [], "maxrss_kib": 0, "exit": [], "ssh_logins": [],
                        "cpu_s": [], "machine_busy": []} for op in OPS}
        for rep in range(reps):
            remove_all(cfg.ships)
            for op in OPS:
                logins = ssh_logins(cfg.ships)
                jumps = ssh_logins(cfg.jump_hosts)
                before = fingerprints(cfg.ships) if op == "noop_start" else None
                usage = {}
                secs, code, rss = run_timed(cfg.argv(tool, op), env, log_path, usage)
                logins = ssh_logins(cfg.ships) - logins
                if cfg.jump_hosts:
                    results[op].setdefault("jump_logins", []).append(ssh_logins(cfg.jump_hosts) - jumps)
                results[op]["cpu_s"].append(usage.get("cpu_s"))
                results[op]["machine_busy"].append(usage.get("machine_busy"))
                if before is not None:
                    after = fingerprints(cfg.ships)
                    touched = sum(1 for k, v in after.items() if before.get(k) != v)
                    results[op].setdefault("touched", []).append(touched)
                bad = check_state(cfg.ships, cfg.instances, op)
                r = results[op]
                r["runs"].append(round(secs, 4))
                r["exit"].append(code)
                r["ssh_logins"].append(logins)
                r["maxrss_kib"] = max(r["maxrss_kib"], rss)
                if code != 0 or bad:
                    r["ok"] = False
                    r["bad"] = bad[:5]
                log(f"  {tool:10} {op:10} rep {rep + 1}: {secs:7.3f}s exit {code} ssh logins {logins}"
                    + (f" (+{r['jump_logins'][-1]} jump)" if cfg.jump_hosts else "")
                    + f" cpu {usage.get('cpu_s', 0):.2f}s machine {100 * usage.get('machine_busy', 0):.0f}%"
                    + (" WRONG STATE " + str(bad[:3]) if bad else ""))
                if cfg.shape is not None and op == "status" and rep == reps - 1:
                    # Everything is running: what K lists cost the shared dockerd alone.
                    socks = sockets_of(cfg.ships)
                    if len(socks) == 1:
                        results["_list_fanout"] = list_fanout(next(iter(socks)), len(cfg.ships))
        for op in OPS:
            results[op]["median_s"] = round(statistics.median(results[op]["runs"]), 4)
            cpus = [c for c in results[op]["cpu_s"] if c is not None]
            if cpus:
                results[op]["median_cpu_s"] = round(statistics.median(cpus), 3)
        results["_setup"] = extra
        return results
    finally:
        for t in tunnels:
            t.terminate()
            try:
                t.wait(5)
            except subprocess.TimeoutExpired:
                t.kill()
        if tool == "docker_cm":
            for s in cfg.ships:
                subprocess.run(["ssh", "-O", "exit", s["name"]], env=env, capture_output=True, timeout=30)
        remove_all(cfg.ships)


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
        for shape in shapes:
            ships = [s for s in bed["ships"] if s.get("cheap") and s["inner"] == (shape == "bastion")]
            targets = [bed["bastion"]["ip"]] if shape == "bastion" else [s["ip"] for s in ships]
            proxy = Proxy(bed, args.delay_ms, logdir, targets)
            try:
                rtt = rtt_ms()
                floor = None
                for kk in sorted({min(base, k), k}):
                    sub = dict(bed, ships=ships[:kk])
                    cfg = Config(args, kk, n, sub, shape=shape)
                    if floor is None:
                        # One dockerd serves every ship: the floor does not depend on K.
                        floor = machine_floor_s(sub["ships"], n)
                        log(f"scale {shape}: round trip {rtt:.1f} ms; daemon (ms) {daemon}; floor (s) {floor}")
                    log(f"scale {shape} K={kk} N={n}: maestro")
                    try:
                        r = bench_tool(cfg, "maestro", args.scale_reps, logdir)
                    except Exception as e:
                        log(f"  maestro failed: {e}")
                        r = {"error": str(e)}
                    scale["rows"].append(
                        {"tool": "maestro", "shape": shape, "ships": kk, "instances": n, "rtt_ms": rtt,
                         "daemon_ms": daemon, "floor_s": floor,
                         "bound_s": {op: round(lower_bound_s(op, rtt, daemon, floor, 2 if shape == "bastion" else 1), 4)
                                     for op in OPS},
                         "ops": r})
                    yield
            finally:
                proxy.stop()
    finally:
        bed_down(SCALE_BED)
    scale["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


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
    ap.add_argument("--reps", type=int, default=3, help="rounds per tool and configuration (median)")
    ap.add_argument("--reps-compose", type=int, default=1, help="rounds for docker-compose (slow)")
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
    ap.add_argument("--scale-reps", type=int, default=3, help="rounds per scale row (median)")
    args = ap.parse_args()
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
            "grid_reps": args.grid_reps,
            "levels": LEVELS,
            "ssh_setup_rtts": SSH_SETUP_RTTS,
            "api_rtts": API_RTTS,
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
    # Which maestro was measured: the source tree the release binary was built from.
    try:
        head = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=30)
        dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--", "src"], capture_output=True, text=True, timeout=30)
        versions["maestro_commit"] = head.stdout.strip() + (" (src modified)" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        pass
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
                daemon = daemon_times(bed["ships"][0]["docker_socket"])
                log(f"round trip through the proxy {rtt:.1f} ms; daemon (ms) {daemon}")
                for n, ts in sorted(by_k[k], key=lambda x: (x[0] != args.instances, x[0])):
                    cfg = Config(args, k, n, bed)
                    floor = machine_floor_s(bed["ships"], n)
                    log(f"K={k} N={n}: the machine's own floor (s) {floor}")
                    for tool in ts:
                        if tool == "maestro" and not os.access(args.maestro, os.X_OK):
                            log(f"maestro binary {args.maestro} missing: skipped")
                            continue
                        log(f"K={k} N={n}: {tool}")
                        try:
                            reps = args.reps_compose if tool == "compose" else args.reps
                            if (k, n) != (args.ships, args.instances) and args.grid_reps:
                                reps = min(reps, args.grid_reps)
                            r = bench_tool(cfg, tool, reps, logdir)
                        except Exception as e:
                            log(f"  {tool} failed: {e}")
                            r = {"error": str(e)}
                        bounds = {op: round(lower_bound_s(op, rtt, daemon, floor), 4) for op in OPS}
                        results["runs"].append(
                            {"tool": tool, "label": TOOL_LABELS[tool], "ships": k, "instances": n,
                             "rtt_ms": rtt, "daemon_ms": daemon, "floor_s": floor,
                             "bound_s": bounds, "ops": r}
                        )
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
        results["scale"] = {"maestro_version": maestro_version(args.maestro)}
        for _ in run_scale(args, results["scale"]):
            with open(args.out, "w") as f:
                json.dump(results, f, indent=1)
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


def maestro_version(binary):
    out = {}
    try:
        o = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=30)
        out["version"] = (o.stdout + o.stderr).strip().splitlines()[0]
        head = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=30)
        dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--", "src"], capture_output=True, text=True, timeout=30)
        out["commit"] = head.stdout.strip() + (" (src modified)" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError, IndexError) as e:
        out["error"] = str(e)
    return out


if __name__ == "__main__":
    main()
