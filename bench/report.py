#!/usr/bin/env python3
"""Writes docs/benchmarks.md from bench/results.json (and draws the charts with bench's
`chart` binary). Every number in the document comes from the JSON; the prose around them is
here, so that a re-run rewrites the whole page consistently."""

import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
OPS = [
    ("status", "status"),
    ("start", "start from nothing"),
    ("noop_start", "no-op start"),
    ("restart", "restart web"),
    ("stop", "stop"),
]
TOOLS = ["maestro", "maestrong", "docker", "docker_cm", "compose"]
FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"


def fmt_s(v):
    if v is None:
        return "—"
    return f"{v:.2f} s" if v < 10 else f"{v:.1f} s"


def fmt_x(v):
    if v is None:
        return "—"
    return f"{v:.1f}×" if v < 100 else f"{v:.0f}×"


def med(run, op):
    o = run.get("ops", {}).get(op)
    return o.get("median_s") if isinstance(o, dict) else None


def cell_ok(run, op):
    o = run.get("ops", {}).get(op)
    return isinstance(o, dict) and o.get("ok", False)


SCALE_OPS = [
    ("status", "status"),
    ("start", "start from nothing"),
    ("noop_start", "no-op start"),
    ("stop", "stop"),
    ("restart", "restart web"),
]
SHAPE_LABELS = {
    "direct": "direct: every ship behind its own delaying proxy",
    "bastion": "bastion: one delaying proxy in front of the bastion, ships on its LAN",
}


def peak_rss_mib(run):
    ops = run.get("ops", {})
    v = [o.get("maxrss_kib", 0) for o in ops.values() if isinstance(o, dict) and "maxrss_kib" in o]
    return max(v) / 1024 if v else None


