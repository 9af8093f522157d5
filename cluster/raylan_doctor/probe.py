"""One task on every alive node (pinned to it), reporting versions and GPU usability.

Run as a Ray job: ``python -m raylan_doctor.probe``. Prints one line ``RAYLAN_PROBE <json>``:
``{"nodes": [{"node_id", "ip", "hostname", "ray_version", "python_version", "gpus_declared",
"gpus_reserved", "cuda_visible_devices", "nvidia_smi": {...}, "torch": {...}} | {"node_id", "ip", "error"}]}``.

A task on a node that declares GPUs reserves a small share of one (so Ray sets CUDA_VISIBLE_DEVICES as it
does for real work) when one is free; when all are taken (e.g. by detection replicas) it runs without a
reservation and says so.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import time

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

GPU_SHARE = 0.01
TIMEOUT_S = float(os.environ.get("RAYLAN_PROBE_TIMEOUT_S", "60"))


def nvidia_smi() -> dict:
    path = shutil.which("nvidia-smi")
    if path is None:
        return {"found": False}
    try:
        out = subprocess.run(
            [path, "--query-gpu=index,name,memory.total,memory.used,uuid", "--format=csv,noheader,nounits"],
            capture_output=True, text=True, timeout=30)
    except Exception as error:  # noqa: BLE001 - reported, not raised
        return {"found": True, "error": str(error)}
    if out.returncode != 0:
        return {"found": True, "error": (out.stderr or out.stdout).strip()[-300:]}
    gpus = []
    for line in out.stdout.strip().splitlines():
        fields = [field.strip() for field in line.split(",")]
        if len(fields) >= 4:
            gpus.append({"index": fields[0], "name": fields[1], "memory_total_mib": float(fields[2]),
                         "memory_used_mib": float(fields[3]), "uuid": fields[4] if len(fields) > 4 else None})
    return {"found": True, "gpus": gpus}


def torch_cuda() -> dict:
    try:
        import torch  # noqa: PLC0415 - optional on the cluster
    except Exception as error:  # noqa: BLE001
        return {"installed": False, "error": str(error)[-200:]}
    info = {"installed": True, "version": torch.__version__, "cuda_build": torch.version.cuda,
            "available": bool(torch.cuda.is_available())}
    if info["available"]:
        info["devices"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        try:
            x = torch.ones((64, 64), device="cuda")
            info["matmul_ok"] = float((x @ x).sum().item()) == 64.0 * 64 * 64
        except Exception as error:  # noqa: BLE001
            info["matmul_ok"] = False
            info["error"] = str(error)[-300:]
    return info


@ray.remote(num_cpus=0)
def probe(declared: float, reserved: float) -> dict:
    smi = nvidia_smi()
    return {
        "ip": ray.util.get_node_ip_address(),
        "hostname": socket.gethostname(),
        "node_id": ray.get_runtime_context().get_node_id(),
        "ray_version": ray.__version__,
        "python_version": platform.python_version(),
        "python": sys.executable,
        "gpus_declared": declared,
        "gpus_reserved": reserved,
        "gpu_ids": [str(gpu) for gpu in ray.get_gpu_ids()],
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "nvidia_smi": smi,
        # Importing torch takes seconds: only where a GPU could be used at all.
        "torch": torch_cuda() if smi["found"] else None,
    }


def main() -> None:
    ray.init()
    # Per node: a task pinned to a node can only take that node's free GPUs (private API, in 2.45–2.60).
    free_by_node = ray._private.state.available_resources_per_node()
    pending = {}
    results = []
    for node in ray.nodes():
        if not node.get("Alive"):
            continue
        node_id = node["NodeID"]
        declared = float(node.get("Resources", {}).get("GPU", 0))
        free = float(free_by_node.get(node_id, {}).get("GPU", 0))
        reserved = GPU_SHARE if declared > 0 and free >= GPU_SHARE else 0.0
        ref = probe.options(
            num_gpus=reserved,
            scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=node_id, soft=False),
        ).remote(declared, reserved)
        pending[ref] = {"node_id": node_id, "ip": node.get("NodeManagerAddress")}
    deadline = time.monotonic() + TIMEOUT_S
    while pending and time.monotonic() < deadline:
        ready, _ = ray.wait(list(pending), num_returns=1, timeout=max(deadline - time.monotonic(), 0.1))
        for ref in ready:
            where = pending.pop(ref)
            try:
                results.append({**where, **ray.get(ref)})
            except Exception as error:  # noqa: BLE001 - one node's failure is a result
                results.append({**where, "error": str(error).splitlines()[-1][:300]})
    for ref, where in pending.items():
        ray.cancel(ref, force=True)
        results.append({**where, "error": f"no answer within {TIMEOUT_S:.0f} s (node busy or unreachable)"})
    print("RAYLAN_PROBE " + json.dumps({"nodes": results}), flush=True)


if __name__ == "__main__":
    main()
