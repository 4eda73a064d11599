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
            conns = harness.turns(trace)
            got = sum(len(rounds) for _, rounds in conns.values())
            print(f"## maestro {op}: {total:.0f} ms in all, round trip {rtt:.1f} ms; {got} round trips traced"
                  f" on {len(conns)} connection(s), plus the TCP handshake; the model's API part is"
                  f" counted by the harness (bench/harness.py traced_api_rtts); the fewest the API allows: {harness.API_RTTS[op]}")
            for c, (dur, rounds) in sorted(conns.items()):
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