def scale_section(data, w):
    """The scale rows (harness --scale): maestro at K=base and K ships of one shape, same bed,
    same invocation; every ratio is K's row over the base row of its shape."""
    sc = data.get("scale") or {}
    rows = sc.get("rows") or []
    if not rows:
        w("## Scale: 100 ships, reached directly and behind one bastion")
        w("")
        w("**Pending**: run `sudo ./bench.sh --scale-only` (maestro only; it keeps every other row of"
          " `bench/results.json`). It brings up one bed with 100 sshd-only ships for each shape, all"
          " sharing one dockerd, and times maestro at K=4 and K=100, N=200, in the same invocation.")
        w("")
        return
    k, base, n = sc["ships"], sc["base"], sc["instances"]
    where = {"direct": "reached directly", "bastion": "behind one bastion"}
    shapes = [where.get(x, x) for x in sc.get("shapes", [])]
    w(f"## Scale: {k} ships, {' and '.join(shapes) or 'no shape'}")
    w("")
    host = sc.get("host", {})
    mem = host.get("mem_total_kib")
    w(f"maestro alone, N={n} instances, K={base} and K={k} ships in the same bed and the same run, one-way"
      f" delay {sc['delay_ms']:g} ms, median of {sc['reps']} round{'s' if sc['reps'] != 1 else ''}; the K={k} row of each shape is read"
      f" as a ratio to its own K={base} row. Run {sc.get('started', '?')} – {sc.get('finished', 'unfinished')},"
      f" {host.get('nproc')} CPUs" + (f", {mem / 1024 / 1024:.0f} GB" if mem else "")
      + f", load average at the start {', '.join(f'{x:.1f}' for x in host.get('loadavg_at_start', []))}"
      + (f"; maestro `{sc['maestro_version'].get('version', '?')}` at `{sc['maestro_version'].get('commit', '?')}`"
         if sc.get("maestro_version") else "") + ".")
    w("")
    w("- **Ships.** `testbed/bed.sh --cheap-outer K` (direct) and `--cheap-inner K` (behind the bastion):"
      " each ship is a namespace with its own address, host key and sshd, and every one's Docker socket is"
      " that of **one shared dockerd** (100 dockerds do not fit on this machine). Containers carry a"
      " `bench.ship` label naming their ship, and the state checks after every command attribute them by"
      " it. The K={0} row uses the first {0} ships of the same bed.".format(base))
    w("- **direct**: ship i behind its own delaying proxy address (127.77.0.i), as in the grid."
      " **bastion**: maestro reaches every ship with `ssh.jump` through the bastion, the only host"
      " behind the proxy; the links from the bastion to the ships are not delayed (a LAN), and"
      " maestro shares one SSH session to the bastion among all ships.")
    w("- **What the shared dockerd adds.** maestro lists the environment's containers on each ship (filtered"
      " by its environment label); on one shared dockerd every ship's list returns all N containers"
      " instead of its own N/K, and K lists land on one daemon at once. A fleet of real hosts pays"
      " neither, so the K=100 rows here are pessimistic; the last table measures that cost alone.")
    w("")
    by = {}
    for r in rows:
        by.setdefault(r["shape"], {})[r["ships"]] = r
    w("| shape | K | " + " | ".join(label for _, label in SCALE_OPS) + " | peak RSS |")
    w("|---|---|" + "---|" * len(SCALE_OPS) + "---|")
    targets = []
    for shape in sc.get("shapes", list(by)):
        got = by.get(shape, {})
        b, big = got.get(base), got.get(k)
        for kk, r in sorted(got.items()):
            if "error" in r.get("ops", {}):
                w(f"| {shape} | {kk} | failed: {r['ops']['error']} |" + " |" * len(SCALE_OPS))
                continue
            cells = [f"{fmt_s(med(r, op))}{'' if cell_ok(r, op) else ' ✗'}" for op, _ in SCALE_OPS]
            rss = peak_rss_mib(r)
            w(f"| {shape} | {kk} | " + " | ".join(cells) + f" | {rss:.1f} MiB |")
        if b and big and "error" not in b.get("ops", {}) and "error" not in big.get("ops", {}) and k != base:
            ratios = [fmt_x(med(big, op) / med(b, op)) if med(b, op) else "—" for op, _ in SCALE_OPS]
            rb, rk = peak_rss_mib(b), peak_rss_mib(big)
            w(f"| **{shape}, K={k} / K={base}** | | " + " | ".join(f"**{x}**" for x in ratios)
              + f" | **{fmt_x(rk / rb) if rb else '—'}** |")
            st = med(big, "status") / med(b, "status")
            ok = st <= 1.5 and cell_ok(big, "status") and cell_ok(b, "status")
            targets.append((shape, st, ok))
    w("")
    if targets:
        w("| target | measured | |")
        w("|---|---|---|")
        for shape, st, ok in targets:
            w(f"| `status` at K={k} at most 1.5× `status` at K={base}, {shape} | {st:.2f}× | {'met' if ok else '**missed**'} |")
        w("")
    # Where the time goes: maestro's own CPU, the machine's, the logins.
    w(f"Where the time goes (medians; *cpu*: maestro's user + system CPU seconds; *machine*: how busy both"
      f" CPUs were during the command, ships' sshd and the dockerd included; *logins*: accepted by the"
      f" ships' sshd, + the bastion's):")
    w("")
    w("| shape | K | " + " | ".join(label for _, label in SCALE_OPS) + " |")
    w("|---|---|" + "---|" * len(SCALE_OPS))
    for shape in sc.get("shapes", list(by)):
        for kk, r in sorted(by.get(shape, {}).items()):
            if "error" in r.get("ops", {}):
                continue
            cells = []
            for op, _ in SCALE_OPS:
                o = r["ops"][op]
                busy = [x for x in o.get("machine_busy", []) if x is not None]
                logins = statistics.median(o.get("ssh_logins") or [0])
                jumps = o.get("jump_logins")
                cells.append(
                    f"{fmt_s(o['median_s'])} wall, {o.get('median_cpu_s', 0):.2f} s cpu,"
                    f" machine {100 * statistics.median(busy) if busy else 0:.0f}%,"
                    f" {logins:g}{f' + {statistics.median(jumps):g}' if jumps else ''} logins")
            w(f"| {shape} | {kk} | " + " | ".join(cells) + " |")
    w("")
    fan = [(shape, kk, r["ops"]["_list_fanout"]) for shape in sc.get("shapes", list(by))
           for kk, r in sorted(by.get(shape, {}).items()) if isinstance(r.get("ops", {}).get("_list_fanout"), dict)]
    if fan:
        w("The shared dockerd alone, everything running: K lists of the environment at once on its local"
          " socket (no SSH), as maestro's `status` asks them, and the size of one answer:")
        w("")
        w("| shape | K | K lists at once | one answer | all K answers (through SSH) |")
        w("|---|---|---|---|---|")
        for shape, kk, f in fan:
            w(f"| {shape} | {kk} | {f['seconds']:.2f} s | {f['bytes_each'] / 1024:.0f} KiB"
              f" | {kk * f['bytes_each'] / 1024 / 1024:.1f} MiB |")
        w("")
    grid = [r for r in data.get("runs", []) if r["tool"] == "maestro" and r["ships"] == base and r["instances"] == n
            and "error" not in r.get("ops", {})]
    if grid:
        g = grid[0]
        w(f"For reference, the grid's maestro K={base} N={n} row (its own run, a dockerd per ship): status"
          f" {fmt_s(med(g, 'status'))}, start {fmt_s(med(g, 'start'))}, no-op start {fmt_s(med(g, 'noop_start'))},"
          f" stop {fmt_s(med(g, 'stop'))}, round trip {g['rtt_ms']:.1f} ms; the ratios above use the K={base}"
          " row of the scale run instead, measured on the same bed at the same moment.")
        w("")


