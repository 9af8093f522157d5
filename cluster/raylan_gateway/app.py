"""The gateway's HTTP face, a Ray Serve application (import path `raylan_gateway.app:build`).

Serve's replicas own nothing: each request goes to the detached owner actor (owner.py), which submits the
tasks, creates the actors and holds the objects, so they survive a replica's restart.

HTTP API (under the application's route prefix, e.g. /raylan/gateway); JSON unless said:
  POST /call                  {"function": "module:function", "args": [...], "kwargs": {...},
                               "resources": {"cpus", "gpus", "memory" (bytes), "custom": {name: n}},
                               "runtime_env": {"working_dir": "gcs://…", "pip": [...], "env_vars": {...}},
                               "max_retries", "timeout" (s), "wait" (s to wait now, ≤ 60), "keep", "id" (yours)}
                              → 200 {"id", "state": "finished", "value"} | {"state": "failed"|"cancelled"|
                                "timed_out", "error"}; 202 {"id", "state": "running"} when not done within wait.
  GET  /tasks                 every task the owner holds.
  GET  /tasks/{id}            its state; /tasks/{id}/result?wait=S its value (as /call); POST /tasks/{id}/cancel.
  POST /objects               body: raw bytes (application/octet-stream) → {"ref", "size"}.
  GET  /objects               {"objects": [{"id", "size", "kind", …}], "total_bytes", "max_held_bytes"}.
  GET  /objects/{id}?wait=S   raw bytes (application/octet-stream) for bytes, else {"value": JSON}.
  DELETE /objects/{id}        frees it (a put, or a task's result).
  POST /actors                {"class": "module:Class", "args", "kwargs", "resources", "runtime_env", "name",
                               "wait"} → 200 {"id", "state": "alive"|"failed", …}; 202 while it starts.
  GET  /actors, GET /actors/{id or name}?wait=S, POST /actors/{id}/call {"method", "args", "kwargs",
                               "timeout", "wait", "keep", "id"} (answered as /call), DELETE /actors/{id}.
  GET  /info                  the owner's generation and counts.  DELETE /owner  ends the owner (and all it holds).
  GET  /healthz               200; never needs the key.
A POST with a body sends it as application/json (application/octet-stream for POST /objects); a request from a
web browser (one with an Origin or Sec-Fetch-Site header) is refused, so that no web page can drive the gateway.
Arguments are JSON values; {"$bytes": base64} is bytes and {"$ref": id} an object on the cluster (a put, or a
task's result), resolved there, so data crosses the LAN once. Results: JSON values, bytes inside them as
{"$bytes"}; a finished call whose value is bytes answers with the bytes themselves (application/octet-stream).
No pickle crosses the wire.
Errors: {"error": {"code", "message", "remedy" (some)}} with 400 bad_request, 401 unauthorized, 403
browser_refused, 404 unknown_object / unknown_task / unknown_actor (also for one that expired: unused for
object_ttl_s), 409 name_taken, 413 body_too_large, 415 unsupported_media_type, 422 infeasible (no node could
ever run it), 503 owner_died, 507 store_full (the owner holds max_held_bytes: free objects first). A task's
own failure is a 200 answer with its state and error {"code", "message", "type", "traceback"}: remote_exception,
missing_module, missing_function, unserializable_result, timeout, cancelled, out_of_memory, worker_died,
node_died, actor_died, object_lost, runtime_env_failed, ray_error.
"""
import json
import logging
import math
import time
from typing import Any

import ray
import ray.exceptions
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from ray import serve

from raylan_common import contract
from raylan_common import compat  # noqa: F401 - before any @serve.ingress: FastAPI apps picklable on Ray 2.45
from raylan_common.http import (BadContentLength, BodyTooLarge, ServiceKey, keep_replica_grpc_on_loopback, key_verifier,
                                 read_body)
from raylan_common.http import route_path, send_json

from . import runner
from .owner import (DEFAULT_MAX_HELD_BYTES, DEFAULT_OBJECT_TTL_SECONDS, NAMESPACE, OWNER_NAME, Calls, Located, Owner,
                    ray_error, to_json)

logger = logging.getLogger("ray.serve")

#: Largest JSON request (a call's arguments), in bytes. Larger data goes by `put` and a ref.
DEFAULT_MAX_JSON_BYTES = 64 * 1024 * 1024
#: Largest `put`, in bytes.
DEFAULT_MAX_PUT_BYTES = 2 * 1024 * 1024 * 1024
#: Longest a request waits for a result before answering 202 (clients poll again).
MAX_WAIT_SECONDS = 60.0
#: A put declaring more bytes than this asks the owner for room before its body is read (a smaller one is read
#: at once: the owner checks again before storing it anyway).
ROOM_ASKED_ABOVE_BYTES = 1024 * 1024

