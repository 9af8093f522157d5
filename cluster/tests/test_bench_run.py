"""raylan bench's references (cluster/raylan_bench/run.py) stand for a user's own loop on the host."""
import os
import subprocess
import sys

CLUSTER = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
THREADS = "import raylan_bench.run, torch; print(torch.get_num_threads())"


def threads(**environment: str) -> int:
    """torch's threads in a process that imports run.py with OMP_NUM_THREADS=1 (what Ray's job supervisor passes)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", **environment}
    answer = subprocess.run([sys.executable, "-c", THREADS], cwd=CLUSTER, env=env, capture_output=True, text=True,
                            timeout=120, check=True)
    return int(answer.stdout.strip())


def test_in_a_ray_job_the_references_use_the_hosts_cores_not_the_supervisors_one_thread():
    own = subprocess.run([sys.executable, "-c", "import torch; print(torch.get_num_threads())"], capture_output=True,
                         text=True, timeout=120, check=True, env={k: v for k, v in os.environ.items()
                                                                   if k != "OMP_NUM_THREADS"})
    host = int(own.stdout.strip())
    assert host >= 2, "this check needs a host where torch takes 2 threads or more"
    assert threads(RAY_JOB_CONFIG_JSON_ENV_VAR="{}") == host
    # Outside a job, a user's own OMP_NUM_THREADS is theirs to keep.
    assert threads() == 1
