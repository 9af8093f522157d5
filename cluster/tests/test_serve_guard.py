"""The Serve proxy guard (raylan_common/serve_guard.py) and the service key's derivation shared with Swift."""
import asyncio
import hashlib
import hmac
import json

from raylan_common import serve_guard
from raylan_common.serve_guard import ServeGuard, is_service_key

TOKEN = "0123456789abcdef0123456789abcdef"


def derive(token: str, salt: str) -> bytes:
    """The key as Swift's ServiceKey.derive(from:salt:) makes it."""
    mac = hmac.new(token.encode(), b"raylan-service-key/v1/" + salt.encode(), hashlib.sha256).hexdigest()
    return f"rlk1.{salt}.{mac}".encode()


def run(guard: ServeGuard, scope: dict) -> tuple[list, list]:
    reached, sent = [], []

    async def app(scope, receive, send):
        reached.append(scope["path"])

    async def receive():
        raise AssertionError("the guard read the body")

    async def send(message):
        sent.append(message)

    guard.app = app
    asyncio.run(guard(scope, receive, send))
    return reached, sent


def request(path: str, authorization: bytes | None = None, method: str = "POST", kind: str = "http") -> dict:
    headers = [(b"content-length", b"999999999")]
    if authorization is not None:
        headers.append((b"authorization", authorization))
    return {"type": kind, "method": method, "path": path, "headers": headers}


def test_a_derived_key_passes_and_anything_else_is_401_before_the_body():
    guard = ServeGuard(None, token=TOKEN)
    good = derive(TOKEN, "5a1t")
    assert run(guard, request("/raylan/m/detect", b"Bearer " + good))[0] == ["/raylan/m/detect"]
    wrong = [None, b"", b"Bearer", b"Basic " + good, b"Bearer " + derive("another-token", "5a1t"),
             b"Bearer " + good[:-1] + b"0" if good[-1:] != b"0" else b"Bearer " + good[:-1] + b"1",
             b"Bearer rlk1.5a1t", b"Bearer " + good.replace(b"rlk1", b"rlk2"), b"Bearer " + TOKEN.encode()]
    for authorization in wrong:
        reached, sent = run(guard, request("/raylan/m/detect", authorization))
        assert reached == [], authorization
        assert sent[0]["status"] == 401
        assert json.loads(sent[1]["body"])["error"]["code"] == "unauthorized"
        assert TOKEN.encode() not in sent[1]["body"]


def test_health_checks_stay_open_and_websockets_are_closed():
    guard = ServeGuard(None, token=TOKEN)
    for path in ("/-/healthz", "/raylan/m/healthz"):
        assert run(guard, request(path, method="GET"))[0] == [path]
    assert run(guard, request("/raylan/m/healthz", method="POST"))[0] == []
    assert run(guard, request("/-/routes", method="GET"))[0] == []
    # Only the whole health paths: anything else that merely ends in /healthz would reach a replica.
    for path in ("/raylan/m/x/healthz", "/raylan/m/detect/../healthz", "/raylan/m/detect%2F..%2Fhealthz", "/healthz",
                 "/x/-/healthz"):
        assert run(guard, request(path, method="GET"))[0] == [], path
    reached, sent = run(guard, request("/raylan/m/ws", kind="websocket"))
    assert reached == [] and sent == [{"type": "websocket.close", "code": 1008}]


def test_without_a_token_the_guard_lets_everything_through(monkeypatch):
    monkeypatch.delenv("RAY_AUTH_TOKEN", raising=False)
    assert run(ServeGuard(None), request("/raylan/m/detect"))[0] == ["/raylan/m/detect"]


def test_the_token_comes_from_rays_environment(monkeypatch):
    monkeypatch.setenv("RAY_AUTH_TOKEN", TOKEN + "\n")
    guard = ServeGuard(None)
    assert run(guard, request("/x", b"Bearer " + derive(TOKEN, "s")))[0] == ["/x"]
    assert run(guard, request("/x"))[0] == []


def test_the_key_form():
    assert is_service_key(derive(TOKEN, "ab"), TOKEN.encode())
    assert not is_service_key(derive(TOKEN, "a" * 129), TOKEN.encode())
    assert not is_service_key(b"rlk1..", TOKEN.encode())


def test_middlewares_is_what_serve_expects():
    from starlette.middleware import Middleware

    [middleware] = serve_guard.middlewares()
    assert isinstance(middleware, Middleware) and middleware.cls is ServeGuard


def test_the_golden_key_that_swift_derives_too():
    from pathlib import Path

    from raylan_common.http import verifier_of

    golden = json.loads((Path(__file__).parents[2] / "Tests/Fixtures/contracts/service-key.json").read_text())
    assert derive(golden["token"], golden["salt"]).decode() == golden["key"]
    assert is_service_key(golden["key"].encode(), golden["token"].encode())
    assert verifier_of(golden["key"]) == golden["verifier"]
