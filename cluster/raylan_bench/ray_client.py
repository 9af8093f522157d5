"""Ray Client's figures for `raylan bench --gateway`: the same measurements as the gateway's, made the way the
seed does it from Python (`ray.init("ray://HOST:10001")`, `ray.get(f.remote())`, `ray.put`, `ray.get(ref)`).

    python -m raylan_bench.ray_client --address ray://127.0.0.1:10001 [--duration 10] [--in-flight 32]
                                      [--sizes 1000000,100000000]
    python -m raylan_bench.ray_client --gcs 127.0.0.1:6379 …

With --gcs it starts Ray Client's server for one client itself (`python -m ray.util.client.server
--mode=specific-server`, what the proxy on port 10001 starts per client and then forwards to) and connects to it:
Ray Client without the proxy's forwarding hop, so its figures are if anything better than through port 10001.

Prints one line `RAYLAN_BENCH {json}`: for each in-flight level the no-op calls' p50/p99 latency (ms) and
calls/s, and for each size the put and get MB/s (10^6 bytes per second).
"""
import argparse
import json
import os
import time


def noop():
    return ()


def percentile(values: list, fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))] if ordered else 0.0


def calls(remote, in_flight: int, seconds: float) -> dict:
    """Keeps `in_flight` no-op calls pending for `seconds`; every answer starts the next call."""
    import ray

    latencies, started = [], {}
    start = time.perf_counter()
    deadline = start + seconds
    pending = []
    for _ in range(in_flight):
        ref = remote.remote()
        started[ref] = time.perf_counter()
        pending.append(ref)
    while pending:
        ready, pending = ray.wait(pending, num_returns=1)
        ray.get(ready)
        now = time.perf_counter()
        for ref in ready:
            latencies.append((now - started.pop(ref)) * 1000)
        if now < deadline:
            ref = remote.remote()
            started[ref] = time.perf_counter()
            pending.append(ref)
    elapsed = time.perf_counter() - start
    return {"in_flight": in_flight, "calls": len(latencies), "seconds": elapsed,
            "calls_per_second": len(latencies) / elapsed, "p50_ms": percentile(latencies, 0.5),
            "p99_ms": percentile(latencies, 0.99)}


def transfer(size: int, seconds: float) -> dict:
    """Puts and gets `size` random bytes, at least 3 times and until `seconds` have passed."""
    import ray

    data = os.urandom(size)
    put_s, get_s, rounds = 0.0, 0.0, 0
    deadline = time.perf_counter() + seconds
    while rounds < 3 or time.perf_counter() < deadline:
        begin = time.perf_counter()
        ref = ray.put(data)
        middle = time.perf_counter()
        back = ray.get(ref)
        end = time.perf_counter()
        assert len(back) == size
        put_s, get_s, rounds = put_s + middle - begin, get_s + end - middle, rounds + 1
        del ref, back
    return {"bytes": size, "rounds": rounds, "put_mb_per_second": size * rounds / put_s / 1e6,
            "get_mb_per_second": size * rounds / get_s / 1e6}


def specific_server(gcs: str) -> tuple:
    """Starts Ray Client's per-client server on a free port → (its ray:// address, the process)."""
    import socket
    import subprocess
    import sys

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "ray.util.client.server", f"--address={gcs}", "--host=127.0.0.1", f"--port={port}",
         "--mode=specific-server"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return f"ray://127.0.0.1:{port}", process
        if process.poll() is not None:
            raise SystemExit(f"Ray Client's server exited with {process.returncode}")
        time.sleep(0.2)
    process.kill()
    raise SystemExit("Ray Client's server did not listen within 60 s")


def main() -> None:
    parser = argparse.ArgumentParser()
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--address", help="ray://HOST:PORT, Ray Client's proxy")
    group.add_argument("--gcs", help="HOST:PORT of the GCS: start Ray Client's server here and use it")
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--in-flight", type=int, default=32)
    parser.add_argument("--sizes", default="1000000,100000000")
    args = parser.parse_args()
    import ray

    address, server = (args.address, None) if args.address else specific_server(args.gcs)
    try:
        ray.init(address, logging_level="ERROR")
        remote = ray.remote(noop)
        ray.get([remote.remote() for _ in range(args.in_flight)])  # workers started, function exported
        levels = [calls(remote, level, args.duration) for level in (1, args.in_flight)]
        sizes = [transfer(int(size), args.duration / 2) for size in args.sizes.split(",")]
        print("RAYLAN_BENCH " + json.dumps({
            "ray_version": ray.__version__, "via": "proxy" if args.address else "specific-server",
            "calls": levels, "transfers": sizes}), flush=True)
        ray.shutdown()
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(10)
            except Exception:
                server.kill()


if __name__ == "__main__":
    main()
