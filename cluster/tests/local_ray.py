"""Stopping a Ray cluster that a test or study started on this machine, and nothing else: `ray stop`
would stop every Ray process of the machine, other people's too."""

import os
import signal
import time


def stop_local_ray(ray_tmp):
    """Stops, by pid, the processes started with `ray_tmp` (Ray's --temp-dir) and their descendants
    (Ray renames some, e.g. ray::DashboardAgent, so their command lines no longer show it)."""
    parent, mine = {}, set()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if ray_tmp.encode() in f.read():
                    mine.add(int(pid))
            with open(f"/proc/{pid}/stat") as f:
                parent[int(pid)] = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            pass
    grown = True
    while grown:
        children = {p for p, pp in parent.items() if pp in mine} - mine
        grown = bool(children)
        mine |= children
    mine.discard(os.getpid())
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in mine:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        time.sleep(2)
