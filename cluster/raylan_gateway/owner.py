"""The gateway's owner: one detached actor that submits every task, creates every actor and holds every object.

A Ray object lives as long as its owner does, and Ray cannot recover an object whose owner died. Serve's
replicas come and go (a crash, a redeploy, autoscaling), so they own nothing: they pass each request to this
actor, which outlives them. Ids carry the owner's generation (`<generation>-<hex>`): an id from an owner
that died is answered `owner_died` rather than `unknown`.

What it holds is bounded: puts and kept results together up to `max_held_bytes` (a put that would pass it is
refused, `store_full`, before it is stored), and an object or kept result nobody used (got, located, passed as
an argument, its task asked about) for `object_ttl_s` is freed by a periodic sweep; its id then answers
`unknown_object` (or `unknown_task`) saying that it expired.

Every method returns (HTTP status, body): a dict for JSON, bytes for a raw answer. The ingress only renders it.
"""
import asyncio
import base64
import binascii
import json
import math
import secrets
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import ray
import ray.cloudpickle
import ray.exceptions

from . import runner

#: The owner's actor name and namespace (one owner per cluster).
OWNER_NAME = "raylan_gateway_owner"
NAMESPACE = "raylan_gateway"

#: HTTP status of each refusal; the answers of finished work are 200 with a state.
STATUS = {
    "bad_request": 400, "unknown_object": 404, "unknown_task": 404, "unknown_actor": 404, "name_taken": 409,
    "infeasible": 422, "owner_died": 503, "actor_not_ready": 409, "body_too_large": 413,
    # 507 Insufficient Storage (RFC 4918): the gateway cannot store it now; freeing makes room. Not 413, which
    # says this body is too large in itself (as body_too_large does) and would stay so.
    "store_full": 507,
}

#: Default cap on what the owner holds (puts and kept results, by their sizes), in bytes: the `max_held_bytes` arg.
DEFAULT_MAX_HELD_BYTES = 8 * 1024**3
#: Default time after which an object or kept result nobody used is freed: the `object_ttl_s` arg.
DEFAULT_OBJECT_TTL_SECONDS = 24 * 3600.0
#: Longest pause between two sweeps for expired objects (shorter for a short object_ttl_s).
SWEEP_SECONDS = 60.0
#: How many expired ids the owner remembers, to say "expired" rather than "unknown" when one is asked for.
EXPIRED_REMEMBERED = 10_000

#: How long the outcome of a call that waits stays when nobody collects it.
UNCOLLECTED_SECONDS = 600

#: Ray's exceptions → the gateway's error codes, most specific first.
RAY_ERRORS = [
    ("TaskCancelledError", "cancelled"),
    ("OutOfMemoryError", "out_of_memory"),
    ("NodeDiedError", "node_died"),
    ("WorkerCrashedError", "worker_died"),
    ("OwnerDiedError", "owner_died"),
    ("ObjectLostError", "object_lost"),
    ("RuntimeEnvSetupError", "runtime_env_failed"),
    ("ActorDiedError", "actor_died"),
    ("ActorUnavailableError", "actor_died"),
    ("RayActorError", "actor_died"),
    ("GetTimeoutError", "timeout"),
]

# Workers run the user's working directory, where raylan_gateway is not importable: send the runner by value.
ray.cloudpickle.register_pickle_by_value(runner)


async def settle(event: asyncio.Event, wait: float) -> bool:
    """Waits up to `wait` seconds for `event`; whether it is set."""
    if wait > 0 and not event.is_set():
        try:
            await asyncio.wait_for(event.wait(), wait)
        except asyncio.TimeoutError:
            pass
    return event.is_set()


class Refused(Exception):
    def __init__(self, code: str, message: str, remedy: str | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.remedy = remedy

    def answer(self) -> tuple[int, dict]:
        error = {"code": self.code, "message": self.message}
        if self.remedy:
            error["remedy"] = self.remedy
        return STATUS.get(self.code, 400), {"error": error}


def size_text(size: float) -> str:
    """Bytes for a person: 512 B, 3.0 MiB, 8.0 GiB."""
    for unit, scale in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size:.0f} B"


