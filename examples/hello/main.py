"""RayLAN's first demo job: runs on the cluster, reports where it ran and whether it sees a GPU.

Submitted with `raylan job submit --working-dir examples/hello [--gpus 1] -- python main.py`.
"""
import os
import socket

import ray


@ray.remote(num_cpus=1)
def square(x: int) -> tuple[int, str]:
    return x * x, socket.gethostname()


def main() -> None:
    ray.init()  # inside a Ray job this joins the cluster that runs it
    print("cluster resources:", {k: v for k, v in ray.cluster_resources().items() if not k.startswith("node:")})
    print("driver host:", socket.gethostname(), "CUDA_VISIBLE_DEVICES =", os.environ.get("CUDA_VISIBLE_DEVICES", "(unset)"))
    results = ray.get([square.remote(i) for i in range(8)])
    print("squares from Ray tasks:", [value for value, _ in results], "on", sorted({host for _, host in results}))
    try:
        import torch  # the seed's check, where the cluster's Python has torch
    except ImportError:
        print("torch is not installed in the cluster's Python: skipped torch.cuda.is_available()")
    else:
        print("torch.cuda.is_available():", torch.cuda.is_available())
        if torch.cuda.is_available():
            print("GPU:", torch.cuda.get_device_name(0))


if __name__ == "__main__":
    main()