OwnerActor = ray.remote(Owner)


class BrowserGuard:
    """Pure ASGI middleware: refuses what only a web browser sends, so that a web page open on a machine that
    reaches the gateway cannot drive it (it runs code; without a key, loopback is all that guards it). Checked
    after the key, before routing and before the body is read:
    - a request with an Origin or Sec-Fetch-Site header (browsers add them; raylan, curl and scripts do not):
      403 browser_refused. GET /healthz is answered anyway;
    - a POST, PUT or PATCH with a body (or a Content-Type) other than the route's: 415 unsupported_media_type.
      POST /objects takes application/octet-stream, every other route application/json; a bodyless POST
      without a Content-Type (a cancel) passes. A browser cannot send these types across origins without a
      CORS preflight, which the gateway never grants."""

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        method, path = scope.get("method", "GET"), route_path(scope)
        headers = dict(scope.get("headers") or [])
        browser = next((name for name in (b"origin", b"sec-fetch-site") if name in headers), None)
        if browser and not (method == "GET" and path == "/healthz"):
            if scope["type"] == "websocket":
                return await send({"type": "websocket.close", "code": 1008})
            return await send_json(send, 403, {"error": {"code": "browser_refused", "message": (
                f"the gateway refuses requests from web browsers (this one carries the header "
                f"{browser.decode().title()}): a web page must not drive a service that runs code"), "remedy": (
                "call it with raylan or the RayLAN Swift library, or from a script that sends no Origin header")}})
        if method in ("POST", "PUT", "PATCH"):
            wanted = "application/octet-stream" if method == "POST" and path == "/objects" else "application/json"
            given = headers.get(b"content-type", b"").decode("latin-1").partition(";")[0].strip().lower()
            has_body = headers.get(b"content-length", b"0").strip() not in (b"0", b"") or (
                b"transfer-encoding" in headers)
            if (given or has_body) and given != wanted:
                return await send_json(send, 415, {"error": {"code": "unsupported_media_type", "message": (
                    f"{method} {path} takes a body of type {wanted}, not "
                    f"{given or 'one without a Content-Type'}"), "remedy": f"send 'Content-Type: {wanted}'"}})
        return await self.app(scope, receive, send)


api = FastAPI(title="RayLAN gateway")
api.add_middleware(BrowserGuard)  # added first, so it runs after the key check (the last added runs first)
api.add_middleware(ServiceKey)


def refusal(code: str, message: str, status: int) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


def declared_size(request: Request) -> int | None:
    """The body's size from its Content-Length, None when it has none (chunked) or it is not a number."""
    declared = request.headers.get("content-length", "")
    return int(declared) if declared.isdigit() else None


def render(answer: tuple[int, Any]) -> Response:
    status, body = answer
    if isinstance(body, (bytes, bytearray)):
        return Response(bytes(body), status_code=status, media_type="application/octet-stream")
    return JSONResponse(body, status_code=status)


def holds_ref(value: Any) -> bool:
    """Whether a JSON argument tree holds a {"$ref": …} (which only the owner can resolve)."""
    if isinstance(value, dict):
        return (len(value) == 1 and runner.REF in value) or any(holds_ref(item) for item in value.values())
    if isinstance(value, list):
        return any(holds_ref(item) for item in value)
    return False


def wait_of(value: str | None) -> float:
    try:
        wait = float(value) if value is not None else 0.0
    except ValueError:
        wait = 0.0
    return min(max(wait, 0.0), MAX_WAIT_SECONDS) if math.isfinite(wait) else 0.0