def duration_text(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:g} h"
    if seconds >= 60:
        return f"{seconds / 60:g} min"
    return f"{seconds:g} s"


def ray_error(error: BaseException) -> dict:
    """One of Ray's exceptions as the gateway's error: a named code and Ray's own first line."""
    names = {cls.__name__ for cls in type(error).__mro__}
    code = next((code for name, code in RAY_ERRORS if name in names), "ray_error")
    message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    if code == "runtime_env_failed":
        message = "the call's runtime environment (working directory, pip packages) could not be set up: " + str(
            error).strip()[-2000:]
    return {"code": code, "message": message, "type": f"ray.exceptions.{type(error).__name__}", "traceback": ""}


@dataclass
class Task:
    id: str
    function: str
    status_ref: Any
    value_ref: Any
    submitted: float
    timeout: float | None
    actor: bool = False
    keep: bool = True  # False: forgotten once an answer carried its outcome (a call that waits)
    state: str = "running"  # running → finished | failed | cancelled | timed_out
    error: dict | None = None
    size: int | None = None
    ended: float | None = None
    used: float = 0.0  # the owner's clock when last used (or ended): what expiry counts from
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def view(self) -> dict:
        out = {"id": self.id, "function": self.function, "state": self.state, "submitted": self.submitted,
               "ended": self.ended}
        if self.error:
            out["error"] = self.error
        return out


@dataclass
class Stored:
    id: str
    ref: Any
    size: int
    created: float
    used: float = 0.0  # the owner's clock when last used: what expiry counts from


@dataclass
class Actor:
    id: str
    cls: str
    name: str | None
    handle: Any
    created: float
    resources: dict
    state: str = "starting"  # starting → alive | failed | dead
    error: dict | None = None
    ready: asyncio.Event = field(default_factory=asyncio.Event)

    def view(self) -> dict:
        out = {"id": self.id, "class": self.cls, "name": self.name, "state": self.state, "created": self.created,
               "resources": self.resources}
        if self.error:
            out["error"] = self.error
        return out


def number(spec: dict, key: str, low: float = 0) -> float | None:
    value = spec.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < low:
        raise Refused("bad_request", f"'{key}' must be a number of {low:g} or more, not {value!r}")
    return value


def target_of(spec: dict, key: str) -> str:
    target = spec.get(key)
    if not isinstance(target, str) or ":" not in target or not target.partition(":")[0] or not target.partition(
            ":")[2]:
        raise Refused("bad_request", f"'{key}' must be 'module:name', e.g. 'tasks:gpu_task', not {target!r}")
    return target


def keeps(spec: dict) -> bool:
    """Whether a call keeps its result after an answer carried it: spec["keep"], by default true unless the
    call waits for its value."""
    keep = spec.get("keep")
    return not spec.get("wait") if keep is None else bool(keep)


@dataclass
class Located:
    """An object's ref handed to the ingress unresolved (a ref inside a returned object stays a ref), so that
    the ingress reads the value from the object store itself rather than through the owner's memory."""
    ref: Any


