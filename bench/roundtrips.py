#!/usr/bin/env python3
"""Where maestro's time goes on the emulated link: runs maestro's status and no-op start on a
one-ship bed behind the delaying proxy with `--trace`, and prints, per SSH connection, every
wait the client had for the server (a round trip) with its time. Usage (root):

    python3 bench/roundtrips.py [--maestro PATH] [--instances N] [--delay-ms D] [--bed-name NAME] > bench/roundtrips.txt
"""

import argparse
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402


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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--maestro", default=os.path.join(harness.ROOT, "target", "release", "maestro"))
    ap.add_argument("--instances", type=int, default=8)
    ap.add_argument("--delay-ms", type=float, default=25.0)
    ap.add_argument("--bed-name", default="bench-profile", help="test bed's name (unique per run)")
    args = ap.parse_args()
    args.ships, args.reps = 1, 1
    name = args.bed_name
    bed = harness.bed_up(name, 1)
    logdir = os.path.join(harness.HERE, "work", "logs-profile")
    os.makedirs(logdir, exist_ok=True)
    trace = os.path.join(logdir, "trace.txt")
    proxy = None
    try:
        argv = [harness.PROXY, "serve", "--delay-ms", str(args.delay_ms), "--echo", harness.ECHO_ADDR,
                "--map", f"{harness.PROXY_NET}1:{harness.PROXY_PORT}={bed['ships'][0]['ip']}:22"]
        cfg = harness.Config(args, 1, args.instances, bed)
        env = cfg.env("maestro")
        # Everything running first (through an untraced proxy): then status and start are no-ops.
        proxy = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
        proxy.stdout.readline()
        subprocess.run(cfg.argv("maestro", "start"), env=env, capture_output=True, timeout=600)
        proxy.terminate()
        proxy.wait()
        for op in ["status", "noop_start"]:
            if os.path.exists(trace):
                os.remove(trace)
            proxy = subprocess.Popen(argv + ["--trace", trace], stdout=subprocess.PIPE, text=True)
            proxy.stdout.readline()
            rtt = harness.rtt_ms()
            if os.path.exists(trace):
                os.remove(trace)
            proxy.terminate()
            proxy.wait()
            proxy = subprocess.Popen(argv + ["--trace", trace], stdout=subprocess.PIPE, text=True)
            proxy.stdout.readline()
            t0 = time.perf_counter()
            subprocess.run(cfg.argv("maestro", op), env=env, capture_output=True, timeout=600)
            total = (time.perf_counter() - t0) * 1000
            proxy.terminate()
            proxy.wait()
            proxy = None
            print(f"## maestro {op}: {total:.0f} ms in all, round trip {rtt:.1f} ms, "
                  f"bound {harness.lower_bound_s(op, rtt, {'list': 0, 'create': 0, 'start': 0, 'stop': 0, 'restart': 0}) * 1000:.0f} ms "
                  f"({harness.SSH_SETUP_RTTS + harness.API_RTTS[op]} round trips)")
            for c, (dur, rounds) in sorted(turns(trace).items()):
                print(f"connection {c}: open {dur} ms, {len(rounds)} round trips the client waited for")
                for i, (t, sent, got) in enumerate(rounds, 1):
                    print(f"  {i:2}. answer at {t:5} ms ({t / rtt:4.1f} rtt)  client sent {sent:6} B, got {got:6} B")
            print()
    finally:
        if proxy is not None:
            proxy.terminate()
        harness.bed_down(name)


if __name__ == "__main__":
    main()