@serve.deployment(name="Gateway")
@serve.ingress(api)
class Gateway:
    def __init__(self, api_key: str | None = None, max_json_bytes: int = DEFAULT_MAX_JSON_BYTES,
                 max_put_bytes: int = DEFAULT_MAX_PUT_BYTES, code_uri: str | None = None,
                 max_held_bytes: int = DEFAULT_MAX_HELD_BYTES, object_ttl_s: float = DEFAULT_OBJECT_TTL_SECONDS,
                 api_key_sha256: str | None = None):
        keep_replica_grpc_on_loopback()
        self.service_key = key_verifier(api_key, api_key_sha256)
        self.max_json_bytes = max_json_bytes
        self.max_put_bytes = max_put_bytes
        self.max_held_bytes = max_held_bytes
        self.object_ttl_s = object_ttl_s
        # The owner runs RayLAN's cluster code too: the working directory this application was deployed with.
        self.code_uri = code_uri or (ray.get_runtime_context().runtime_env or {}).get("working_dir")
        self._owner = None
        owner = self.owner()
        # An owner left by an earlier version of the gateway runs other code: end it (with what it held).
        try:
            _, info = ray.get(owner.info.remote(), timeout=60)
            if info.get("code") != self.code_uri:
                logger.warning("Ending the gateway's owner from other code (%s)", info.get("code"))
                ray.kill(owner, no_restart=True)
                for _ in range(100):  # until Ray has freed the name
                    try:
                        ray.get_actor(OWNER_NAME, namespace=NAMESPACE)
                    except ValueError:
                        break
                    time.sleep(0.1)
                self._owner = None
                self.owner()
            elif (info.get("max_held_bytes"), info.get("object_ttl_s")) != (max_held_bytes, object_ttl_s):
                # Same code, other limits (a redeploy with new args): the owner takes them and keeps what it holds.
                ray.get(owner.set_limits.remote(max_held_bytes, object_ttl_s), timeout=60)
        except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError):
            self._owner = None
        # Calls that wait for their value and pass no refs run from here: nothing of theirs outlives the request.
        self.local = Calls()

    def owner(self):
        """The owner actor: the running one, or a new one when there is none (first start, or it died)."""
        if self._owner is None:
            options: dict[str, Any] = {"name": OWNER_NAME, "namespace": NAMESPACE, "lifetime": "detached",
                                       "get_if_exists": True, "num_cpus": 0, "max_concurrency": 10_000}
            if self.code_uri:
                options["runtime_env"] = {"working_dir": self.code_uri}
            self._owner = OwnerActor.options(**options).remote(
                self.code_uri, self.max_held_bytes, self.object_ttl_s)
        return self._owner

    async def answer(self, method: str, *args: Any) -> tuple[int, Any] | Response:
        """The owner's answer (status, body), or the owner_died refusal when it is gone."""
        owner = self.owner()
        try:
            return await getattr(owner, method).remote(*args)
        except (ray.exceptions.RayActorError, ray.exceptions.ActorUnavailableError) as error:
            return self.owner_gone(owner, error)

    async def ask(self, method: str, *args: Any) -> Response | Located:
        """Asks the owner; its answer rendered (a Located as it is, for the caller to read)."""
        answer = await self.answer(method, *args)
        if isinstance(answer, Response) or isinstance(answer[1], Located):
            return answer if isinstance(answer, Response) else answer[1]
        return render(answer)

    def owner_gone(self, owner, error: Exception) -> Response:
        if self._owner is owner:
            self._owner = None  # the next request starts a new owner
        logger.warning("The gateway's owner is gone: %s", str(error).splitlines()[0] if str(error) else error)
        return refusal("owner_died", (
            "the gateway's owner actor died while handling this request: the objects, results and actors it "
            "held are lost. Send the request again (a new owner starts) and put or create what it needs again"),
            503)

    async def json_body(self, request: Request) -> dict | Response:
        try:
            body = await read_body(request, self.max_json_bytes)
        except BadContentLength as error:
            return refusal("bad_request", str(error), 400)
        except BodyTooLarge:
            return refusal("body_too_large", (
                f"the request is over {self.max_json_bytes / 2**20:.0f} MiB: pass large data with put and a "
                f"ref rather than inline"), 413)
        try:
            spec = json.loads(body)
        except ValueError as error:
            return refusal("bad_request", f"the body is not JSON: {error}", 400)
        if not isinstance(spec, dict):
            return refusal("bad_request", "the body must be a JSON object", 400)
        spec["wait"] = wait_of(str(spec.get("wait", 0)))
        return spec

    @api.get("/healthz")
    def healthz(self) -> dict:
        return {"status": "ok"}

    @api.get("/info")
    async def info(self) -> Response:
        return await self.ask("info")

    @api.post("/call")
    async def call(self, request: Request) -> Response:
        spec = await self.json_body(request)
        if isinstance(spec, Response):
            return spec
        if spec["wait"] > 0 and spec.get("keep") is False and not holds_ref(spec.get("args")) and not holds_ref(
                spec.get("kwargs")):
            return render(await self.local.call(spec))
        return await self.ask("call", spec)

    @api.get("/tasks")
    async def tasks(self) -> Response:
        owned = await self.answer("list_tasks")
        if isinstance(owned, Response):
            return owned
        _, local = await self.local.list_tasks()
        return JSONResponse({"tasks": local["tasks"] + owned[1]["tasks"]})

    @api.get("/tasks/{task_id}")
    async def task(self, task_id: str) -> Response:
        if self.local.knows(task_id):
            return render(await self.local.task_status(task_id))
        return await self.ask("task_status", task_id)

    @api.get("/tasks/{task_id}/result")
    async def result(self, task_id: str, wait: str | None = None) -> Response:
        if self.local.knows(task_id):
            return render(await self.local.task_result(task_id, wait_of(wait)))
        return await self.ask("task_result", task_id, wait_of(wait))

    @api.post("/tasks/{task_id}/cancel")
    async def cancel(self, task_id: str) -> Response:
        if self.local.knows(task_id):
            return render(await self.local.cancel(task_id))
        return await self.ask("cancel", task_id)

    @api.post("/objects")
    async def put(self, request: Request) -> Response:
        declared = declared_size(request)
        if declared is not None and ROOM_ASKED_ABOVE_BYTES < declared <= self.max_put_bytes:
            # Refused (store_full) before a byte of the body is read when the owner has no room for it.
            room = await self.answer("room", declared)
            if isinstance(room, Response):
                return room
            if room[0] != 200:
                return render(room)
        try:
            body = await read_body(request, self.max_put_bytes)
        except BadContentLength as error:
            return refusal("bad_request", str(error), 400)
        except BodyTooLarge:
            return refusal("body_too_large", (
                f"the object is over {self.max_put_bytes / 2**30:.1f} GiB, the most one put may send: split it, "
                f"or read it on the cluster"), 413)
        # The owner puts it (Ray ≥ 2.56 has no ray.put(…, _owner=…)), so that it outlives this replica.
        return await self.ask("put", bytes(body))

    @api.get("/objects")
    async def objects(self) -> Response:
        return await self.ask("list_objects")

    @api.get("/objects/{object_id}")
    async def get(self, object_id: str, wait: str | None = None) -> Response:
        """The value read here from the object store (the owner hands out the ref, not the bytes)."""
        answer = await self.ask("locate", object_id, wait_of(wait))
        if not isinstance(answer, Located):
            return answer
        try:
            value = await answer.ref
        except Exception as error:  # lost with its node, or the owner died meanwhile
            return JSONResponse({"id": object_id, "state": "failed", "error": ray_error(error)})
        if isinstance(value, bytes):
            return Response(value, media_type="application/octet-stream")
        return JSONResponse({"value": to_json(value)})

    @api.delete("/objects/{object_id}")
    async def free(self, object_id: str) -> Response:
        return await self.ask("free", object_id)

    @api.post("/actors")
    async def create_actor(self, request: Request) -> Response:
        spec = await self.json_body(request)
        if isinstance(spec, Response):
            return spec
        return await self.ask("create_actor", spec)

    @api.get("/actors")
    async def actors(self) -> Response:
        return await self.ask("list_actors")

    @api.get("/actors/{actor_id}")
    async def actor(self, actor_id: str, wait: str | None = None) -> Response:
        return await self.ask("actor_status", actor_id, wait_of(wait))

    @api.post("/actors/{actor_id}/call")
    async def call_actor(self, actor_id: str, request: Request) -> Response:
        spec = await self.json_body(request)
        if isinstance(spec, Response):
            return spec
        return await self.ask("call_actor", actor_id, spec)

    @api.delete("/actors/{actor_id}")
    async def kill_actor(self, actor_id: str) -> Response:
        return await self.ask("kill_actor", actor_id)

    @api.delete("/owner")
    async def end_owner(self) -> Response:
        """Ends the owner: every object, result and actor it holds goes with it (`raylan gateway down`)."""
        owner = self.owner()
        ray.kill(owner, no_restart=True)
        self._owner = None
        return JSONResponse({"ended": OWNER_NAME})


