"""Ray Serve 2.45 with today's FastAPI.

`@serve.ingress(app)` pickles the FastAPI app (to freeze it, and to ship it to the replicas). FastAPI
≥ 0.139 keeps a `threading.Lock` in the app (its router's route cache), which pickle refuses: "cannot
pickle '_thread.lock' object", and every deploy fails (DEPLOY_FAILED). Ray fixed this in Serve after 2.56
(ray-project/ray#64814) by teaching its pickler that a lock is rebuilt as a fresh, unlocked lock — it
carries no state worth sending, and the app is frozen before it serves anything. This module registers
the same rule with `copyreg` (which Ray's cloudpickle consults) where Ray's pickler lacks it, so it holds
on every Ray from 2.45 on, without pinning the user's FastAPI. Import it before any `@serve.ingress`.
Where Ray already pickles locks (2.60) nothing is registered: the two rules together break the
unpickling of Starlette's app state.
"""
import _thread
import copyreg
import threading


def _fresh_lock(_lock: object) -> tuple:
    return threading.Lock, ()


def _fresh_rlock(_lock: object) -> tuple:
    return threading.RLock, ()


def ray_pickles_locks() -> bool:
    """Whether Ray's cloudpickle already turns a lock into a fresh one (Ray with #64814)."""
    import ray.cloudpickle

    try:
        ray.cloudpickle.dumps(threading.Lock())
        return True
    except TypeError:
        return False


if not ray_pickles_locks():
    copyreg.pickle(_thread.LockType, _fresh_lock)
    copyreg.pickle(type(threading.RLock()), _fresh_rlock)
