"""Load on `dhash serve`: POST /search by code over loopback, one client, then many concurrent clients.

Builds an index of ``--n`` codes (``bench_search.make_data``: clustered or uniform random; with
``--milvus`` a Milvus Lite collection instead), starts `dhash serve` on 127.0.0.1 (a free port) in a
subprocess, then sends one-code /search requests with ``k`` from keep-alive HTTP/1.1 connections:
``--single`` requests from 1 client, then ``--requests`` from ``--clients`` concurrent clients
(Python threads, in this process). Each phase stops at its request count or after ``--seconds``,
whichever comes first. Latency is measured by the client (request sent to response read); the
server's own time in the /search handler (``/stats``) is printed below, and the CPU time per
request of the server process and of the client (where the rest of the time goes when the cores
are free). Clients and server share the machine's cores.

Examples:
  .venv/bin/python benchmarks/bench_serve.py                       # 1M x 64 bits, 5,000 requests, 16 clients
  .venv/bin/python benchmarks/bench_serve.py --n 100K --requests 1000 --clients 4
  .venv/bin/python benchmarks/bench_serve.py --n 100K --milvus      # through Milvus Lite
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from bench_search import make_data, parse_n
from dhash.search.codes import CodeFile, write_code_file
from dhash.search.index_file import index_code_file


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(conn: http.client.HTTPConnection, path: str, body: bytes | None = None) -> tuple[int, bytes]:
    conn.request("POST" if body is not None else "GET", path, body=body,
                 headers={"Content-Type": "application/json"} if body is not None else {})
    response = conn.getresponse()
    return response.status, response.read()


DHASH = [sys.executable, "-c", "from dhash.cli.main import main; main()"]


def start_server(source: list[str], port: int) -> subprocess.Popen:
    proc = subprocess.Popen([*DHASH, "serve", *source, "--port", str(port)], stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited: {proc.stderr.read()}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            if request(conn, "/health")[0] == 200:
                return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("server did not start within 300 s")


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) used so far by process ``pid`` (Linux /proc; NaN elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load(port: int, bodies: list[bytes], clients: int, total: int, seconds: float, server_pid: int) -> dict[str, float]:
    """Send ``total`` requests from ``clients`` threads (stopping after ``seconds``): latency, the server's
    time in the handler (each response's ``took_ms``), errors, and the CPU time per request of the
    server process and of this (client) process."""
    latencies: list[list[float]] = [[] for _ in range(clients)]
    handler: list[list[float]] = [[] for _ in range(clients)]
    errors = [0] * clients
    counter = iter(range(total))
    lock = threading.Lock()
    deadline = time.perf_counter() + seconds

    def client(c: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        while time.perf_counter() < deadline:
            with lock:
                n = next(counter, None)
            if n is None:
                break
            t0 = time.perf_counter()
            try:
                status, data = request(conn, "/search", bodies[n % len(bodies)])
                ok = status == 200 and b'"results"' in data
            except (OSError, http.client.HTTPException):
                ok = False
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            latencies[c].append(time.perf_counter() - t0)
            errors[c] += not ok
            if ok:
                handler[c].append(json.loads(data)["took_ms"])
        conn.close()

    workers = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    server_cpu, client_cpu, t0 = cpu_seconds(server_pid), time.process_time(), time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    wall = time.perf_counter() - t0
    server_cpu, client_cpu = cpu_seconds(server_pid) - server_cpu, time.process_time() - client_cpu
    ms = np.concatenate([np.asarray(x) for x in latencies]) * 1e3
    took = np.concatenate([np.asarray(x) for x in handler])
    return {"requests": len(ms), "errors": sum(errors), "rps": len(ms) / wall, "p50": float(np.percentile(ms, 50)),
            "p99": float(np.percentile(ms, 99)), "max": float(ms.max()), "wall": wall,
            "handler_p50": float(np.percentile(took, 50)), "handler_p99": float(np.percentile(took, 99)),
            "server_cpu": server_cpu * 1e3 / len(ms), "client_cpu": client_cpu * 1e3 / len(ms)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=parse_n, default=1_000_000, help="database codes (e.g. 1M)")
    ap.add_argument("--bits", type=int, default=64, choices=(32, 64, 128))
    ap.add_argument("--data", choices=("clustered", "uniform"), default="clustered")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--single", type=int, default=1000, help="requests from one client")
    ap.add_argument("--requests", type=int, default=5000, help="requests from the concurrent clients")
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--threads", type=int, default=1, help="search threads per request (dhash serve --threads)")
    ap.add_argument("--seconds", type=float, default=120, help="time limit per phase")
    ap.add_argument("--kind", choices=("auto", "linear", "mih"), default="auto", help="index kind (dhash index --kind)")
    ap.add_argument("--milvus", action="store_true",
                    help="serve the codes from a Milvus Lite file (dhash export --to milvus; ~9,000 codes/s to export)")
    args = ap.parse_args()
    console = Console(width=150)
    db, queries = make_data(args.data, args.n, args.bits, 1000)
    bodies = [json.dumps({"codes": [q.tobytes().hex()], "k": args.k}).encode() for q in queries]
    with tempfile.TemporaryDirectory() as tmp:
        codes = CodeFile(db, args.bits, ids=[str(i) for i in range(len(db))] if args.milvus else None)
        write_code_file(Path(tmp) / "db.h5", codes)
        if args.milvus:  # in its own process: a Milvus Lite file is open in one process at a time
            subprocess.run([*DHASH, "export", str(Path(tmp) / "db.h5"), "--to", "milvus", "--uri",
                            str(Path(tmp) / "codes.db"), "--collection", "bench"], check=True)
            source, engine = ["--uri", str(Path(tmp) / "codes.db"), "--collection", "bench"], "Milvus Lite"
        else:
            kind = index_code_file(Path(tmp) / "db.h5", Path(tmp) / "db.index.h5", args.kind).index.kind
            source, engine = [str(Path(tmp) / "db.index.h5"), "--threads", str(args.threads)], f"{kind} index"
        port = free_port()
        proc = start_server(source, port)
        try:
            load(port, bodies, 1, 50, args.seconds, proc.pid)  # warm-up
            rows = [("1", load(port, bodies, 1, args.single, args.seconds, proc.pid)),
                    (str(args.clients), load(port, bodies, args.clients, args.requests, args.seconds, proc.pid))]
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            stats = json.loads(request(conn, "/stats")[1])
        finally:
            proc.terminate()
            proc.wait(30)
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               platform.processor())
    table = Table(title=f"dhash serve, POST /search k={args.k}: {args.n:,} x {args.bits}-bit {args.data} codes, "
                        f"{engine}, {stats['kernel'] or 'its own'} kernel, --threads {args.threads}")
    for col in ("clients", "requests", "errors", "req/s", "p50 ms", "p99 ms", "max ms", "wall s",
                "handler p50 ms", "handler p99 ms", "server CPU ms/req", "client CPU ms/req"):
        table.add_column(col, justify="right")
    for clients, r in rows:
        table.add_row(clients, f"{r['requests']:,}", str(r["errors"]), f"{r['rps']:,.0f}", f"{r['p50']:.2f}",
                      f"{r['p99']:.2f}", f"{r['max']:.1f}", f"{r['wall']:.1f}", f"{r['handler_p50']:.2f}",
                      f"{r['handler_p99']:.2f}", f"{r['server_cpu']:.3f}", f"{r['client_cpu']:.3f}")
    console.print(table)
    console.print(f"CPU: {cpu}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} (shared: other load "
                  f"on the machine shows in these numbers)")


if __name__ == "__main__":
    main()
