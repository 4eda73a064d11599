#!/usr/bin/env python3
"""Drives a program on a pseudo-terminal for the interactive tests of tests/bed/exec.rs.

    pty_drive.py STEPS.json -- PROGRAM ARGS...

STEPS.json is a list of steps, run in order:
  {"size": [rows, cols]}        the window size before the program starts (first step only)
  {"send": "text"}              type text (use "\\r" for Enter, "\\u0003" for Ctrl-C)
  {"expect": "regex"}           wait until the output since the last expect matches
  {"until": "regex", "send": "text"}
                                type text, again after each quiet second, until it matches
  {"resize": [rows, cols]}      change the window size (the kernel and an explicit SIGWINCH
                                tell the program)
  {"signal": "TERM"}            send the program a signal

Prints one JSON object: {"exit": code or null, "output": everything read,
"restored": whether the terminal's settings after the program are those before it,
"failed": the step that did not happen or null}. Every wait is bounded by TIMEOUT seconds:
the Rust test bounds the whole run as well.
"""

import fcntl
import json
import os
import re
import select
import signal
import struct
import sys
import termios
import time

TIMEOUT = 20.0


def set_size(fd, rows, cols):
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def main():
    steps = json.load(open(sys.argv[1]))
    argv = sys.argv[sys.argv.index("--") + 1 :]
    master, slave = os.openpty()
    if steps and "size" in steps[0]:
        set_size(slave, *steps.pop(0)["size"])
    before = termios.tcgetattr(slave)
    pid = os.fork()
    if pid == 0:
        os.close(master)
        os.setsid()
        fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
        for fd in (0, 1, 2):
            os.dup2(slave, fd)
        if slave > 2:
            os.close(slave)
        os.execvp(argv[0], argv)

    output = bytearray()
    seen = 0  # where the next expect starts looking
    status = None

    def pump(wait):
        nonlocal status
        ready, _, _ = select.select([master], [], [], wait)
        if ready:
            try:
                data = os.read(master, 65536)
            except OSError:
                data = b""
            output.extend(data)
            # Answer cursor position queries as a terminal does (busybox's line editor asks
            # before each prompt).
            for _ in range(data.count(b"\x1b[6n")):
                os.write(master, b"\x1b[1;1R")
        if status is None:
            done, code = os.waitpid(pid, os.WNOHANG)
            if done:
                status = code

    def text():
        return output.decode("utf-8", "replace")

    def expect(pattern, resend=None):
        nonlocal seen
        deadline = time.monotonic() + TIMEOUT
        quiet_since = time.monotonic()
        while time.monotonic() < deadline:
            match = re.search(pattern, text()[seen:])
            if match:
                seen += match.end()
                return True
            if status is not None:
                return False
            length = len(output)
            pump(0.1)
            if len(output) != length:
                quiet_since = time.monotonic()
            elif resend is not None and time.monotonic() - quiet_since > 1.0:
                os.write(master, resend.encode())
                quiet_since = time.monotonic()
        return False

    failed = None
    for step in steps:
        if "until" in step:
            os.write(master, step["send"].encode())
            if not expect(step["until"], resend=step["send"]):
                failed = step
                break
        elif "send" in step:
            os.write(master, step["send"].encode())
        elif "expect" in step:
            if not expect(step["expect"]):
                failed = step
                break
        elif "signal" in step:
            os.kill(pid, getattr(signal, "SIG" + step["signal"]))
        elif "resize" in step:
            set_size(master, *step["resize"])
            os.kill(pid, signal.SIGWINCH)

    deadline = time.monotonic() + TIMEOUT
    while status is None and time.monotonic() < deadline:
        pump(0.1)
    if status is None:
        os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        failed = failed or {"exit": "the program did not end"}
    while select.select([master], [], [], 0)[0]:
        try:
            data = os.read(master, 65536)
        except OSError:
            break
        if not data:
            break
        output.extend(data)
    after = termios.tcgetattr(slave)
    code = os.waitstatus_to_exitcode(status)
    print(
        json.dumps(
            {
                "exit": code,
                "output": text(),
                "restored": before == after,
                "failed": failed,
            }
        )
    )


main()
