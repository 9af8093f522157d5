"""Functions and classes the gateway tests call on the cluster."""
import hashlib
import os
import threading
import time

import ray


def add(a, b=0):
    return a + b


def noop():
    return None


def boom(message):
    raise ValueError(message)


def nested_import():
    import module_that_is_not_installed  # noqa: F401 - a module that imports something missing


def sleep(seconds):
    time.sleep(seconds)
    return seconds


def digest(data):
    """The bytes' length and sha256, computed where they arrive."""
    return {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def repeat(data, times):
    return bytes(data) * times


def cuda():
    return {"cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES", ""), "gpu_ids": ray.get_gpu_ids()}


def environment(name):
    return os.environ.get(name)


def unserializable():
    return object()


def kill_ingress_soon(application):
    """Kills the gateway's Serve replica half a second after returning (Serve starts a new one)."""
    from ray.util.state import list_actors

    # This cluster's address, passed: another Ray on the machine (the demo's) must not make the lookup ambiguous.
    address = ray.get_runtime_context().gcs_address
    names = [actor.name for actor in list_actors(address=address, filters=[("state", "=", "ALIVE")], limit=1000)
             if actor.name and actor.name.startswith(f"SERVE_REPLICA::{application}#")]

    def kill():
        time.sleep(0.5)
        for name in names:
            ray.kill(ray.get_actor(name, namespace="serve"), no_restart=True)

    threading.Thread(target=kill, daemon=False).start()
    return names


def kill_owner(data):
    """Kills the gateway's owner actor while it waits for this very call (a call with a ref goes through the
    owner, which holds the ref)."""
    ray.kill(ray.get_actor("raylan_gateway_owner", namespace="raylan_gateway"), no_restart=True)
    time.sleep(30)
    return len(data)


class Counter:
    def __init__(self, start=0):
        self.count = start

    def add(self, by=1):
        self.count += by
        return self.count

    def fail(self):
        raise RuntimeError(f"count is {self.count}")


class Broken:
    def __init__(self):
        raise KeyError("no config")


def sizes(items):
    """Lengths of the items of a list (refs nested in it arrive resolved)."""
    return [len(item) for item in items]
