"""What RayLAN's Serve applications share: the service key on every route, and a replica that forgets Ray's
token. Imported by `raylan_detect` and `raylan_gateway`."""
import ctypes
import hashlib
import hmac
import os
import re
from typing import Any, Callable

from fastapi.responses import JSONResponse
from ray import serve

from . import contract


class ServiceKey:
    """Pure ASGI middleware: with a key, every request but GET /healthz needs `Authorization: Bearer <key>`,
    checked before routing (so unknown paths and wrong methods are 401 too) and before the body is read.
    `key_of` returns the replica's key verifier (the key's SHA-256 as hex, see key_verifier), None or "" for an
    open service: the replica never holds the key itself."""

    def __init__(self, app: Callable, key_of: Callable[[], str | None] = lambda: replica_service_key()):
        self.app = app
        self.key_of = key_of

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        key = self.key_of()
        if not key or (scope["type"] == "http" and scope["method"] == "GET" and route_path(scope) == "/healthz"):
            return await self.app(scope, receive, send)
        given = dict(scope.get("headers") or []).get(b"authorization", b"")
        scheme, _, token = given.partition(b" ")
        if scheme.lower() == b"bearer" and hmac.compare_digest(verifier_of(token.strip()).encode(), key.encode()):
            return await self.app(scope, receive, send)
        if scope["type"] == "websocket":
            return await send({"type": "websocket.close", "code": 1008})
        why = "no Authorization header" if not given else (
            "the key is wrong" if scheme.lower() == b"bearer" else "only the Bearer scheme is accepted")
        await send_json(send, 401, contract.error_answer(contract.error("unauthorized", (
            f"this service needs its key as 'Authorization: Bearer <key>' ({why}); raylan reads the key from "
            f"the application's config on the Ray dashboard, or pass --key-file"))),
            extra_headers=[(b"www-authenticate", b"Bearer")])


def replica_service_key() -> str | None:
    """The key verifier of the deployment this replica runs (Serve's replica context holds the instance)."""
    return getattr(serve.get_replica_context().servable_object, "service_key", None)


def route_path(scope: dict) -> str:
    """The path under the application's route prefix (Serve puts the prefix in root_path)."""
    path, root = scope.get("path", ""), scope.get("root_path", "")
    return path[len(root):] if root and path.startswith(root) else path


async def send_json(send: Callable, status: int, content: dict, extra_headers: list | None = None) -> None:
    body = JSONResponse(content).body
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
        *(extra_headers or [])]})
    await send({"type": "http.response.body", "body": body})


def forget_ray_auth_token() -> None:
    """Removes Ray's cluster token (RAY_AUTH_TOKEN) from this replica's environment: code running here
    decodes images from the network and has no use for it. Ray's core worker has read it once at start
    (C++ AuthenticationTokenLoader, cached), so tasks, actors and objects keep working. The bytes are
    zeroed in place too, so /proc/<pid>/environ no longer shows them."""
    if not os.environ.get("RAY_AUTH_TOKEN"):
        return
    try:
        libc = ctypes.CDLL(None)
        libc.getenv.restype = ctypes.c_void_p
        address = libc.getenv(b"RAY_AUTH_TOKEN")
        if address:
            ctypes.memset(address, 0, len(ctypes.string_at(address)))
    except (OSError, AttributeError):  # no libc getenv here: os.environ alone
        pass
    os.environ.pop("RAY_AUTH_TOKEN", None)


def keep_replica_grpc_on_loopback() -> None:
    """On a private cluster (the node's address is loopback: RayLAN's embedded cluster), makes Serve's replica
    start its inter-deployment gRPC server on that address. Serve 2.60 binds it to every interface ("[::]:0",
    ray/serve/_private/replica.py, Replica._on_initialized), which would open each replica to the LAN however
    private the rest of the cluster is (behind Ray's token interceptor only where the cluster has a token). Called from the deployment's constructor, which Serve runs before
    it starts that server; a no-op on a Ray without it (2.45) and on a node with a LAN address."""
    try:
        import ray
        from ray.serve._private import replica
    except ImportError:
        return
    original = getattr(replica, "add_port_to_grpc_server", None)
    if original is None or getattr(original, "raylan_bound", False):
        return
    node = ray.util.get_node_ip_address()
    if node not in ("127.0.0.1", "::1"):
        return
    host = f"[{node}]" if ":" in node else node

    def bind_on_node(server: Any, address: str) -> Any:
        if address.startswith("[::]:"):
            address = f"{host}:{address[len('[::]:'):]}"
        return original(server, address)

    bind_on_node.raylan_bound = True  # type: ignore[attr-defined]
    replica.add_port_to_grpc_server = bind_on_node


def service_key(value: Any) -> str | None:
    """The `api_key` arg: a string, or None/"" for an open service. The value is never repeated."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ValueError(f"api_key must be a string, not {type(value).__name__}")
    return value


def verifier_of(key: str | bytes) -> str:
    """A key's verifier: its SHA-256 as 64 lower-case hex digits."""
    return hashlib.sha256(key.encode() if isinstance(key, str) else key).hexdigest()


def key_verifier(api_key: Any = None, api_key_sha256: Any = None) -> str | None:
    """The verifier an application checks requests against, from its deploy args: `api_key_sha256` (a cluster
    with a token: the config holds only the verifier and the salt the client derives the key with, never the
    key), else the SHA-256 of `api_key` (a cluster without a token keeps the key in clear); None for an open
    service. Neither value is ever repeated in an error."""
    if api_key_sha256 not in (None, ""):
        if not isinstance(api_key_sha256, str) or not re.fullmatch(r"[0-9a-f]{64}", api_key_sha256):
            raise ValueError("api_key_sha256 must be 64 lower-case hex digits")
        return api_key_sha256
    key = service_key(api_key)
    return verifier_of(key) if key else None


class BodyTooLarge(Exception):
    """A request body over its limit (from Content-Length, or counted while reading)."""


class BadContentLength(Exception):
    """A Content-Length that is not a number."""


async def read_body(request: Any, limit: int) -> bytearray:
    """A request's body, refused (BodyTooLarge) as soon as it is known to exceed `limit` bytes: from its
    Content-Length before reading, and while reading (a chunked body has none)."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise BadContentLength("Content-Length is not a number")
        if int(declared) > limit:
            raise BodyTooLarge()
    body = bytearray()
    async for chunk in request.stream():
        if len(body) + len(chunk) > limit:
            raise BodyTooLarge()
        body += chunk
    return body