class Calls:
    """Submits calls and follows them: the owner's core, which the ingress also uses by itself for calls that
    wait for their value and pass no refs (their results are not kept, so nothing needs to outlive the ingress;
    one actor hop fewer)."""

    #: The clock that last-use times and expiry read (monotonic seconds); tests give their own.
    clock: Callable[[], float] = staticmethod(time.monotonic)

    def __init__(self):
        self.generation = secrets.token_hex(4)
        self.started = time.time()
        self.tasks: dict[str, Task] = {}
        self.aliases: dict[str, str] = {}  # a client's own call id → task id
        self.objects: dict[str, Stored] = {}
        self.expired: dict[str, tuple[float, float]] = {}  # id → (time it was freed, object_ttl_s then)
        self.run = ray.remote(runner.run)
        self.runners: dict[str, Any] = {}
        self.nodes_read = 0.0
        self.node_resources: list[dict] = []

    def runner_with(self, options: dict):
        """`run` with Ray's options, made once per distinct options (Ray checks a runtime_env each time)."""
        key = json.dumps(options, sort_keys=True)
        if (remote := self.runners.get(key)) is None:
            if len(self.runners) > 256:
                self.runners.clear()
            remote = self.runners[key] = self.run.options(**options)
        return remote

    def knows(self, given: str) -> bool:
        return given in self.aliases or given in self.tasks

    # MARK: ids and arguments

    def new_id(self, hex_id: str) -> str:
        return f"{self.generation}-{hex_id}"

    def check_generation(self, given: str, what: str) -> None:
        generation, dash, _ = given.partition("-")
        if dash and len(generation) == 8 and generation != self.generation:
            raise Refused("owner_died", (
                f"the {what} '{given}' was held by an earlier gateway owner, which is gone (this owner started "
                f"{time.strftime('%H:%M:%S', time.localtime(self.started))}): objects, results and actors it "
                f"held are lost; put or create them again"))

    def ref_of(self, given: str) -> Any:
        """An object id (a put, or a task's result) → its ObjectRef."""
        if not isinstance(given, str):
            raise Refused("bad_request", f"a ref must be a string id, not {given!r}")
        given = self.aliases.get(given, given)
        if given in self.objects:
            return self.touch(self.objects[given]).ref
        if given in self.tasks:
            return self.touch(self.tasks[given]).value_ref
        self.check_generation(given, "object")
        self.check_expired(given, "unknown_object")
        raise Refused("unknown_object", f"no object '{given}' here: it was freed, or never existed")

    def touch(self, item):
        """Marks an object or task as used now (expiry counts from its last use)."""
        item.used = self.clock()
        return item

    def check_expired(self, given: str, code: str) -> None:
        """Refuses an id that the owner's sweep freed, saying so (`code` is unknown_object or unknown_task)."""
        if given in self.expired:
            freed, ttl = self.expired[given]
            raise Refused(code, (
                f"'{given}' expired: nobody used it for {duration_text(ttl)} (the gateway's object_ttl_s), so the "
                f"gateway freed it at {time.strftime('%H:%M:%S', time.localtime(freed))}"), (
                "put it again, or run the call again; an object that is got, or passed to a call, within "
                "object_ttl_s stays"))

    def decode(self, value: Any) -> Any:
        """A JSON argument → Python: {"$bytes": b64} → bytes, {"$ref": id} → the ObjectRef."""
        if isinstance(value, dict):
            if len(value) == 1 and runner.REF in value:
                return self.ref_of(value[runner.REF])
            if len(value) == 1 and runner.BYTES in value:
                try:
                    return base64.b64decode(value[runner.BYTES], validate=True)
                except (binascii.Error, TypeError, ValueError):
                    raise Refused("bad_request", "a {\"$bytes\": …} argument is not valid base64") from None
            return {key: self.decode(item) for key, item in value.items()}
        if isinstance(value, list):
            return [self.decode(item) for item in value]
        return value

    def arguments(self, spec: dict) -> tuple[int, list, list]:
        args, kwargs = spec.get("args", []), spec.get("kwargs", {})
        if not isinstance(args, list) or not isinstance(kwargs, dict):
            raise Refused("bad_request", "'args' must be a JSON array and 'kwargs' a JSON object")
        return len(args), list(kwargs), [self.decode(value) for value in [*args, *kwargs.values()]]

    # MARK: resources

    def options(self, spec: dict, actor: bool) -> dict:
        """Ray's options for a call or actor from its spec, checked against the nodes: a request no alive node
        could ever satisfy is refused now (`infeasible`) rather than left pending forever."""
        resources = {} if spec.get("resources") is None else spec["resources"]
        if not isinstance(resources, dict):
            raise Refused("bad_request", "'resources' must be a JSON object")
        cpus, gpus, memory = number(resources, "cpus"), number(resources, "gpus"), number(resources, "memory")
        custom = {} if resources.get("custom") is None else resources["custom"]
        if not isinstance(custom, dict):
            raise Refused("bad_request", "'resources.custom' must be a JSON object of numbers")
        for name in custom:
            number(custom, name)
        options: dict[str, Any] = {"num_cpus": 1 if cpus is None else cpus}
        if gpus:
            options["num_gpus"] = gpus
        if memory:
            options["memory"] = memory
        if custom:
            options["resources"] = dict(custom)
        if not actor:
            retries = number(spec, "max_retries", low=-1)
            options["max_retries"] = 0 if retries is None else int(retries)
            options["num_returns"] = 2
        environment = {} if spec.get("runtime_env") is None else spec["runtime_env"]
        if not isinstance(environment, dict):
            raise Refused("bad_request", "'runtime_env' must be a JSON object")
        allowed = {"working_dir", "pip", "env_vars", "py_modules"}
        if set(environment) - allowed:
            raise Refused("bad_request", f"'runtime_env' may hold {sorted(allowed)}, not {sorted(set(environment) - allowed)}")
        working_dir = environment.get("working_dir")
        if working_dir is not None and (not isinstance(working_dir, str) or "://" not in working_dir):
            raise Refused("bad_request", (
                f"'runtime_env.working_dir' must be the URI of an uploaded package (gcs://_ray_pkg_….zip), not "
                f"{working_dir!r}: raylan uploads a local folder for you (--working-dir)"))
        if environment:
            options["runtime_env"] = environment
        self.check_feasible(options)
        return options

    def check_feasible(self, options: dict) -> None:
        wanted = {"CPU": options.get("num_cpus") or 0, "GPU": options.get("num_gpus") or 0,
                  "memory": options.get("memory") or 0, **(options.get("resources") or {})}
        wanted = {name: amount for name, amount in wanted.items() if amount}
        if not wanted:
            return
        if time.monotonic() - self.nodes_read > 2:
            self.node_resources = [node.get("Resources") or {} for node in ray.nodes() if node.get("Alive")]
            self.nodes_read = time.monotonic()
        if any(all(node.get(name, 0) >= amount for name, amount in wanted.items()) for node in self.node_resources):
            return
        asked = ", ".join(f"{name} {amount:g}" for name, amount in wanted.items())
        have = "; ".join(", ".join(f"{name} {node.get(name, 0):g}" for name in wanted) for node in self.node_resources)
        if "GPU" in wanted and not any(node.get("GPU", 0) for node in self.node_resources):
            what, remedy = "a GPU", "add a GPU host ('raylan up --join' on it), or call without --gpus"
        else:
            what, remedy = f"all of {asked} at once", "add a node that has them, or ask for less"
        raise Refused("infeasible", (
            f"no node has {what} (the alive nodes have: {have or 'none'}), so the call would wait forever: {remedy}"))

    # MARK: calls

    async def call(self, spec: dict) -> tuple[int, dict]:
        """Submits `module:function` and waits up to spec["wait"] seconds for its result. A call whose `id` the
        owner knows already is not submitted again: its answer is the running (or ended) task's, so a client
        may send a call again after a lost connection."""
        if (again := self.known_call(spec)) is not None:
            return await again
        try:
            target = target_of(spec, "function")
            options = self.options(spec, actor=False)
            number(spec, "timeout")  # checked here; track() reads it
            wait = number(spec, "wait") or 0
            n_args, names, values = self.arguments(spec)
            self.room_for_result(spec)
        except Refused as refused:
            return refused.answer()
        try:
            status_ref, value_ref = self.runner_with(options).remote(target, n_args, names, *values)
        except (ValueError, TypeError) as error:  # Ray refused the options (e.g. a runtime_env it cannot use)
            return Refused("bad_request", f"Ray refused the call's options: {error}").answer()
        task = self.track(target, status_ref, value_ref, spec, actor=False)
        return await self.answer(task, wait)

    def known_call(self, spec: dict):
        alias = spec.get("id")
        if isinstance(alias, str) and alias in self.aliases and self.aliases[alias] in self.tasks:
            return self.answer(self.tasks[self.aliases[alias]], number(spec, "wait") or 0)
        return None

    def room_for_result(self, spec: dict) -> None:
        """Nothing here: the ingress keeps no results. The owner refuses a call that keeps its result while
        its store is full."""

    def track(self, function: str, status_ref, value_ref, spec: dict, actor: bool) -> Task:
        """Registers a submitted task; spec["keep"] (default: true unless the call waits) keeps its result
        after an answer carried it, for `get`, `ref:` arguments and `task result`."""
        task = Task(self.new_id(value_ref.hex()), function, status_ref, value_ref, time.time(),
                    number(spec, "timeout"), actor, keeps(spec), used=self.clock())
        alias = spec.get("id")
        self.tasks[task.id] = task
        if isinstance(alias, str) and alias:
            self.aliases[alias] = task.id
        asyncio.get_running_loop().create_task(self.watch(task))
        return task

    async def watch(self, task: Task) -> None:
        """Waits for the task's outcome, or ends it at its timeout."""
        try:
            outcome = await asyncio.wait_for(task.status_ref, task.timeout) if task.timeout else await task.status_ref
            if outcome.get("ok"):
                task.state, task.size = "finished", outcome.get("size")
            else:
                task.state, task.error = "failed", outcome.get("error")
        except asyncio.TimeoutError:
            ray.cancel(task.status_ref, force=not task.actor)
            task.state = "timed_out"
            task.error = {"code": "timeout", "message": f"{task.function} ran past its timeout of {task.timeout:g} s "
                                                          f"and was cancelled", "type": "", "traceback": ""}
        except Exception as error:  # Ray's: cancelled, worker or node died, out of memory, runtime env
            task.error = ray_error(error)
            task.state = "cancelled" if task.error["code"] == "cancelled" else "failed"
        task.ended = time.time()
        task.used = self.clock()  # a result nobody asked for yet expires object_ttl_s after it ended
        task.done.set()
        if not task.keep:  # forgotten later if its caller went away without collecting it (by id: no refs held)
            asyncio.get_running_loop().call_later(UNCOLLECTED_SECONDS, self.forget_uncollected, task.id)

    def forget_uncollected(self, task_id: str) -> None:
        if (task := self.tasks.get(task_id)) is not None:
            self.forget_task(task)

    async def outcome(self, task: Task, wait: float) -> tuple[int, dict, Any]:
        """Waits up to `wait` seconds for the task → (status, its view, its wire value or None). 202 while it
        runs. A task that is not kept is forgotten once its outcome is handed out."""
        if not await settle(task.done, wait):
            return 202, task.view(), None
        if not task.keep:
            self.forget_task(task)
        if task.state != "finished":
            return 200, task.view(), None
        try:
            return 200, task.view(), await task.value_ref
        except Exception as error:  # the value was lost (its node died) after the task ended
            return 200, {**task.view(), "state": "failed", "error": ray_error(error)}, None

    async def answer(self, task: Task, wait: float) -> tuple[int, dict | bytes]:
        """The task's state; with its value once finished (within `wait` seconds). A value that is bytes (a file's
        piece that a session reads, say) is the answer itself: raw bytes, not base64 inside JSON, as a get gives
        an object's bytes."""
        status, view, value = await self.outcome(task, wait)
        if view["state"] == "finished":
            if isinstance(value, bytes):
                return status, value
            view["value"] = to_json(value)
        return status, view

    def forget_task(self, task: Task) -> None:
        self.tasks.pop(task.id, None)
        for alias in [alias for alias, target in self.aliases.items() if target == task.id]:
            del self.aliases[alias]

    def task_of(self, given: str) -> Task:
        given = self.aliases.get(given, given)
        if given in self.tasks:
            return self.touch(self.tasks[given])
        self.check_generation(given, "task")
        self.check_expired(given, "unknown_task")
        raise Refused("unknown_task", f"no task '{given}' here: its result was freed, or it never existed")

    async def task_status(self, given: str) -> tuple[int, dict]:
        try:
            return 200, self.task_of(given).view()
        except Refused as refused:
            return refused.answer()

    async def task_result(self, given: str, wait: float) -> tuple[int, dict]:
        try:
            task = self.task_of(given)
        except Refused as refused:
            return refused.answer()
        return await self.answer(task, max(0.0, wait))

    async def cancel(self, given: str) -> tuple[int, dict]:
        """Cancels a task (a normal task's worker is killed, which frees its CPUs and GPUs at once)."""
        try:
            task = self.task_of(given)
        except Refused as refused:
            return refused.answer()
        if not task.done.is_set():
            ray.cancel(task.status_ref, force=not task.actor)
            await settle(task.done, 10)
        return 200, task.view()

    async def list_tasks(self) -> tuple[int, dict]:
        return 200, {"tasks": [task.view() for task in self.tasks.values()]}