def main():
    results_path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "results.json")
    out_md = sys.argv[2] if len(sys.argv) > 2 else os.path.join(ROOT, "docs", "benchmarks.md")
    with open(results_path) as f:
        data = json.load(f)
    os.makedirs(os.path.dirname(out_md), exist_ok=True)
    chart = os.path.join(HERE, "target", "release", "chart")
    charts_ok = False
    if os.access(chart, os.X_OK) and os.path.exists(FONT):
        r = subprocess.run([chart, results_path, os.path.dirname(out_md), FONT], capture_output=True, text=True)
        charts_ok = r.returncode == 0
        if not charts_ok:
            print(r.stderr, file=sys.stderr)

    k = data["default"]["ships"]
    n = data["default"]["instances"]
    runs = data.get("runs", [])
    at_default = {r["tool"]: r for r in runs if r["ships"] == k and r["instances"] == n}
    maestro = at_default.get("maestro")
    any_row = maestro or next(iter(at_default.values()), None)
    L = []
    w = L.append

    w("# Benchmarks: maestro against the tools it replaces")
    w("")
    w("*This page is written by `./bench.sh` (bench/report.py) from `bench/results.json`;"
      " do not edit the numbers by hand.*")
    w("")
    w("## How to run")
    w("")
    w("```sh")
    w("sudo ./bench.sh                      # everything: peers at K=4 N=40, maestro over the grid")
    w("sudo ./bench.sh --tools maestro --merge   # refresh only maestro's rows, keep the peers'")
    w("sudo ./bench.sh --scale-only         # only the scale rows (maestro, K=4 and 100, N=200), keep the rest")
    w("sudo ./bench.sh --help               # options: --delay-ms, --reps, --ships, --instances, --grid")
    w("sudo ./bench.sh --proxy-port 2222    # if this machine's own sshd holds 0.0.0.0:22")
    w("sudo python3 bench/roundtrips.py > bench/roundtrips.txt   # maestro's round-trip profile")
    w("```")
    w("")
    w("A full run takes about 35 minutes on the 2-CPU machine of the committed run (docker-compose alone"
      " about 7, maestro's grid with the machine's floor about 17; longer on a loaded machine). The scale"
      " rows (`--scale-only`, not part of the default run) take about 25 minutes more: 12 rounds at N=200"
      " (2 shapes × K=4 and K=100 × 3), each about as long as the grid's K=4 N=200 round, plus the floor"
      " per shape.")
    w("")
    w("It installs what the peers need (Debian `docker-compose`, `python3-paramiko`, `fonts-dejavu-core`,"
      " MaestroNG 0.8.3 into `bench/.venv`), builds maestro and the harness (`bench/`, its own cargo"
      " workspace) in release mode, brings up test beds (`testbed/bed.sh`), runs every tool,"
      " tears every bed and proxy down (also on Ctrl-C), and rewrites this page, its charts and"
      " `bench/results.json`. Logs of every command: `bench/work/logs-k*/`.")
    w("")
    w("## What is measured")
    w("")
    w(f"- **Link.** Each ship's sshd sits behind `delay-proxy` (bench/src/bin/delay-proxy.rs), a userspace TCP"
      f" proxy (this kernel has no netem): every byte waits {data['delay_ms']:g} ms in each direction, order kept,"
      " no serialisation of the link; a new connection reaches sshd only 1.5 round trips after it was"
      " accepted, when a real server would see the TCP handshake complete. Tools reach the ships only through"
      " it (ssh config `HostName 127.77.0.<i>`).")
    w("- **Environment.** 4 services in a chain `db <- queue <- app <- web` (dependency depth 4), N instances"
      " dealt round robin over K ships, image `maestro-test:latest` (busybox) running"
      " `sh -c \"trap 'exit 0' TERM; sleep 3600 & wait\"` (it stops at once on SIGTERM, so `stop`"
      " measures the tool, not a grace period). The same environment is written for each tool:"
      " MaestroNG YAML, maestro YAML, docker CLI scripts, one compose file per ship"
      " (`bench/work/k<K>-n<N>/`).")
    w("- **Operations**, whole commands, one after the other in each round: `start` from nothing, `start`"
      " again (no-op), `status` (everything running), `restart` of service `web` (nothing depends on"
      " it), `stop` of everything. Before each round every container is removed. After each command the"
      " harness checks every ship's state (untimed); a command that exits non-zero or leaves a wrong"
      " state is marked ✗.")
    w(f"- **Rounds.** Median of {data['reps']} rounds (docker-compose: {data.get('reps_compose', 1)}, it is slow; maestro's other grid points:"
      f" {data.get('grid_reps', data['reps'])}).")
    w("- **Peers, as their users run them.**")
    w("  - MaestroNG 0.8.3 (PyPI, docker-py 1.10.6, `requests<2.29`, `urllib3<2`) through one"
      " `ssh -N -L port:/docker.sock` per ship, opened once before timing and kept open (its own"
      " `ssh_tunnel` hangs). Tunnel setup time is reported separately, not counted.")
    w("  - docker CLI with `-H ssh://root@shipN`, a script that runs ships in parallel and levels in order,"
      " one `docker run` per container, one `docker start/stop/restart` per ship and level with all names."
      " Without, and with an OpenSSH ControlMaster (`ControlMaster auto`, `ControlPersist 600`; masters"
      " opened before timing, as a user's earlier command would have).")
    w("  - docker-compose 1.29 (Debian), one file per ship (`network_mode: bridge`, `depends_on` within"
      " the ship). Compose cannot express a dependency on another ship, so the script runs"
      " `up -d --no-deps <instances of the level>` per level, ships in parallel.")
    w("- **maestro** as `maestro -f maestro.yaml --plain start|status|restart web|stop -a`, release build;"
      " peak memory is the process's `ru_maxrss` from `wait4`.")
    w("")
    w("### The lower bound")
    w("")
    w(f"From the round trip measured through the proxy (a ping-pong over an open connection to an echo"
      f" server behind the same delays), all ships in parallel: {data['ssh_setup_rtts']} round trips to get"
      " an SSH channel to the Docker socket (TCP 1, version and KEXINIT 1, key exchange 1, service"
      " request 1, public-key authentication with the signature sent at once 1, channel open 1), then"
      " the Docker API round trips the operation cannot avoid: a list of containers, and per dependency"
      " level what the API needs (create and start are two calls; stop and restart one). To that the"
      " daemon's own time along the longest chain is added (measured on a ship's local socket, no"
      " proxy), which makes it the critical path for `start` and `stop`. That formula assumes a"
      " daemon can create and start any number of containers at once; the ships here share the"
      " machine's CPUs, so the harness also measures **the machine's floor**: the same"
      " environment's daemon work done with no tool and no network (every container of a level at"
      " once, a thread each, on the ships' local sockets, levels in order; restart: every `web` at"
      " once; stop: levels in reverse), and uses it for the daemon part of `start`, `restart` and"
      " `stop` when it is longer than the formula's.")
    w("")
    w("| operation | round trips | daemon work added |")
    w("|---|---|---|")
    own = {
        "status": "one list",
        "noop_start": "one list",
        "start": "list + 4 × (create + start), or the machine's floor",
        "stop": "list + 4 × stop, or the machine's floor",
        "restart": "list + restart, or the machine's floor",
    }
    for op, label in OPS:
        w(f"| {label} | {data['ssh_setup_rtts']} + {data['api_rtts'][op]} | {own[op]} |")
    w("")
    if any_row:
        w(f"Measured at K={k}: round trip **{any_row['rtt_ms']:.1f} ms**, daemon (ms): "
          + ", ".join(f"{a} {b:g}" for a, b in any_row["daemon_ms"].items()) + "."
          + (f" The machine's floor at N={n} (s): "
             + ", ".join(f"{a} {b:g}" for a, b in any_row["floor_s"].items()) + "."
             if any_row.get("floor_s") else ""))
    w("")
    host = data.get("host", {})
    w(f"**Machine.** {host.get('nproc')} CPUs shared with other work; load average at the start"
      f" {', '.join(f'{x:.1f}' for x in host.get('loadavg_at_start', []))}. The ships' dockerd and sshd run"
      " on the same CPUs as the tools, so local CPU (OpenSSH's key exchange, Python start-up, container"
      " creation) shows in every number; compare tools within one run. Versions: "
      + "; ".join(f"{t}: `{v}`" for t, v in data.get("versions", {}).items()) + ".")
    w("")
    w(f"Last run {data.get('started', '?')} – {data.get('finished', 'unfinished')}. Rows kept from an earlier"
      " run (`--merge`) keep that run's numbers, and every row's ratios use the bound measured in its own run"
      " (the daemon's times move with the machine's load):")
    w("")
    seen = {}
    for r in at_default.values():
        key = (r["rtt_ms"], tuple(sorted(r["daemon_ms"].items())))
        seen.setdefault(key, (r, []))[1].append(r["label"])
    for (rtt, daemon), (r, labels) in seen.items():
        w(f"- {', '.join(labels)}: round trip {rtt:.1f} ms, daemon (ms) "
          + ", ".join(f"{a} {b:g}" for a, b in daemon) + "; bound "
          + ", ".join(f"{label} {fmt_s(r['bound_s'][op])}" for op, label in OPS) + ".")
    w("")

    w(f"## Side by side: K={k} ships, N={n} instances, one-way delay {data['delay_ms']:g} ms")
    w("")
    if charts_ok:
        w("![every tool, every operation](benchmarks-tools.png)")
        w("")
    w("Median seconds (✗: non-zero exit or wrong state afterwards; SSH logins counted in the ships' sshd logs,"
      " per command):")
    w("")
    w("| tool | " + " | ".join(label for _, label in OPS) + " |")
    w("|---|" + "---|" * len(OPS))
    for tool in TOOLS:
        r = at_default.get(tool)
        if r is None:
            if tool == "maestro":
                w("| maestro | " + " | ".join("pending" for _ in OPS) + " |")
            continue
        if "error" in r.get("ops", {}):
            w(f"| {r['label']} | failed: {r['ops']['error']} |" + " |" * (len(OPS) - 1))
            continue
        cells = []
        for op, _ in OPS:
            o = r["ops"][op]
            logins = statistics.median(o.get("ssh_logins") or [0])
            cells.append(f"{fmt_s(o['median_s'])}{'' if o['ok'] else ' ✗'} <sub>{logins:g} ssh</sub>")
        w(f"| {r['label']} | " + " | ".join(cells) + " |")
    if any_row:
        w(f"| *lower bound* ({'maestro' + chr(39) + 's' if maestro else 'the peers' + chr(39)} run) | "
          + " | ".join(fmt_s(any_row["bound_s"][op]) for op, _ in OPS) + " |")
    w("")
    w("Ratio to the lower bound (1.0× is the physical limit of this link and daemon):")
    w("")
    w("| tool | " + " | ".join(label for _, label in OPS) + " |")
    w("|---|" + "---|" * len(OPS))
    for tool in TOOLS:
        r = at_default.get(tool)
        if r is None or "error" in r.get("ops", {}):
            if tool == "maestro":
                w("| maestro | " + " | ".join("pending" for _ in OPS) + " |")
            continue
        w(f"| {r['label']} | " + " | ".join(fmt_x(med(r, op) / r["bound_s"][op]) for op, _ in OPS) + " |")
    w("")
    w("Ratio to maestro (how many times slower than maestro each peer is):")
    w("")
    w("| tool | " + " | ".join(label for _, label in OPS) + " |")
    w("|---|" + "---|" * len(OPS))
    for tool in TOOLS[1:]:
        r = at_default.get(tool)
        if r is None or "error" in r.get("ops", {}):
            continue
        if maestro is None or "error" in maestro.get("ops", {}):
            w(f"| {r['label']} | " + " | ".join("pending" for _ in OPS) + " |")
        else:
            w(f"| {r['label']} | " + " | ".join(fmt_x(med(r, op) / med(maestro, op)) for op, _ in OPS) + " |")
    w("")
    touched = [(r["label"], max(r["ops"]["noop_start"]["touched"])) for t in TOOLS if (r := at_default.get(t))
               and isinstance(r.get("ops", {}).get("noop_start"), dict) and r["ops"]["noop_start"].get("touched")]
    if touched:
        w("Containers a no-op `start` re-created or restarted (most in a round; 0 is right): "
          + "; ".join(f"{label}: {t}" for label, t in touched) + ".")
        w("")
    startup = data.get("startup_s", {})
    if startup:
        w("Start-up of each program on this machine (`--version`, median of 3), paid by every command: "
          + ", ".join(f"{t} {v:.2f} s" for t, v in startup.items()) + ".")
        w("")
    setups = [(r["label"], r["ops"].get("_setup", {})) for r in at_default.values() if r.get("ops", {}).get("_setup")]
    if setups:
        w("Not counted above: " + "; ".join(
            f"{label}: " + ", ".join(f"{a.removesuffix('_s').replace('_', ' ')} {b:.2f} s" for a, b in s.items())
            for label, s in setups) + ".")
        w("")

    w("## Targets")
    w("")
    targets = []
    if maestro and "error" not in maestro.get("ops", {}):
        b = maestro["bound_s"]
        st = med(maestro, "status")
        ng = at_default.get("maestrong")
        dk = at_default.get("docker")
        faster = [st and p and med(p, "status") / st for p in (ng, dk)]
        targets.append(("`status` within 1.5× of the lower bound", f"{st / b['status']:.2f}×", st / b["status"] <= 1.5))
        targets.append(("`status` ≥ 10× faster than MaestroNG and the docker CLI over ssh://",
                        " / ".join(fmt_x(x) for x in faster),
                        all(x is not None and x >= 10 for x in faster)))
        s = med(maestro, "start")
        targets.append(("`start` from nothing within 1.3× of the critical path", f"{s / b['start']:.2f}×", s / b["start"] <= 1.3))
        ns = med(maestro, "noop_start")
        touched = maestro["ops"]["noop_start"]["ok"] and max(maestro["ops"]["noop_start"].get("touched") or [0]) == 0
        targets.append(("no-op `start` under 2 round-trip bounds", f"{ns / b['noop_start']:.2f}×", ns / b["noop_start"] < 2 and touched))
        grid = [r for r in runs if r["tool"] == "maestro"]
        big = [r for r in grid if r["ships"] == 16 and r["instances"] == 200]
        if big:
            rss = max(o.get("maxrss_kib", 0) for o in big[0]["ops"].values() if isinstance(o, dict)) / 1024
            targets.append(("peak memory under 50 MiB at K=16, N=200", f"{rss:.1f} MiB", rss < 50))
        w("| target | measured | |")
        w("|---|---|---|")
        for t, v, ok in targets:
            w(f"| {t} | {v} | {'met' if ok else '**missed**'} |")
    else:
        w("maestro's rows are **pending**: its `start`/`status` were not implemented when these numbers were"
          " taken. The targets (status ≤ 1.5× bound and ≥ 10× faster than MaestroNG and the docker CLI; start ≤"
          " 1.3× the critical path; no-op start < 2 bounds touching nothing; curves flat in N; peak memory"
          " < 50 MiB at K=16, N=200) are evaluated here as soon as `./bench.sh --tools maestro --merge` has run.")
    w("")

    w("## Scaling: cost should follow depth and ships, not N")
    w("")
    grid = sorted((r for r in runs if r["tool"] == "maestro"), key=lambda r: (r["ships"], r["instances"]))
    others = sorted((r for r in runs if r["tool"] != "maestro" and (r["ships"], r["instances"]) != (k, n)),
                    key=lambda r: (r["tool"], r["ships"], r["instances"]))
    if charts_ok:
        w("![maestro against N and K](benchmarks-scaling.png)")
        w("")
    if grid or others:
        w("| tool | K | N | " + " | ".join(label for _, label in OPS) + " | peak RSS |")
        w("|---|---|---|" + "---|" * len(OPS) + "---|")
        for r in grid + others:
            if "error" in r.get("ops", {}):
                w(f"| {r['label']} | {r['ships']} | {r['instances']} | failed: {r['ops']['error']} |")
                continue
            rss = max(o.get("maxrss_kib", 0) for o in r["ops"].values() if isinstance(o, dict) and "maxrss_kib" in o)
            cells = [f"{fmt_s(med(r, op))}{'' if cell_ok(r, op) else ' ✗'} ({fmt_x(med(r, op) / r['bound_s'][op])} b)" for op, _ in OPS]
            w(f"| {r['label']} | {r['ships']} | {r['instances']} | " + " | ".join(cells) + f" | {rss / 1024:.1f} MiB |")
        w("")
        w("(*x× b*: ratio to that configuration's lower bound.)")
    else:
        w("maestro's curves for N = 10, 40, 200 and K = 1, 4, 16 are **pending** (see above).")
    w("")
    scale_section(data, w)
    notes = os.path.join(HERE, "NOTES.md")
    if os.path.exists(notes):
        with open(notes) as f:
            w(f.read().rstrip())
        w("")
    with open(out_md, "w") as f:
        f.write("\n".join(L) + "\n")
    print(out_md)


if __name__ == "__main__":
    main()
