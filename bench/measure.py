"""Run one command and measure it as an operator's `time` would, plus peak memory.

CPU comes from `wait4` (user + system of the process and every descendant it reaped),
so worker processes and Ansible's forks are counted. Peak RSS is sampled over the whole
process tree (sum of RSS), because a tool that forks 50 workers uses 50 processes' memory.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil


@dataclass
class Measured:
    """One command's cost."""

    argv: list[str]
    returncode: int
    wall_s: float
    cpu_s: float  # user + sys, children included
    peak_rss_mb: float  # sampled sum over the process tree
    maxrss_mb: float  # wait4 ru_maxrss (includes the bench's own pre-exec size: information only)
    stdout_path: str
    stderr_tail: str = ""
    timed_out: bool = False
    extra: dict[str, float] = field(default_factory=dict)


def tree_pids(pid: int) -> list[int]:
    """`pid` and its live descendants, from the kernel's per-thread `children` lists.

    psutil's `children(recursive=True)` reads the parent of every process on the machine: about
    1 ms per call here, 50 times a second while a tool runs, on the same two cores as the tool
    and the lab. The kernel's lists cost a few microseconds per process of the tree itself.
    psutil's walk where the kernel keeps no such lists.
    """
    if not _KERNEL_CHILDREN:
        return _psutil_tree(pid)
    out: list[int] = []
    todo = [pid]
    while todo:
        current = todo.pop()
        try:
            tids = os.listdir(f"/proc/{current}/task")
        except OSError:  # ended since its parent listed it
            continue
        out.append(current)
        for tid in tids:
            try:
                with open(f"/proc/{current}/task/{tid}/children", "rb") as f:
                    todo.extend(int(child) for child in f.read().split())
            except OSError:  # the thread or the process ended meanwhile
                continue
    return out


def _psutil_tree(pid: int) -> list[int]:
    try:
        return [pid, *(child.pid for child in psutil.Process(pid).children(recursive=True))]
    except psutil.Error:
        return []


#: Linux 3.5 and later built with CONFIG_PROC_CHILDREN (the mainstream distributions' kernels).
_KERNEL_CHILDREN = os.path.exists(f"/proc/self/task/{os.getpid()}/children")


def _rss_bytes(pid: int) -> int:
    """Resident set size of one process (0 once it has ended)."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE
    except (OSError, IndexError, ValueError):
        return 0


_PAGE = os.sysconf("SC_PAGE_SIZE")


class _TreeSampler(threading.Thread):
    """Samples the summed RSS of a process tree until stopped."""

    def __init__(self, pid: int, interval: float = 0.02) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.interval = interval
        self.peak = 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            pids = tree_pids(self.pid)
            if not pids:
                break
            self.peak = max(self.peak, sum(_rss_bytes(p) for p in pids))
            self._stop_event.wait(self.interval)

    def stop(self) -> None:
        self._stop_event.set()


def run_measured(
    argv: list[str],
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 600.0,
    out_dir: Path,
    label: str,
) -> Measured:
    """Run `argv` to completion (killed after `timeout`) and return its cost."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stdout_path = out_dir / f"{label}.out"
    stderr_path = out_dir / f"{label}.err"
    with stdout_path.open("wb") as out, stderr_path.open("wb") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env, cwd=cwd)
        sampler = _TreeSampler(proc.pid)
        sampler.start()
        timed_out = False
        killer = threading.Timer(timeout, _kill_tree, args=(proc.pid,))
        killer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            killer.cancel()
        wall = time.perf_counter() - start
        sampler.stop()
        sampler.join()
        proc.returncode = os.waitstatus_to_exitcode(status)
        timed_out = wall >= timeout
    tail = stderr_path.read_text(errors="replace")[-2000:]
    return Measured(
        argv=argv,
        returncode=proc.returncode,
        wall_s=wall,
        cpu_s=usage.ru_utime + usage.ru_stime,
        # Not ru_maxrss: Linux carries the pre-exec high-water mark of the forked parent
        # (this bench process) into it, so every small tool would read as big as the bench.
        peak_rss_mb=sampler.peak / 2**20,
        maxrss_mb=usage.ru_maxrss / 1024,
        stdout_path=str(stdout_path),
        stderr_tail=tail,
        timed_out=timed_out,
    )


def _kill_tree(pid: int) -> None:
    try:
        root = psutil.Process(pid)
        procs = [*root.children(recursive=True), root]
    except psutil.Error:
        return
    for proc in procs:
        try:
            proc.kill()
        except psutil.Error:
            continue


def system_cpu_seconds() -> float:
    """Non-idle CPU seconds of the whole machine so far (every process, ours or not)."""
    times = psutil.cpu_times()
    return float(sum(times) - times.idle - getattr(times, "iowait", 0.0))


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds used so far by a live process and its live descendants (the lab)."""
    total = 0.0
    for child in tree_pids(pid):
        try:
            times = psutil.Process(child).cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


def tree_rss_mb(pid: int) -> float:
    """Current summed RSS of a live process tree, in MiB."""
    return sum(_rss_bytes(child) for child in tree_pids(pid)) / 2**20
