"""Stopping a Ray cluster that a test or study started on this machine, and nothing else: `ray stop`
would stop every Ray process of the machine, other people's too."""

import os
import signal
import time


def _processes():
    """{pid: (command line, parent pid)} of this machine's processes."""
    out = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read()
            with open(f"/proc/{pid}/stat") as f:
                out[int(pid)] = (cmdline, int(f.read().rsplit(")", 1)[1].split()[1]))
        except (OSError, IndexError, ValueError):
            pass
    return out


def local_processes(ray_tmp):
    """The pids whose command line names `ray_tmp` (Ray's --temp-dir): the daemons of the nodes started with it."""
    return {pid for pid, (cmdline, _) in _processes().items() if ray_tmp.encode() in cmdline}


def with_descendants(pids):
    """`pids` and their descendants (Ray renames some, e.g. ray::DashboardAgent, so their command
    lines no longer show the temp dir; a raylet's workers are its children)."""
    parent = {pid: pp for pid, (_, pp) in _processes().items()}
    mine = set(pids)
    grown = True
    while grown:
        children = {p for p, pp in parent.items() if pp in mine} - mine
        grown = bool(children)
        mine |= children
    mine.discard(os.getpid())
    return mine


def kill(pids, sig=signal.SIGKILL):
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def stop_local_ray(ray_tmp):
    """Stops, by pid, the processes started with `ray_tmp` and their descendants."""
    mine = with_descendants(local_processes(ray_tmp))
    for sig in (signal.SIGTERM, signal.SIGKILL):
        kill(mine, sig)
        time.sleep(2)
