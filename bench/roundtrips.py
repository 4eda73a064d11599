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


def since(trace, offset):
    """turns() of the lines the trace got after byte `offset`: one command's share of
    connections that a background process keeps open."""
    part = trace + ".part"
    seen = set()
    with open(trace) as f, open(part, "w") as out:
        f.seek(offset)
        for line in f:
            c, t, _, _ = line.split()
            if c not in seen:  # turns() takes a connection's first line for its start
                seen.add(c)
                out.write(f"{c} {t} + 0\n")
            out.write(line)
    try:
        return harness.turns(part)
    finally:
        os.remove(part)


def warm(args, argv, cfg, trace):
    """The same two commands with sessions kept (--persist): a background maestro logs in
    once, through the tracing proxy, on an untimed status; each traced command then costs
    only what it asks of the kept session (channels, HTTP), which is what is printed."""
    env = cfg.env("maestro_warm")
    if os.path.exists(trace):
        os.remove(trace)
    proxy = subprocess.Popen(argv + ["--trace", trace], stdout=subprocess.PIPE, text=True)
    try:
        proxy.stdout.readline()
        rtt = harness.rtt_ms()
        subprocess.run(cfg.argv("maestro_warm", "status"), env=env, capture_output=True, timeout=600)
        for op in ["status", "noop_start"]:
            offset = os.path.getsize(trace)
            t0 = time.perf_counter()
            subprocess.run(cfg.argv("maestro_warm", op), env=env, capture_output=True, timeout=600)
            total = (time.perf_counter() - t0) * 1000
            time.sleep(0.5)  # the proxy writes what it read up to now
            conns = since(trace, offset)
            got = sum(len(rounds) for _, rounds in conns.values())
            print(f"## maestro (sessions kept, --persist) {op}: {total:.0f} ms in all, round trip {rtt:.1f} ms;"
                  f" {got} round trips traced on the kept connection, the client's unix socket not counted")
            for c, (dur, rounds) in sorted(conns.items()):
                print(f"connection {c}: {len(rounds)} round trips the background process waited for, "
                      f"times from its first packet of this command")
                for i, (t, sent, got) in enumerate(rounds, 1):
                    print(f"  {i:2}. answer at {t:5} ms ({t / rtt:4.1f} rtt)  sent {sent:6} B, got {got:6} B")
            print()
    finally:
        subprocess.run([cfg.args.maestro, "persist", "stop"], env=env, capture_output=True, timeout=60)
        proxy.terminate()
        proxy.wait()


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
        warm(args, argv, cfg, trace)
    finally:
        if proxy is not None:
            proxy.terminate()
        harness.bed_down(name)


if __name__ == "__main__":
    main()
