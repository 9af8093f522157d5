"""The seed's first example, called from a Mac without Python: `gpu_task` is True where Ray gave the call a GPU.

    raylan call --working-dir examples/gateway/python --gpus 1 gpu:gpu_task
"""
import os
import socket


def gpu_task() -> bool:
    """True on a GPU host: Ray sets CUDA_VISIBLE_DEVICES for a call that reserved GPUs, on the node that has them."""
    return bool(os.environ.get("CUDA_VISIBLE_DEVICES"))


def where() -> dict:
    """Where the call ran: the node's address and host name, and the GPUs Ray gave it."""
    import ray

    return {"node": ray.util.get_node_ip_address(), "host": socket.gethostname(),
            "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES", "")}
