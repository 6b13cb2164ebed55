"""CPU per host of a Kerberos session beside NTLM, against the lab with a real MIT KDC.

    python -m bench.kerberos [--hosts 30] [--out bench/results/kerberos-DATE.json]

One lab process serves `--hosts` domain-joined hosts (each with its own keytab); each client run
is a subprocess measured from outside (user + sys CPU of the process tree), opening one PSRP
session per host in turn, as fleetcheck's psrp transport does with pypsrp:

- `ntlm`: a local account over Negotiate/NTLM (today's default path);
- `kerberos-ccache`: a ticket from `kinit` (one TGS exchange per host with the KDC);
- `kerberos-password`: `password_env` as fleetcheck uses it: one ticket-granting ticket per run
  in a MEMORY: cache (`TicketCache`), then one TGS exchange per host;
- `kerberos-password-per-host`: the password handed to pypsrp per host, as a hand-written loop
  does (an AS exchange, with its password hashing, for every host);
- `baseline`: the same process importing everything and connecting nowhere, subtracted from the
  others so the figure is the cost per host, not the interpreter's start;
- then `fleetcheck run` itself (the whole probe bundle, judging, reports) with NTLM and with
  Kerberos from a ticket cache, on pypsrp and on the native client; there the figure is the
  run's CPU divided by the hosts, start-up included.

The lab's CPU per host (the acceptor's side) is read from its process between runs.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
WORK = REPO / "bench" / "work" / "kerberos"
USER, PASSWORD = "alice", "Alice-Passw0rd!"
LOCAL_USER, LOCAL_PASSWORD = "fleetcheck", "Lab-Passw0rd!"
MODES = ("baseline", "ntlm", "kerberos-ccache", "kerberos-password", "kerberos-password-per-host")
#: `fleetcheck run` itself over the same hosts: (label, psrp client, auth).
RUNS = (
    ("fleetcheck pypsrp ntlm", "pypsrp", "ntlm"),
    ("fleetcheck pypsrp kerberos", "pypsrp", "kerberos"),
    ("fleetcheck native ntlm", "native", "ntlm"),
    ("fleetcheck native kerberos", "native", "kerberos"),
)


# -- the lab process ------------------------------------------------------------------------------
async def _serve(spec: list[dict[str, str]]) -> None:
    from fleetcheck.lab.host import LabHost
    from fleetcheck.lab.hostserver import start_winrm_listener
    from fleetcheck.lab.kdc import DOMAIN, REALM
    from fleetcheck.lab.machine import LabUser, MachineState

    ports: dict[str, int] = {}
    servers = []
    for item in spec:
        machine = MachineState(
            hostname=item["name"].upper(),
            domain=DOMAIN,
            users=[LabUser(name=USER, password=PASSWORD, domain=REALM), LabUser(name=LOCAL_USER, password=LOCAL_PASSWORD)],
        )
        host = LabHost(name=item["name"], machine=machine, kerberos_keytab=item["keytab"])
        server = await start_winrm_listener(host, "127.0.0.1", 0)
        servers.append(server)
        ports[item["name"]] = server.sockets[0].getsockname()[1]
    print(json.dumps(ports), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until the parent closes it


# -- the client process ---------------------------------------------------------------------------
def _client(targets: list[dict[str, Any]], mode: str) -> None:
    from pypsrp.client import Client

    from fleetcheck.transports.kerberos import KerberosOptions, TicketCache, credentials

    tickets = TicketCache()
    ok = 0
    errors: list[str] = []
    for target in targets if mode != "baseline" else []:
        options: dict[str, Any] = {"port": target["port"], "ssl": False, "cert_validation": False, "reconnection_retries": 0}
        if mode == "ntlm":
            options.update(auth="negotiate", username=LOCAL_USER, password=LOCAL_PASSWORD)
        else:
            source = KerberosOptions(principal=f"{USER}@FLEETCHECK.TEST", password=PASSWORD if "password" in mode else None)
            if mode == "kerberos-password":
                source = tickets.resolve(source)
            options.update(auth="kerberos", username=credentials(source), negotiate_hostname_override=target["fqdn"])
        try:
            out, _, had_errors = Client("127.0.0.1", **options).execute_ps("hostname")
            ok += int(not had_errors and str(out) == target["name"].upper())
        except Exception as exc:  # counted and reported, the bench goes on
            errors.append(f"{type(exc).__name__}: {str(exc)[:120]}")
    print(json.dumps({"ok": ok, "errors": errors[:3]}))


def _inventory(path: Path, targets: list[dict[str, Any]], client: str, auth: str) -> Path:
    import yaml

    top: dict[str, Any] = {"transport": "psrp", "scheme": "http", "psrp_client": client, "timeout": 60}
    if auth == "ntlm":
        top.update(auth="negotiate", username=LOCAL_USER, password_env="FC_BENCH_PW")
    else:
        top.update(auth="kerberos")
    hosts = {}
    for t in targets:
        entry: dict[str, Any] = {"address": "127.0.0.1", "port": t["port"]}
        if auth == "kerberos":
            entry["negotiate_hostname_override"] = t["fqdn"]
        hosts[t["name"]] = entry
    path.write_text(yaml.safe_dump({"vars": top, "hosts": hosts}, sort_keys=False))
    return path


# -- the driver -----------------------------------------------------------------------------------
def _lab_cpu(pid: int) -> float:
    import psutil

    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


def _kdc_cpu() -> float:
    """CPU of this process's krb5kdc child (the realm's KDC)."""
    import psutil

    kdcs = [p for p in psutil.Process().children() if p.name() == "krb5kdc"]
    return sum(_lab_cpu(p.pid) for p in kdcs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=30)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)

    import subprocess

    from tabulate import tabulate

    from bench.measure import run_measured
    from fleetcheck.lab.kdc import DOMAIN, LabRealm, RealmUnavailable

    try:
        realm = LabRealm.start()
    except RealmUnavailable as exc:
        print(f"skipped: {exc}")
        return 0
    WORK.mkdir(parents=True, exist_ok=True)
    try:
        realm.add_user(USER, PASSWORD)
        names = [f"krb-{i:04d}" for i in range(1, args.hosts + 1)]
        spec = [{"name": n, "keytab": realm.add_host(f"{n}.{DOMAIN}")} for n in names]
        env = dict(os.environ, **realm.env, PYTHONPATH=str(REPO))
        cache = realm.kinit(USER, PASSWORD, WORK / "alice.ccache")
        lab = subprocess.Popen(
            [sys.executable, "-m", "bench.kerberos", "serve", json.dumps(spec)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, cwd=REPO, text=True,
        )
        assert lab.stdout is not None and lab.stdin is not None
        ports = json.loads(lab.stdout.readline())
        targets = [{"name": n, "port": ports[n], "fqdn": f"{n}.{DOMAIN}"} for n in names]
        (WORK / "targets.json").write_text(json.dumps(targets))
        rows: dict[str, dict[str, Any]] = {}
        for mode in MODES:
            client_env = dict(env, KRB5CCNAME=f"FILE:{cache}" if mode == "kerberos-ccache" else f"FILE:{WORK / 'empty.ccache'}")
            before, kdc_before = _lab_cpu(lab.pid), _kdc_cpu()
            measured = run_measured(
                [sys.executable, "-m", "bench.kerberos", "client", str(WORK / "targets.json"), mode],
                env=client_env, cwd=REPO, out_dir=WORK, label=mode,
            )
            result = json.loads(Path(measured.stdout_path).read_text() or "{}")
            rows[mode] = {"wall_s": measured.wall_s, "cpu_s": measured.cpu_s, "lab_cpu_s": _lab_cpu(lab.pid) - before,
                           "kdc_cpu_s": _kdc_cpu() - kdc_before, **result}
        for label, client, auth in RUNS:
            inv = _inventory(WORK / f"{client}-{auth}.yml", targets, client, auth)
            run_env = dict(env, KRB5CCNAME=f"FILE:{cache}", FC_BENCH_PW=LOCAL_PASSWORD)
            before, kdc_before = _lab_cpu(lab.pid), _kdc_cpu()
            measured = run_measured(
                [sys.executable, "-m", "fleetcheck", "run", str(inv), "--no-history", "--report", f"json:{WORK / (client + auth)}.json"],
                env=run_env, cwd=REPO, out_dir=WORK, label=f"run-{client}-{auth}",
            )
            doc = json.loads((WORK / f"{client}{auth}.json").read_text())
            ok = sum(1 for h in doc["hosts"] if h["status"] in ("compliant", "noncompliant"))
            mechanisms = sorted({str(h.get("auth_mechanism")) for h in doc["hosts"]})
            rows[label] = {"wall_s": measured.wall_s, "cpu_s": measured.cpu_s, "lab_cpu_s": _lab_cpu(lab.pid) - before,
                           "kdc_cpu_s": _kdc_cpu() - kdc_before, "ok": ok, "mechanisms": mechanisms}
        lab.stdin.close()
        lab.wait(timeout=30)
    finally:
        realm.stop()

    base = rows["baseline"]["cpu_s"]
    ntlm_per_host = (rows["ntlm"]["cpu_s"] - base) / args.hosts
    table = []
    for mode in MODES[1:]:
        row = rows[mode]
        per_host = (row["cpu_s"] - base) / args.hosts
        row.update(
            client_cpu_ms_per_host=per_host * 1000,
            lab_cpu_ms_per_host=row["lab_cpu_s"] / args.hosts * 1000,
            kdc_cpu_ms_per_host=row["kdc_cpu_s"] / args.hosts * 1000,
        )
        table.append([mode, f"{row['ok']}/{args.hosts}", f"{row['wall_s']:.2f}", f"{per_host * 1000:.1f}",
                      f"{per_host / ntlm_per_host:.2f}", f"{row['lab_cpu_ms_per_host']:.1f}", f"{row['kdc_cpu_ms_per_host']:.1f}"])
    headers = ["mode", "ok", "wall s", "client CPU ms/host", "vs NTLM", "lab CPU ms/host", "KDC CPU ms/host"]
    print(tabulate(table, headers=headers))
    print()
    runs = []
    for label, _, _auth in RUNS:
        row = rows[label]
        row.update(cpu_ms_per_host=row["cpu_s"] / args.hosts * 1000)
        base_label = label.replace("kerberos", "ntlm")
        ratio = row["cpu_s"] / rows[base_label]["cpu_s"]
        runs.append([label, f"{row['ok']}/{args.hosts}", ",".join(row["mechanisms"]), f"{row['wall_s']:.2f}",
                     f"{row['cpu_ms_per_host']:.1f}", f"{ratio:.2f}", f"{row['lab_cpu_s'] / args.hosts * 1000:.1f}"])
    print(tabulate(runs, headers=["fleetcheck run", "checked", "auth", "wall s", "CPU ms/host", "vs NTLM", "lab CPU ms/host"]))
    print(f"(baseline process start and imports: {base * 1000:.0f} ms CPU, subtracted)")
    out = args.out or RESULTS / f"kerberos-{dt.datetime.now(dt.UTC):%Y%m%d-%H%M%S}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"hosts": args.hosts, "cores": os.cpu_count(), "time": time.time(), "runs": rows}, indent=2))
    print(f"results: {out.relative_to(REPO) if out.is_relative_to(REPO) else out}")
    done = all(rows[m]["ok"] == args.hosts for m in MODES[1:]) and all(rows[r[0]]["ok"] == args.hosts for r in RUNS)
    return 0 if done else 1


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "serve":
        asyncio.run(_serve(json.loads(sys.argv[2])))
    elif len(sys.argv) > 3 and sys.argv[1] == "client":
        _client(json.loads(Path(sys.argv[2]).read_text()), sys.argv[3])
    else:
        sys.exit(main())
