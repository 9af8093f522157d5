"""Locks pickle as fresh locks (what @serve.ingress needs for today's FastAPI) on every Ray RayLAN supports."""
import os
import subprocess
import threading

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
RAY245 = os.path.join(os.path.dirname(ROOT), ".venv-ray245", "bin", "python")


def test_a_lock_round_trips_as_a_fresh_unlocked_lock():
    import ray.cloudpickle as cp

    import raylan_common.compat  # noqa: F401
    lock = threading.Lock()
    lock.acquire()
    assert cp.loads(cp.dumps(lock)).acquire(blocking=False)
    assert cp.loads(cp.dumps(threading.RLock())).acquire(blocking=False)


def lock_pickles_on_ray_245(import_compat: bool) -> subprocess.CompletedProcess:
    script = (f"import sys; sys.path.insert(0, {ROOT!r})\n"
              + ("import raylan_common.compat\n" if import_compat else "")
              + "import threading, ray, ray.cloudpickle as cp\n"
              "assert ray.__version__ == '2.45.0', ray.__version__\n"
              "cp.loads(cp.dumps(threading.Lock())); print('pickled')\n")
    return subprocess.run([RAY245, "-c", script], capture_output=True, text=True)


@pytest.mark.skipif(not os.path.exists(RAY245), reason="no .venv-ray245 (scripts/setup-python.sh --with-ray245)")
def test_ray_245_needs_the_rule_and_gets_it():
    without = lock_pickles_on_ray_245(import_compat=False)
    assert without.returncode != 0 and "_thread.lock" in without.stderr
    done = lock_pickles_on_ray_245(import_compat=True)
    assert done.returncode == 0 and "pickled" in done.stdout, done.stderr
