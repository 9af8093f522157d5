"""Ray Client's figures for `raylan bench --gateway`: the same measurements as the gateway's, made the way the
seed does it from Python (`ray.init("ray://HOST:10001")`, `ray.get(f.remote())`, `ray.put`, `ray.get(ref)`).

    python -m raylan_bench.ray_client --address ray://127.0.0.1:10001 [--duration 10] [--in-flight 32]
                                      [--sizes 1000000,100000000]

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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--address", required=True)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--in-flight", type=int, default=32)
    parser.add_argument("--sizes", default="1000000,100000000")
    args = parser.parse_args()
    import ray

    ray.init(args.address, logging_level="ERROR")
    remote = ray.remote(noop)
    ray.get([remote.remote() for _ in range(args.in_flight)])  # workers started, function exported
    levels = [calls(remote, level, args.duration) for level in (1, args.in_flight)]
    sizes = [transfer(int(size), args.duration / 2) for size in args.sizes.split(",")]
    print("RAYLAN_BENCH " + json.dumps({"ray_version": ray.__version__, "calls": levels, "transfers": sizes}),
          flush=True)
    ray.shutdown()


if __name__ == "__main__":
    main()
