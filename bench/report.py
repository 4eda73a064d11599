#!/usr/bin/env python3
"""Writes docs/benchmarks.md from bench/results.json (and draws the charts with bench's
`chart` binary). Every number in the document comes from the JSON; the prose around them is
here, so that a re-run rewrites the whole page consistently."""

import datetime as dt
import json
import os
import re
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
TOOLS = ["maestro", "maestro_warm", "maestrong", "maestrong_tunnel", "docker", "docker_cm", "compose", "compose_cm"]
FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
# The harness's LOAD_LIMIT: rows whose 1-minute load per CPU before them was above it.
LOAD_LIMIT = 1.5


def fmt_s(v):
    if v is None:
        return "—"
    return f"{v:.2f} s" if v < 10 else f"{v:.1f} s"


def fmt_x(v):
    if v is None:
        return "—"
    # Near a tie, one decimal would hide which side of it a ratio is on (0.95 is not 1.0).
    if 0.9 <= v <= 1.1:
        return f"{v:.2f}×"
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
    v = [o["peak_kib"] for o in ops.values() if isinstance(o, dict) and o.get("peak_kib")]
    return max(v) / 1024 if v else None


def fmt_mib(v):
    return "—" if v is None else f"{v:.1f} MiB"


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
    w("| shape | K | " + " | ".join(label for _, label in SCALE_OPS) + " | peak memory |")
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
            w(f"| {shape} | {kk} | " + " | ".join(cells) + f" | {fmt_mib(peak_rss_mib(r))} |")
        if b and big and "error" not in b.get("ops", {}) and "error" not in big.get("ops", {}) and k != base:
            ratios = [fmt_x(med(big, op) / med(b, op)) if med(b, op) else "—" for op, _ in SCALE_OPS]
            rb, rk = peak_rss_mib(b), peak_rss_mib(big)
            w(f"| **{shape}, K={k} / K={base}** | | " + " | ".join(f"**{x}**" for x in ratios)
              + f" | **{fmt_x(rk / rb) if rb else '—'}** |")
            st = med(big, "status") / med(b, "status")
            rb_, rk_ = runs_of(b, "status"), runs_of(big, "status")
            ok = (verdict(max(rk_) / min(rb_), min(rk_) / max(rb_), 1.5)
                  if cell_ok(big, "status") and cell_ok(b, "status") and rb_ and rk_ else "**missed** (a check failed)")
            targets.append((shape, st, ok))
    w("")
    if targets:
        w(f"Read against the spread: met when even the slowest K={k} round over the fastest K={base} round"
          " meets it, missed when even the fastest over the slowest does not, otherwise within the noise.")
        w("")
        w("| target | measured | |")
        w("|---|---|---|")
        for shape, st, ok in targets:
            w(f"| `status` at K={k} at most 1.5× `status` at K={base}, {shape} | {st:.2f}× | {ok} |")
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
    under = under_model(rows, data.get("api_rtts", {}), lambda r: f"{r['shape']} K={r['ships']}")
    if under:
        w("Cells of the scale rows under their model bound (same model as the side-by-side table, the"
          " bastion's login charged as well behind it):")
        w("")
        for u in under:
            w(f"- {u}")
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


