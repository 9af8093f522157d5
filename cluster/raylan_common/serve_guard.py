"""Serve's proxy guard on the clusters RayLAN starts (the embedded cluster, `raylan up --head`): a request that
carries no RayLAN service key is answered 401 by Serve's HTTP proxy itself, so anonymous requests never take a
replica's slot (max_ongoing_requests) nor reach any application code.

Installed through Ray's hook `RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH=raylan_serve_guard:middlewares`: RayLAN
copies this file, alone, as `raylan_serve_guard.py` into a folder of the cluster's temp dir that it puts on the
cluster's PYTHONPATH (the proxy imports the callback before any application's working_dir exists). So this module
imports nothing of RayLAN's and only the standard library and Starlette.

A RayLAN service key on a cluster with a token is `rlk1.<salt>.<mac>` with mac = HMAC-SHA256(token,
"raylan-service-key/v1/" + salt) as hex (Sources/RayLANCore/Cluster/ServiceKey.swift derives it): the guard checks it
with the cluster's token alone (RAY_AUTH_TOKEN, which Ray gives its worker processes), in constant time, with no
state and no I/O. Each application still checks its own key (its verifier) behind the guard. Without a token
(a cluster started with --insecure) the guard lets everything through: there is nothing to check against.

Health checks stay open: GET or HEAD of `/-/healthz` (Serve's) and of `/raylan/<name>/healthz` (an application's).
"""
from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import re
from typing import Any, Callable

PREFIX = b"rlk1"
LABEL = b"raylan-service-key/v1/"


def is_service_key(presented: bytes, token: bytes) -> bool:
    """Whether `presented` is a key that `token` derives (`rlk1.<salt>.<hex mac>`)."""
    parts = presented.split(b".")
    if len(parts) != 3 or parts[0] != PREFIX or not 1 <= len(parts[1]) <= 128 or len(parts[2]) != 64:
        return False
    expected = hmac.new(token, LABEL + parts[1], hashlib.sha256).hexdigest().encode()
    return hmac.compare_digest(parts[2], expected)


#: The health checks left open: Serve's own, and a RayLAN application's (`/raylan/<name>/healthz`, which the
#: application answers without its key). Matched whole: `/raylan/x/detect/healthz` or an encoded `..` is not one.
HEALTH = re.compile(r"/-/healthz|/raylan/[A-Za-z0-9._-]+/healthz")


def is_health_check(scope: dict) -> bool:
    return scope.get("method") in ("GET", "HEAD") and HEALTH.fullmatch(scope.get("path", "")) is not None


class ServeGuard:
    """Pure ASGI middleware in Serve's proxy: every request but a health check needs `Authorization: Bearer
    <a RayLAN service key of this cluster>`, checked before routing and before the body is read."""

    def __init__(self, app: Callable, token: str | None = None):
        self.app = app
        self.token = (os.environ.get("RAY_AUTH_TOKEN", "") if token is None else token).strip().encode()
        if not self.token:
            logging.getLogger("ray.serve").warning(
                "RayLAN's Serve guard has no cluster token (RAY_AUTH_TOKEN): it lets every request through, and "
                "each application checks its own key")

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> Any:
        if scope["type"] not in ("http", "websocket") or not self.token:
            return await self.app(scope, receive, send)
        if scope["type"] == "http" and is_health_check(scope):
            return await self.app(scope, receive, send)
        given = dict(scope.get("headers") or []).get(b"authorization", b"")
        scheme, _, key = given.partition(b" ")
        if scheme.lower() == b"bearer" and is_service_key(key.strip(), self.token):
            return await self.app(scope, receive, send)
        if scope["type"] == "websocket":
            return await send({"type": "websocket.close", "code": 1008})
        body = json.dumps({"error": {"code": "unauthorized", "message": (
            "this cluster's Serve proxy answers only requests with a RayLAN service key "
            "('Authorization: Bearer <key>'); raylan derives the key from the cluster's token")}}).encode()
        await send({"type": "http.response.start", "status": 401, "headers": [
            (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
            (b"www-authenticate", b"Bearer")]})
        await send({"type": "http.response.body", "body": body})


def middlewares() -> list:
    """What Ray's RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH calls in the proxy: the guard, as Starlette middleware."""
    from starlette.middleware import Middleware

    return [Middleware(ServeGuard)]
