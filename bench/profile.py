"""Where fleetcheck's CPU goes per host: py-spy over a real `fleetcheck run` on the lab.

    python -m bench.profile [--hosts 200] [--forks 50] [--latency-ms 50] [--top 20]

py-spy (from the peers' venv, never the project's) samples the run and every child
process (`--subprocesses`), only threads holding the GIL (`--gil`), so the samples are
Python CPU. The samples are grouped by the package of the innermost frame (self time)
and by every package on the stack (inclusive time), and scaled to milliseconds per host
with the run's measured CPU time.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from pathlib import Path

from bench import ideal
from bench.lab import LabProcess, write_subset
from bench.measure import run_measured
from bench.peers import PEERS_VENV, ensure_peers_venv
from bench.run import compile_tree

REPO = Path(__file__).resolve().parents[1]
WORK = REPO / "bench" / "work" / "profile"

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^():]*?)(?::(?P<line>\d+))?\)$")


def package_of(path: str) -> str:
    """`.../site-packages/pypsrp/wsman.py` -> `pypsrp`; stdlib `.../asyncio/x.py` -> `asyncio`."""
    if "site-packages/" in path:
        rest = path.split("site-packages/", 1)[1]
        return rest.split("/", 1)[0].removesuffix(".py")
    if "/fleetcheck/" in path:
        return "fleetcheck"
    if path.startswith("<frozen importlib"):
        return "import system"
    if path.startswith("<frozen "):
        return path.removeprefix("<frozen ").rstrip(">").split(".")[0]
    if not path.startswith("/"):  # py-spy's short file names: `pypsrp/wsman.py`, `json/decoder.py`
        return path.split("/", 1)[0].removesuffix(".py")
    parts = path.split("/")
    if len(parts) >= 2 and re.match(r"python3\.\d+", parts[-2]):
        return parts[-1].removesuffix(".py")
    if len(parts) >= 2:
        for i, part in enumerate(parts):
            if re.match(r"python3\.\d+", part) and i + 1 < len(parts):
                return parts[i + 1].removesuffix(".py")
    return path or "?"


def parse_raw(text: str) -> list[tuple[list[tuple[str, str]], int]]:
    """py-spy's raw (collapsed) format: `frame;frame;... count`, root first."""
    stacks: list[tuple[list[tuple[str, str]], int]] = []
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames: list[tuple[str, str]] = []
        for raw in stack.split(";"):
            match = _FRAME.match(raw.strip())
            if match:
                frames.append((match["func"], match["file"]))
            else:
                frames.append((raw.strip(), ""))
        stacks.append((frames, int(count)))
    return stacks


def summarise(stacks: list[tuple[list[tuple[str, str]], int]]) -> tuple[Counter[str], Counter[str], Counter[str], int]:
    """(self samples per package, inclusive samples per package, self samples per function, total)."""
    self_pkg: Counter[str] = Counter()
    incl_pkg: Counter[str] = Counter()
    self_fn: Counter[str] = Counter()
    total = 0
    for frames, count in stacks:
        real = [f for f in frames if f[1]]
        if not real:
            continue
        total += count
        func, file = real[-1]
        self_pkg[package_of(file)] += count
        self_fn[f"{func} ({package_of(file)}/{Path(file).name})"] += count
        for pkg in {package_of(f) for _, f in real}:
            incl_pkg[pkg] += count
    return self_pkg, incl_pkg, self_fn, total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hosts", type=int, default=200)
    parser.add_argument("--forks", type=int, default=50)
    parser.add_argument("--latency-ms", type=float, default=50)
    parser.add_argument("--rate", type=int, default=250)
    parser.add_argument("--top", type=int, default=20)
    parser.add_argument("--psrp-client", default="", help="pypsrp or native (fleetcheck's own default when empty)")
    parser.add_argument("--raw", default="", help="summarise an existing py-spy raw file instead of running")
    opts = parser.parse_args(argv)

    if opts.raw:
        raw_text = Path(opts.raw).read_text()
        cpu_s = 0.0
    else:
        ensure_peers_venv()
        compile_tree()
        WORK.mkdir(parents=True, exist_ok=True)
        out = WORK / f"pyspy-{opts.hosts}-{opts.forks}{'-' + opts.psrp_client if opts.psrp_client else ''}.txt"
        with LabProcess(opts.hosts, WORK, latency_ms=opts.latency_ms) as lab:
            inv = write_subset(WORK / "inv.yml", lab.inventory, opts.hosts)
            argv_run = [sys.executable, "-m", "fleetcheck", "run", str(inv), "--forks", str(opts.forks),
                        "--no-history", "--quiet"]
            if opts.psrp_client:
                argv_run += ["--psrp-client", opts.psrp_client]
            plain = run_measured(argv_run, env=lab.env(), cwd=WORK, out_dir=WORK, label="plain")
            spy = [str(PEERS_VENV / "bin" / "py-spy"), "record", "--subprocesses", "--gil", "--full-filenames", "--nonblocking",
                   "-r", str(opts.rate), "--format", "raw", "-o", str(out), "--", *argv_run]
            run_measured(spy, env=lab.env(), cwd=WORK, out_dir=WORK, label="pyspy")
        raw_text = out.read_text()
        cpu_s = plain.cpu_s
        print(f"fleetcheck run, {opts.hosts} hosts, forks {opts.forks}: wall {plain.wall_s:.2f}s, CPU {cpu_s:.2f}s "
              f"= {ideal.per_host_ms(cpu_s, opts.hosts):.1f} ms/host, peak RSS {plain.peak_rss_mb:.0f} MB")
    self_pkg, incl_pkg, self_fn, total = summarise(parse_raw(raw_text))
    if not total:
        print("no samples")
        return 1
    per_host = (cpu_s * 1000 / opts.hosts) if cpu_s else 0.0

    def line(name: str, n: int) -> str:
        share = n / total
        est = f"  ~{share * per_host:5.2f} ms/host" if per_host else ""
        return f"  {share:6.1%}{est}  {name}"

    print(f"\nself time by package ({total} GIL samples):")
    for name, n in self_pkg.most_common(opts.top):
        print(line(name, n))
    print("\ninclusive time by package (on the stack):")
    for name, n in incl_pkg.most_common(opts.top):
        print(line(name, n))
    print("\nself time by function:")
    for name, n in self_fn.most_common(opts.top):
        print(line(name, n))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