def push_section(data, w):
    """The push rows (harness --push): maestro push against docker save | gzip | ssh docker load."""
    pu = data.get("push") or {}
    w("## Images without a registry: `maestro push` against `docker save | gzip | ssh docker load`")
    w("")
    if not pu.get("rows"):
        w("**Pending**" + (f" (the last run failed: {pu['error']})" if pu.get("error") else "")
          + ": run `sudo ./bench.sh --push-only` (it keeps every other row of `bench/results.json`).")
        w("")
        return
    w(f"An image built on this machine's daemon (the bed's busybox image, a {pu['base_mib']} MiB layer of random"
      f" bytes, a {pu['small_kib']} KiB layer) put on K={pu['ships']} ships, each behind the delaying proxy"
      f" ({pu['delay_ms']:g} ms each way, round trip {pu.get('rtt_ms', 0):.1f} ms), median of {pu['reps']} rounds."
      " *first*: onto ships that have neither layer; *second*: after a change of the small layer only."
      " Bytes are those that reached each ship's sshd (an iptables counter on port 22 in the ship's"
      " namespace), not the tool's own report. `maestro push` serves a registry through each ship's SSH"
      " session and the ship's daemon pulls only the layers it lacks; the docker CLI pipeline sends the"
      " whole image every time, four pipelines at once.")
    w("")
    w("| tool, push | median | bytes into each ship's sshd (median) |")
    w("|---|---|---|")
    for label, row in pu["rows"].items():
        b = row.get("median_bytes_per_ship")
        w(f"| {label}{'' if row.get('ok') else ' ✗'} | {fmt_s(row.get('median_s'))}"
          f" | {'—' if b is None else f'{b / 1024 / 1024:.1f} MiB'} |")
    w("")
    rows = pu["rows"]
    m2, d2 = rows.get("maestro push, second"), rows.get("docker save | gzip | ssh docker load, second")
    if m2 and d2 and m2.get("median_bytes_per_ship") and d2.get("median_bytes_per_ship"):
        w(f"On the second push maestro sends {d2['median_bytes_per_ship'] / m2['median_bytes_per_ship']:.0f}× fewer"
          f" bytes and takes {d2['median_s'] / m2['median_s']:.1f}× less time than the pipeline.")
        w("")


def minutes(a, b):
    """Whole minutes between two of the harness's UTC stamps, or None."""
    try:
        f = "%Y-%m-%dT%H:%M:%SZ"
        return round((dt.datetime.strptime(b, f) - dt.datetime.strptime(a, f)).total_seconds() / 60)
    except (TypeError, ValueError):
        return None


def verdict(worst, best, target, higher_is_better=False):
    """A target read against the spread: met when even the worst reading meets it, missed when
    even the best one does not, and otherwise within the noise (which is not met)."""
    if higher_is_better:
        worst, best = -worst, -best
        target = -target
    if worst <= target:
        return "met"
    if best > target:
        return "**missed**"
    return "**within the noise** (not met)"


def runs_of(r, op):
    o = r.get("ops", {}).get(op)
    return o.get("runs") or [] if isinstance(o, dict) else []


def ratio_cell(r, op):
    """Median over the model's bound on the smallest floor sample, and the range from the
    largest floor sample's bound; ✗ for a wrong run."""
    m, lo, hi = med(r, op), r["bound_s"][op], r.get("bound_hi_s", r["bound_s"])[op]
    if m is None or r.get("model_broken"):
        return "—"
    if not cell_ok(r, op):
        return "✗"  # a wrong run has no speed
    text = fmt_x(m / lo)
    if abs(hi - lo) / lo >= 0.005:
        text += f" <sub>({fmt_x(m / hi)}–{fmt_x(m / lo)})</sub>"
    return text + ("" if cell_ok(r, op) else " ✗")


def head_sentence(head):
    if not isinstance(head, dict):
        return " Which checkout it ran from was not recorded."
    mod = " with its sources modified" if head.get("sources_modified") else ""
    return (f" The binary was built by the run itself from the checkout of `{head.get('branch')}` at"
            f" `{head.get('commit')}`{mod}, its head when the run began.")


def why_under(r, op, minimum):
    """Why a cell came in under its model bound, from what the bound was built on."""
    d = r.get("daemon_ms") or {}
    levels = 4
    own = {
        "status": d.get("list", 0),
        "noop_start": d.get("list", 0),
        "start": d.get("list", 0) + levels * (d.get("create", 0) + d.get("start", 0)),
        "stop": d.get("list", 0) + levels * d.get("stop", 0),
        "restart": d.get("list", 0) + d.get("restart", 0),
    }[op]
    floor_ms = 1000 * (r.get("floor_s") or {}).get(op, 0)
    if op in ("start", "stop", "restart") and floor_ms > own:
        return ("its bound rests on the machine's floor, measured by the harness's Python client (a thread"
                " per container), which is slower at this than the tool: the start, stop and restart"
                " bounds are loose")
    return ("a round trip the model charges overlaps another in the tool (the trace counts every wait"
            " one after the other)")


def under_model(rows, minimum, label_of):
    """[(text)]: every cell of rows that came in under its bound, each with its reason."""
    out = []
    for r in rows:
        if r.get("model_broken") or "bound_s" not in r:
            continue
        for op, label in OPS:
            m = med(r, op)
            if m and cell_ok(r, op) and m < r["bound_s"][op]:
                out.append(f"{label_of(r)}, {label} ({fmt_x(m / r['bound_s'][op])}): {why_under(r, op, minimum)}")
    return out