class Owner(Calls):
    """The detached owner actor (async: thousands of calls wait on it at once)."""

    def __init__(self, code: str | None = None, max_held_bytes: int = DEFAULT_MAX_HELD_BYTES,
                 object_ttl_s: float = DEFAULT_OBJECT_TTL_SECONDS):
        super().__init__()
        self.code = code  # the RayLAN cluster code it runs (the gateway's working_dir URI)
        self.actors: dict[str, Actor] = {}
        self.names: dict[str, str] = {}  # actor name → actor id
        self.host = ray.remote(runner.Host)
        self.max_held_bytes = max_held_bytes
        self.object_ttl_s = object_ttl_s
        self.sweeper: asyncio.Task | None = None  # started by the first request (no event loop in __init__)

    async def info(self) -> tuple[int, dict]:
        self.start_sweeping()
        return 200, {"generation": self.generation, "started": self.started, "tasks": len(self.tasks),
                     "objects": len(self.objects), "actors": len(self.actors), "code": self.code,
                     "held_bytes": self.held_bytes(), "max_held_bytes": self.max_held_bytes,
                     "object_ttl_s": self.object_ttl_s}

    async def set_limits(self, max_held_bytes: int, object_ttl_s: float) -> tuple[int, dict]:
        """New limits from a redeployed gateway (same code, other args): what is held stays."""
        self.max_held_bytes, self.object_ttl_s = max_held_bytes, object_ttl_s
        return await self.info()

    # MARK: what it holds: the byte cap and expiry

    def held_bytes(self) -> int:
        """Bytes held: every put, and every result whose size is known (`raylan objects`' total)."""
        return sum(item.size for item in self.objects.values()) + sum(
            task.size or 0 for task in self.tasks.values())

    def make_room(self, size: int, what: str) -> None:
        """Refuses (store_full) when `size` more bytes would pass max_held_bytes, or nothing more fits."""
        held = self.held_bytes()
        if held + size > self.max_held_bytes or held >= self.max_held_bytes:
            raise Refused("store_full", (
                f"the gateway holds {size_text(held)} of objects and results, and its cap is "
                f"{size_text(self.max_held_bytes)} (max_held_bytes {self.max_held_bytes}): {what} does not fit"), (
                "free objects with 'raylan free REF' (see 'raylan objects'), or raise the cap (the gateway "
                "application's max_held_bytes arg)"))

    def room_for_result(self, spec: dict) -> None:
        if keeps(spec):
            self.make_room(0, "a call that keeps its result (--no-wait)")

    def track(self, function: str, status_ref, value_ref, spec: dict, actor: bool) -> Task:
        self.start_sweeping()
        return super().track(function, status_ref, value_ref, spec, actor)

    async def room(self, size: int) -> tuple[int, dict]:
        """Whether a put of `size` bytes fits now: asked by the ingress from the declared Content-Length before
        it reads the body (the put itself checks again: another may have taken the room meanwhile)."""
        try:
            self.make_room(size, f"a put of {size_text(size)}")
        except Refused as refused:
            return refused.answer()
        return 200, {"held_bytes": self.held_bytes(), "max_held_bytes": self.max_held_bytes}

    def start_sweeping(self) -> None:
        if self.sweeper is None or self.sweeper.done():
            self.sweeper = asyncio.get_running_loop().create_task(self.sweep())

    async def sweep(self) -> None:
        """Frees what expired, every SWEEP_SECONDS (or half the object_ttl_s), for the owner's life."""
        while True:
            await asyncio.sleep(min(SWEEP_SECONDS, self.object_ttl_s / 2))
            self.expire()

    def expire(self) -> list[str]:
        """Frees every object, and every ended task's result, unused for object_ttl_s; their ids (and a task's
        aliases) are remembered, so a later request hears that they expired. Returns the freed ids."""
        now, freed_at = self.clock(), time.time()
        gone = [item.id for item in self.objects.values() if now - item.used >= self.object_ttl_s]
        for given in gone:
            del self.objects[given]
        for task in [task for task in self.tasks.values()
                     if task.done.is_set() and now - task.used >= self.object_ttl_s]:
            gone += [task.id] + [alias for alias, target in self.aliases.items() if target == task.id]
            self.forget_task(task)
        for given in gone:
            self.expired[given] = (freed_at, self.object_ttl_s)
        while len(self.expired) > EXPIRED_REMEMBERED:
            del self.expired[next(iter(self.expired))]
        return gone

    # MARK: objects

    async def put(self, data: bytes) -> tuple[int, dict]:
        """Stores the bytes (refused, store_full, before storing when they would pass max_held_bytes)."""
        self.start_sweeping()
        try:
            self.make_room(len(data), f"a put of {size_text(len(data))}")
        except Refused as refused:
            return refused.answer()
        ref = ray.put(data)
        stored = Stored(self.new_id(ref.hex()), ref, len(data), time.time(), used=self.clock())
        self.objects[stored.id] = stored
        return 200, {"ref": stored.id, "size": stored.size}

    async def locate(self, given: str, wait: float) -> tuple[int, Any]:
        """An object for `get`: its ref (Located) for the ingress to read; a task's result once it has finished
        (within `wait` seconds), else the task's state or error."""
        try:
            given = self.aliases.get(given, given)
            if given in self.tasks:
                task = self.touch(self.tasks[given])
                if not await settle(task.done, wait):
                    return 202, task.view()
                if task.state != "finished":
                    return 200, task.view()
                return 200, Located(task.value_ref)
            return 200, Located(self.ref_of(given))
        except Refused as refused:
            return refused.answer()

    async def free(self, given: str) -> tuple[int, dict]:
        given = self.aliases.get(given, given)
        if self.objects.pop(given, None):
            return 200, {"freed": given}
        if given in self.tasks:
            self.forget_task(self.tasks[given])
            return 200, {"freed": given}
        try:
            self.check_generation(given, "object")
            self.check_expired(given, "unknown_object")
        except Refused as refused:
            return refused.answer()
        return Refused("unknown_object", f"no object '{given}' here: it was freed, or never existed").answer()

    async def list_objects(self) -> tuple[int, dict]:
        objects = [{"id": item.id, "size": item.size, "kind": "put", "created": item.created}
                   for item in self.objects.values()]
        objects += [{"id": task.id, "size": task.size, "kind": "result", "created": task.submitted,
                     "function": task.function, "state": task.state} for task in self.tasks.values()]
        return 200, {"objects": objects, "total_bytes": self.held_bytes(), "max_held_bytes": self.max_held_bytes}

    # MARK: actors

    async def create_actor(self, spec: dict) -> tuple[int, dict]:
        try:
            target = target_of(spec, "class")
            options = self.options(spec, actor=True)
            n_args, names, values = self.arguments(spec)
            name = spec.get("name")
            if name is not None and (not isinstance(name, str) or not name):
                raise Refused("bad_request", "'name' must be a non-empty string")
            if name in self.names:
                raise Refused("name_taken", f"an actor named '{name}' exists already ({self.names[name]}); kill it "
                                            f"first or pick another name")
            wait = number(spec, "wait") or 0
        except Refused as refused:
            return refused.answer()
        if name:
            options.update(name=name, namespace=NAMESPACE)
        try:
            handle = self.host.options(**options).remote(target, n_args, names, *values)
        except ValueError as error:  # the name is taken in Ray (created elsewhere), or options Ray refused
            code = "name_taken" if name and "already" in str(error) else "bad_request"
            return Refused(code, f"Ray refused the actor: {error}").answer()
        actor = Actor(self.new_id(handle._actor_id.hex()), target, name, handle, time.time(),
                      {key: options[key] for key in ("num_cpus", "num_gpus", "memory", "resources") if key in options})
        self.actors[actor.id] = actor
        if name:
            self.names[name] = actor.id
        asyncio.get_running_loop().create_task(self.watch_actor(actor))
        return await self.actor_answer(actor, wait)

    async def watch_actor(self, actor: Actor) -> None:
        try:
            error = await actor.handle.ready.remote()
            actor.state, actor.error = ("failed", error) if error else ("alive", None)
        except Exception as error:
            actor.state, actor.error = "failed", ray_error(error)
        if actor.state == "failed":
            self.forget_actor(actor, kill=True)
        actor.ready.set()

    async def actor_answer(self, actor: Actor, wait: float) -> tuple[int, dict]:
        return (200 if await settle(actor.ready, wait) else 202), actor.view()

    def actor_of(self, given: str) -> Actor:
        given = self.names.get(given, given)
        if given in self.actors:
            return self.actors[given]
        self.check_generation(given, "actor")
        raise Refused("unknown_actor", f"no actor '{given}' here: it was killed, or never existed")

    def forget_actor(self, actor: Actor, kill: bool) -> None:
        self.actors.pop(actor.id, None)
        if actor.name and self.names.get(actor.name) == actor.id:
            del self.names[actor.name]
        if kill:
            ray.kill(actor.handle)

    async def actor_status(self, given: str, wait: float) -> tuple[int, dict]:
        try:
            return await self.actor_answer(self.actor_of(given), wait)
        except Refused as refused:
            return refused.answer()

    async def call_actor(self, given: str, spec: dict) -> tuple[int, dict]:
        if (again := self.known_call(spec)) is not None:
            return await again
        try:
            actor = self.actor_of(given)
            method = spec.get("method")
            if not isinstance(method, str) or not method or method.startswith("_"):
                raise Refused("bad_request", f"'method' must name a public method, not {method!r}")
            number(spec, "timeout")  # checked here; track() reads it
            wait = number(spec, "wait") or 0
            n_args, names, values = self.arguments(spec)
            self.room_for_result(spec)
        except Refused as refused:
            return refused.answer()
        status_ref, value_ref = actor.handle.call.options(num_returns=2).remote(method, n_args, names, *values)
        task = self.track(f"{actor.cls}.{method}", status_ref, value_ref, spec, actor=True)
        return await self.answer(task, wait)

    async def kill_actor(self, given: str) -> tuple[int, dict]:
        try:
            actor = self.actor_of(given)
        except Refused as refused:
            return refused.answer()
        self.forget_actor(actor, kill=True)
        return 200, {"killed": actor.id}

    async def list_actors(self) -> tuple[int, dict]:
        return 200, {"actors": [actor.view() for actor in self.actors.values()]}


def to_json(value: Any) -> Any:
    """A wire value → JSON: bytes become {"$bytes": base64}."""
    if isinstance(value, bytes):
        return {runner.BYTES: base64.b64encode(value).decode()}
    if isinstance(value, list):
        return [to_json(item) for item in value]
    if isinstance(value, dict):
        return {key: to_json(item) for key, item in value.items()}
    return value