def build(args: dict) -> Any:
    """The application builder Serve calls with the config's `args`: api_key or api_key_sha256 (the key,
    or its verifier with key_salt on a cluster with a token; the replica keeps only the verifier; absent: open),
    max_json_bytes (64 MiB), max_put_bytes (2 GiB), code_uri (default: this application's working_dir),
    max_held_bytes (8 GiB: what the owner may hold, puts and kept results together), object_ttl_s (86400: an
    object or kept result unused this long is freed). Any other key is refused (contract.SHAPES["gateway_args"])."""
    contract.check("gateway_args", args)
    max_held_bytes = int(args.get("max_held_bytes") or DEFAULT_MAX_HELD_BYTES)
    object_ttl_s = float(args.get("object_ttl_s") or DEFAULT_OBJECT_TTL_SECONDS)
    if max_held_bytes < 0 or not math.isfinite(object_ttl_s) or object_ttl_s < 0:
        raise ValueError(f"max_held_bytes ({max_held_bytes}) and object_ttl_s ({object_ttl_s}) must be positive")
    return Gateway.bind(
        api_key_sha256=key_verifier(args.get("api_key"), args.get("api_key_sha256")),
        max_json_bytes=int(args.get("max_json_bytes") or DEFAULT_MAX_JSON_BYTES),
        max_put_bytes=int(args.get("max_put_bytes") or DEFAULT_MAX_PUT_BYTES),
        code_uri=args.get("code_uri"),
        max_held_bytes=max_held_bytes,
        object_ttl_s=object_ttl_s)