NOTE_FIGURE = re.compile(r"\d+(\.\d+)?\s?(ms|s|×|x|%|MiB|KiB|GB|minutes?)\b")


def main():
    results_path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "results.json")
    out_md = sys.argv[2] if len(sys.argv) > 2 else os.path.join(ROOT, "docs", "benchmarks.md")
    with open(results_path) as f:
        data = json.load(f)
    notes_path = os.path.join(HERE, "NOTES.md")
    notes = open(notes_path).read() if os.path.exists(notes_path) else ""
    # Every figure on the page comes from the JSON: the hand-written notes may explain, not measure.
    for i, line in enumerate(notes.splitlines(), 1):
        if NOTE_FIGURE.search(line):
            raise SystemExit(f"{notes_path}:{i}: a measured figure in the hand-written notes"
                             f" ({NOTE_FIGURE.search(line).group(0)!r}); put it in results.json and the report")
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
    versions = data.get("versions", {})
    L = []
    w = L.append

    w("# Benchmarks: maestro against the tools it replaces")
    w("")
    w("*This page is written by `./bench.sh` (bench/report.py) from `bench/results.json`;"
      " do not edit the numbers by hand. Every figure on it is read from that file, which records"
      f" the commits it measured: maestro `{versions.get('maestro_commit', '?')}` (the last commit that"
      f" changed its sources), harness `{versions.get('harness_commit', '?')}`."
      + head_sentence(versions.get("head")) + "*")
    w("")
    w("## How to run")
    w("")
    w("```sh")
    w("sudo ./bench.sh                      # everything: every tool at K=4 N=40, maestro over the grid")
    w("sudo ./bench.sh --scale 100          # the same, then the scale rows (maestro, K=4 and 100, N=200)")
    w("sudo ./bench.sh --tools maestro --merge   # refresh only maestro's rows, keep the peers'")
    w("sudo ./bench.sh --scale-only         # only the scale rows, keep the rest")
    w("sudo ./bench.sh --help               # options: --delay-ms, --reps, --ships, --instances, --grid")
    w("sudo ./bench.sh --proxy-port 2222    # if this machine's own sshd holds 0.0.0.0:22")
    w("sudo python3 bench/roundtrips.py > bench/roundtrips.txt   # maestro's round-trip profile")
    w("python3 bench/harness.py --selftest BED_JSON   # the harness's checks against broken tools (./test.sh runs it)")
    w("```")
    w("")
    took = minutes(data.get("started"), data.get("finished"))
    walls = {r["label"]: r.get("wall_s") for r in at_default.values() if r.get("wall_s")}
    grid_wall = sum(r.get("wall_s") or 0 for r in runs if (r["ships"], r["instances"]) != (k, n))
    sc = data.get("scale") or {}
    scale_took = minutes(sc.get("started"), sc.get("finished"))
    if took is not None:
        w(f"The committed run took {took} minutes on its {data.get('host', {}).get('nproc')}-CPU machine"
          + (f" (at K={k} N={n}: " + ", ".join(f"{t} {v / 60:.0f} min" for t, v in walls.items()) + ")"
             if walls else "")
          + (f"; maestro's grid {grid_wall / 60:.0f} min" if grid_wall else "")
          + (f"; the scale rows {scale_took} min more" if scale_took is not None else "")
          + ". Each includes its checks and the machine's floor samples.")
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
      " again (no-op), `status`, `restart` of service `web` (nothing depends on it), `stop` of everything."
      " Before each round every container is removed.")
    w("- **Checks, after every timed command, untimed, the same for every tool** (bench/harness.py"
      " `check`). A command that fails any of them is ✗, whatever its time, and the reason is listed under"
      " the table:")
    w("  - every instance exists **on its own ship**, running (exited after `stop`);")
    w("  - `start`: every dependency level **started after every container of the level it needs**"
      " (Docker's `StartedAt`); `stop`: every level stopped only after the level that needs it had"
      " (`FinishedAt`);")
    w("  - `restart`: every `web` container's `StartedAt` moved, and **no other container changed**;")
    w("  - no-op `start`: **no container changed** (same id, same `StartedAt`);")
    w("  - `status`: before it, the harness stops one `app` instance behind the tool's back; the tool's"
      " output must report **each instance as Docker does** (that one down, every other running). A"
      " status may exit 1 for \"not everything runs\" (maestro's health gate does).")
    w("  - The harness's test (`--selftest`, run by `./test.sh`) feeds it broken tools (one that skips the"
      " restart, puts a container on the wrong ship, starts or stops levels out of order, restarts"
      " everything on a no-op, prints a status that always says \"Up\") and fails unless each one is"
      " marked ✗ on the operation it breaks.")
    reps_tunnel = data.get("reps_tunnel")
    w(f"- **Rounds.** Median of {data['reps']} rounds (docker-compose: {data.get('reps_compose', 1)}, it is slow;"
      + (f" MaestroNG's own `ssh_tunnel`: {reps_tunnel};" if reps_tunnel else "")
      + f" maestro's other grid points: {data.get('grid_reps', data['reps'])}).")
    w("- **Peers, as their users run them at their best.**")
    w("  - MaestroNG 0.8.3 (PyPI, docker-py 1.10.6, `requests<2.29`, `urllib3<2`) two ways: through one"
      " `ssh -N -L port:/docker.sock` per ship, opened once before timing and kept open (setup time"
      " reported apart, not counted), and with its own `ssh_tunnel` setting (bgtunnel: an `ssh -L` to the"
      " ship's Docker TCP port opened by every command), each command limited to"
      f" {data.get('tunnel_timeout_s', 180)} s with its log kept.")
    w("  - docker CLI with `-H ssh://root@shipN`: a script that runs the levels in order and, within a level,"
      " everything at once: one `docker run -d`, `docker start` or `docker restart` per container in the"
      " background (the CLI's own `start a b c` and `restart a b c` work on one container after another);"
      " for stop one command per ship and level with all the names (the CLI's stop alone works on them"
      " in parallel)."
      " Without, and with an OpenSSH ControlMaster (`ControlMaster auto`, `ControlPersist 600`; masters"
      " opened before timing, as a user's earlier command would have).")
    w("  - docker-compose 1.29 (Debian), one file per ship (`network_mode: bridge`, `depends_on` within"
      " the ship), without and with the same ControlMaster. Compose cannot express a dependency on"
      " another ship, so the script runs `up -d --no-deps <instances of the level>` per level, ships in"
      " parallel.")
    w("- **maestro, sessions kept** (`--persist`, issue 27): the same commands with `MAESTRO_PERSIST=10m`, after"
      " one untimed `status` that starts the background maestro and logs in to every ship through the"
      " same proxy, as an operator's earlier command would; its channels are opened ahead of each command,"
      " so the model charges it no SSH round trip (\"kept\"). Cold rows are plain `maestro`.")
    w("- **maestro** as `maestro -f maestro.yaml --plain start|status|restart -s web|stop -a`, release build;"
      " peak memory is each command's own, with whatever it starts: it runs in a memory cgroup of its own"
      f" ({data.get('mem_source') or 'none on this machine: no figure'}), since `ru_maxrss` from `wait4`"
      " keeps the high-water mark of the harness that forked it (the harness's self-test checks that a"
      " command holding 50 MiB reads 50).")
    w("")
    w("### The model: what a tool must pay on this link and these daemons")
    w("")
    tr = (any_row or {}).get("traced_rtts") or {}
    login = (any_row or {}).get("setup_rtts") if any_row and any_row["tool"] == "maestro" else tr.get("login")
    w("A model, not a physical limit: it counts the round trips a tool cannot avoid and adds the daemons'"
      " own work, both measured on this run's bed. A tool can come in under it: the floor is measured by"
      " the harness's own Python client (a thread per container), whose overhead is part of the floor,"
      " and a round trip the model charges may overlap another in a tool. Such a ratio under 1.0× is"
      " shown as it is.")
    under = under_model(runs, data.get("api_rtts", {}), lambda r: f"{r['label']} at K={r['ships']} N={r['instances']}")
    if under:
        w(" In this run (the scale rows' are listed in their section):")
        w("")
        for u in under:
            w(f"- {u}")
    loaded = [r for r in runs + ((data.get("scale") or {}).get("rows") or [])
              if (r.get("load_before") or 0) > LOAD_LIMIT]
    for r in loaded:
        w(f"- **Measured on a loaded machine**: {r.get('label', r['tool'])} at K={r['ships']} N={r['instances']}"
          f"{' (' + r['shape'] + ')' if r.get('shape') else ''}: load {r['load_before']} per CPU before it,"
          f" over {LOAD_LIMIT} after waiting for it to settle; read it with care.")
    broken = [r for r in runs + ((data.get("scale") or {}).get("rows") or []) if r.get("model_broken")]
    for r in broken:
        w(f"- **No model** for {r.get('label', r['tool'])} at K={r['ships']} N={r['instances']}: {r['model_broken']}"
          " (a trace that failed; its ratios are left out).")
    w("")
    w(f"- **SSH, counted from a trace.** The harness puts a tracing proxy in front of one ship and counts every"
      f" wait of the client for the server on the connection (bench/harness.py `traced_login_rtts`). From a TCP"
      f" connect to an open channel on the Docker socket: maestro (russh)"
      f" {tr.get('maestro', '?')} round trips, OpenSSH {tr.get('openssh', '?')}, the TCP handshake included."
      f" The model charges a tool that logs in on every command the smaller, **{tr.get('login', '?')}**."
      f" A tool that rides an SSH session opened before timing (MaestroNG's kept tunnels, a ControlMaster)"
      f" is charged one channel open, **{data.get('channel_rtts', 1)}**.")
    w("- **Docker API**: the fewest round trips the API allows on an open channel, all ships in parallel"
      " (a list of containers, then per dependency level create and start, or one stop or restart),"
      " checked against a trace: maestro's own commands on the traced ship, one instance per level"
      " (bench/harness.py `traced_api_rtts`, every wait of the client less its login's). The model"
      " charges the smaller of the two; where maestro's count is larger, the difference is what its"
      " protocol adds (the deploy lock, a wait for each container to run), which the ratio then shows.")
    w("- **The daemons' own work** along the longest chain (create, start, stop, restart, list: timed on a"
      " ship's local socket, no proxy), or, where longer, **the machine's floor**: the same environment's"
      " daemon work with no tool and no network (every container of a level at once, a thread each, on the"
      " ships' local sockets, levels in order; restart: every `web` at once; stop: levels in reverse). The"
      " ships share this machine's CPUs, so the floor is what limits `start` here. It is sampled before"
      " every tool's first round (and at least three times per configuration); the model uses the smallest"
      " sample, and the ratios show in small type the range up to the largest.")
    w("")
    w("| operation | Docker API round trips | daemon work added |")
    w("|---|---|---|")
    own = {
        "status": "one list",
        "noop_start": "one list",
        "start": "list + 4 × (create + start), or the machine's floor",
        "stop": "list + 4 × stop, or the machine's floor",
        "restart": "list + restart, or the machine's floor",
    }
    traced = ((any_row or {}).get("traced_rtts") or {}).get("api") or {}
    charged = (any_row or {}).get("api_rtts") or data["api_rtts"]
    for op, label in OPS:
        w(f"| {label} | {charged.get(op, data['api_rtts'][op])} (fewest the API allows {data['api_rtts'][op]};"
          f" maestro's, traced: {traced.get(op, 'not traced')}) | {own[op]} |")
    w("")
    if any_row:
        fl = any_row.get("floor_samples") or []
        w(f"Measured at K={k}, N={n}: round trip **{any_row['rtt_ms']:.1f} ms**, daemon (ms): "
          + ", ".join(f"{a} {b:g}" for a, b in any_row["daemon_ms"].items()) + "."
          + (f" The machine's floor, {len(fl)} samples (s): "
             + "; ".join(f"{op} {min(x[op] for x in fl):g}–{max(x[op] for x in fl):g}"
                         f" (spread {100 * (max(x[op] for x in fl) / min(x[op] for x in fl) - 1):.0f}%)"
                         for op in fl[0]) + "." if fl else ""))
    w("")
    host = data.get("host", {})
    w(f"**Machine.** {host.get('nproc')} CPUs shared with other work; load average at the start"
      f" {', '.join(f'{x:.1f}' for x in host.get('loadavg_at_start', []))}. The ships' dockerd and sshd run"
      " on the same CPUs as the tools, so local CPU (OpenSSH's key exchange, Python start-up, container"
      " creation) shows in every number; compare tools within one run. Versions: "
      + "; ".join(f"{t}: `{v}`" for t, v in versions.items() if t != "head") + ".")
    w("")
    w(f"Run {data.get('started', '?')} – {data.get('finished', 'unfinished')}.")
    w("")

    w(f"## Side by side: K={k} ships, N={n} instances, one-way delay {data['delay_ms']:g} ms")
    w("")
    if charts_ok:
        w("![every tool, every operation](benchmarks-tools.png)")
        w("")
    w("Median seconds (✗: a check failed, see below; SSH logins counted in the ships' sshd logs, per command):")
    w("")
    w("| tool | " + " | ".join(label for _, label in OPS) + " |")
    w("|---|" + "---|" * len(OPS))
    wrong = []
    for tool in TOOLS:
        r = at_default.get(tool)
        if r is None:
            continue
        if "error" in r.get("ops", {}):
            w(f"| {r['label']} | failed: {r['ops']['error']} |" + " |" * (len(OPS) - 1))
            continue
        cells = []
        for op, label in OPS:
            o = r["ops"][op]
            if o.get("median_s") is None:
                cells.append("not run ✗")
            elif -9 in (o.get("exit") or []):
                cells.append(f"killed at {fmt_s(max(o['runs']))} ✗")
            else:
                logins = statistics.median(o.get("ssh_logins") or [0])
                cells.append(f"{fmt_s(o['median_s'])}{'' if o['ok'] else ' ✗'} <sub>{logins:g} ssh</sub>")
            if not o.get("ok", False):
                wrong.append((r["label"], label, o.get("bad") or []))
        w(f"| {r['label']} | " + " | ".join(cells) + " |")
    w("")
    if wrong:
        w("Why each ✗ (the first problems the checks found):")
        w("")
        for label, op, bad in wrong:
            w(f"- {label}, {op}: {'; '.join(bad[:3]) or 'wrong'}")
        w("")
    w("Ratio to each tool's model bound (a login or a kept channel, see above; in small type the range over"
      " the floor's samples):")
    w("")
    w("| tool | SSH charged | " + " | ".join(label for _, label in OPS) + " |")
    w("|---|---|" + "---|" * len(OPS))
    for tool in TOOLS:
        r = at_default.get(tool)
        if r is None or "error" in r.get("ops", {}):
            continue
        w(f"| {r['label']} | {r.get('setup_rtts', '?')} | " + " | ".join(ratio_cell(r, op) for op, _ in OPS) + " |")
    w("")
    if maestro and "error" not in maestro.get("ops", {}):
        w("Ratio to maestro (how many times slower than maestro each peer is):")
        w("")
        w("| tool | " + " | ".join(label for _, label in OPS) + " |")
        w("|---|" + "---|" * len(OPS))
        for tool in TOOLS[1:]:
            r = at_default.get(tool)
            if r is None or "error" in r.get("ops", {}):
                continue
            cells = []
            for op, _ in OPS:
                a, b = med(r, op), med(maestro, op)
                cells.append("—" if a is None or not b else fmt_x(a / b) if cell_ok(r, op) else "✗")
            w(f"| {r['label']} | " + " | ".join(cells) + " |")
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
    hung = [(r["label"], r["ops"]["_hung"]) for r in at_default.values() if r.get("ops", {}).get("_hung")]
    for label, why in hung:
        w(f"{label}: {why}; the rest of its run was skipped.")
        w("")

    w("## Targets")
    w("")
    w("Read against the spread: **met** when even maestro's slowest round meets the target against the"
      " model on the floor's smallest sample; **missed** when even its fastest round against the largest"
      " sample does not; otherwise **within the noise**, which is not met.")
    w("")
    if maestro and "error" not in maestro.get("ops", {}):
        b, bh = maestro["bound_s"], maestro.get("bound_hi_s", maestro["bound_s"])
        targets = []

        def against(op, target, label):
            rs = runs_of(maestro, op)
            if not rs or not cell_ok(maestro, op):
                targets.append((label, "✗ (a check failed)", "**missed**"))
                return
            worst, best = max(rs) / b[op], min(rs) / bh[op]
            targets.append((label, f"{med(maestro, op) / b[op]:.2f}× (rounds {best:.2f}–{worst:.2f}×)",
                            verdict(worst, best, target)))

        against("status", 1.5, "`status` within 1.5× of the model")
        against("start", 1.3, "`start` from nothing within 1.3× of the model's critical path")
        against("noop_start", 2.0, "no-op `start` within 2× of the model, touching nothing")
        def faster_than(peer, ours, factor, label):
            """`status` of `ours` at least `factor` times faster than the peer's, read on rounds."""
            p = at_default.get(peer)
            if p and runs_of(p, "status") and runs_of(ours, "status"):
                worst = min(runs_of(p, "status")) / max(runs_of(ours, "status"))
                best = max(runs_of(p, "status")) / min(runs_of(ours, "status"))
                targets.append((f"{label} ≥ {factor}× faster than {p['label']}",
                                f"{med(p, 'status') / med(ours, 'status'):.1f}× (rounds {worst:.1f}–{best:.1f}×)",
                                verdict(worst, best, factor, higher_is_better=True)))

        for peer in ("maestrong", "docker"):
            faster_than(peer, maestro, 10, "`status`")
        warm = at_default.get("maestro_warm")
        if warm and "error" not in warm.get("ops", {}):
            rtt, d = warm["rtt_ms"], warm["daemon_ms"]
            # Issue 27's targets: warm status within 2 round trips plus the daemon's list, and 4x
            # MaestroNG with kept tunnels; a warm no-op start within 4 round trips plus the
            # daemon's own work: its list, and the lock's create and removal, on every ship at
            # once (`lock_times`; older runs measured only one create, on one ship).
            lock = d.get("lock_create", d["create"]) + d.get("lock_remove", 0.0)
            for op, trips, own, label in [
                ("status", 2, d["list"], "warm `status` within 2 round trips + the daemon's list"),
                ("noop_start", 4, d["list"] + lock,
                 "warm no-op `start` within 4 round trips + the daemon's list and the lock's create and removal"),
            ]:
                limit = (trips * rtt + own) / 1000
                rs = runs_of(warm, op)
                if rs and cell_ok(warm, op):
                    targets.append((label, f"{med(warm, op):.3f} s against {limit:.3f} s"
                                    f" (rounds {min(rs):.3f}–{max(rs):.3f} s)",
                                    verdict(max(rs) / limit, min(rs) / limit, 1.0)))
                else:
                    targets.append((label, "✗ (a check failed)", "**missed**"))
            faster_than("maestrong", warm, 4, "warm `status`")
        big = [r for r in runs if r["tool"] == "maestro" and r["ships"] == 16 and r["instances"] == 200]
        if big:
            rss = peak_rss_mib(big[0])
            targets.append(("peak memory under 50 MiB at K=16, N=200", fmt_mib(rss),
                            "no figure" if rss is None else "met" if rss < 50 else "**missed**"))
        w("| target | measured | |")
        w("|---|---|---|")
        for t, v, ok in targets:
            w(f"| {t} | {v} | {ok} |")
    else:
        w("maestro's rows are **pending**.")
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
        w("| tool | K | N | " + " | ".join(label for _, label in OPS) + " | peak memory |")
        w("|---|---|---|" + "---|" * len(OPS) + "---|")
        for r in grid + others:
            if "error" in r.get("ops", {}):
                w(f"| {r['label']} | {r['ships']} | {r['instances']} | failed: {r['ops']['error']} |")
                continue
            cells = [f"{fmt_s(med(r, op))}{'' if cell_ok(r, op) else ' ✗'} ({fmt_x(med(r, op) / r['bound_s'][op])} m)"
                     if med(r, op) is not None else "—" for op, _ in OPS]
            w(f"| {r['label']} | {r['ships']} | {r['instances']} | " + " | ".join(cells) + f" | {fmt_mib(peak_rss_mib(r))} |")
        w("")
        w("(*x× m*: ratio to that configuration's model bound on its smallest floor sample.)")
    w("")
    scale_section(data, w)
    push_section(data, w)
    if notes:
        w(notes.rstrip())
        w("")
    with open(out_md, "w") as f:
        f.write("\n".join(L) + "\n")
    print(out_md)


if __name__ == "__main__":
    main()
