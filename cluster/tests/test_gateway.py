"""The gateway's pure parts: the runner's wire form, imports and calls, the owner's checks, its byte cap and
expiry, and the ingress's refusals over HTTP with the owner in process (no Ray started)."""
import asyncio
import itertools
import sys
import time
import uuid
from decimal import Decimal
from types import SimpleNamespace

import numpy as np
import pytest
from raylan_common.http import verifier_of
from fastapi.testclient import TestClient

import raylan_gateway.app as app
import raylan_gateway.owner as owner_module
from raylan_gateway import runner
from raylan_gateway.owner import Calls, Owner, Refused, Stored, Task, number, target_of, to_json
from raylan_gateway.runner import Host, Missing, resolve, run, wire

USER_CODE = '''
import asyncio
def echo(*args, **kwargs):
    return {"args": list(args), "kwargs": kwargs}
def blob(n):
    return b"x" * n
def user_fails(x):
    raise ValueError(f"bad value {x}")
def unwireable():
    return {"a": [1, object()]}
async def later(x):
    await asyncio.sleep(0)
    return x * 2
NOT_CALLABLE = 3
class Counter:
    def __init__(self, start=0):
        if start < 0:
            raise RuntimeError("start must not be negative")
        self.count = start
    def add(self, n=1):
        self.count += n
        return self.count
    def _secret(self):
        return "hidden"
    @staticmethod
    def twice(x):
        return 2 * x
'''


@pytest.fixture
def user(tmp_path, monkeypatch):
    """A fresh user module (unique name, so sys.modules never serves an older test's) and a broken one."""
    name = f"gw_user_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(USER_CODE)
    (tmp_path / f"{name}_broken.py").write_text("import gw_no_such_dependency_xyz\n\ndef f():\n    return 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None), sys.modules.pop(f"{name}_broken", None)


# MARK: wire

@pytest.mark.parametrize("value", [b"ab", bytearray(b"ab"), memoryview(b"ab")])
def test_wire_bytes_like_becomes_bytes(value):
    out = wire(value)
    assert type(out) is bytes and out == b"ab"


def test_wire_tuples_nested_dicts_and_numpy():
    value = {"t": (1, (2.5, "s")), "d": {"b": bytearray(b"z"), "n": None, "ok": True},
             "a": np.arange(6, dtype=np.int32).reshape(2, 3), "i": np.int64(7), "f": np.float32(0.5)}
    out = wire(value)
    assert out == {"t": [1, [2.5, "s"]], "d": {"b": b"z", "n": None, "ok": True}, "a": [[0, 1, 2], [3, 4, 5]],
                   "i": 7, "f": 0.5}
    assert type(out["t"][1]) is list and type(out["d"]["b"]) is bytes
    assert type(out["a"][0][0]) is int and type(out["i"]) is int and type(out["f"]) is float
    assert isinstance(wire(np.float64(1.5)), float) and wire(np.float64(1.5)) == 1.5


@pytest.mark.parametrize("value,path", [
    ([float("nan")], "result[0]"),
    ({"a": [1, float("inf")]}, "result['a'][1]"),
    (np.array([1.0, np.nan]), "result[1]"),
])
def test_wire_non_finite_floats_name_their_path(value, path):
    with pytest.raises(TypeError, match=r"^" + path.replace("[", r"\[").replace("]", r"\]") + " is"):
        wire(value)


def test_wire_refuses_non_string_keys_and_objects():
    with pytest.raises(TypeError, match="key 1"):
        wire({"ok": {1: "x"}})
    with pytest.raises(TypeError, match=r"result\[0\] is a decimal\.Decimal"):
        wire([Decimal("1.5")])
    with pytest.raises(TypeError, match=r"result\['k'\] is a builtins\.object"):
        wire({"k": object()})


# MARK: resolve

def test_resolve_functions_and_class_members(user):
    assert resolve(f"{user}:blob")(3) == b"xxx"
    assert resolve(f"{user}:Counter.twice")(4) == 8
    assert resolve(f"{user}:Counter", kind="class")(5).count == 5


@pytest.mark.parametrize("target,code", [
    ("gw_missing_module_xyz:f", "missing_module"),
    ("gw_missing_pkg_xyz.sub:f", "missing_module"),
    ("{user}:absent", "missing_function"),
    ("{user}:Counter.absent", "missing_function"),
    ("{user}:NOT_CALLABLE", "missing_function"),
    ("{user}:", "missing_function"),
])
def test_resolve_missing_is_named(user, target, code):
    with pytest.raises(Missing) as error:
        resolve(target.format(user=user))
    assert error.value.code == code


def test_resolve_a_module_that_imports_something_missing_is_the_users_error(user):
    with pytest.raises(ModuleNotFoundError) as error:
        resolve(f"{user}_broken:f")
    assert not isinstance(error.value, Missing) and error.value.name == "gw_no_such_dependency_xyz"
    outcome, value = run(f"{user}_broken:f", 0, [])
    assert value is None and outcome["error"]["code"] == "remote_exception"
    assert outcome["error"]["type"] == "ModuleNotFoundError"


# MARK: run

def test_run_returns_outcome_and_value(user):
    assert run(f"{user}:blob", 1, [], 4) == ({"ok": True, "size": 4}, b"xxxx")
    outcome, value = run(f"{user}:echo", 1, ["k", "t"], "a", (1, 2), b"\x00")
    assert value == {"args": ["a"], "kwargs": {"k": [1, 2], "t": b"\x00"}}
    assert outcome == {"ok": True, "size": runner.wire_size(value)}
    assert runner.wire_size({"a": [1, 2]}) == len('{"a":[1,2]}') and runner.wire_size([b"abc"]) == len('["xxx"]')


def test_run_user_exception_is_data_without_runner_frames(user):
    outcome, value = run(f"{user}:user_fails", 1, [], 7)
    assert value is None and outcome["ok"] is False
    error = outcome["error"]
    assert (error["code"], error["type"], error["message"]) == ("remote_exception", "ValueError", "bad value 7")
    assert "user_fails" in error["traceback"] and "ValueError: bad value 7" in error["traceback"]
    assert "runner.py" not in error["traceback"]


def test_run_unserializable_result(user):
    outcome, value = run(f"{user}:unwireable", 0, [])
    assert value is None and outcome["ok"] is False
    assert outcome["error"]["code"] == "unserializable_result"
    assert "result['a'][1]" in outcome["error"]["message"]


def test_run_missing_and_coroutines(user):
    outcome, value = run(f"{user}:absent", 0, [])
    assert value is None and outcome["ok"] is False and outcome["error"]["code"] == "missing_function"
    assert run(f"{user}:later", 0, ["x"], 21) == ({"ok": True, "size": 2}, 42)


# MARK: Host

def test_host_constructor_error_is_kept(user):
    host = Host(f"{user}:Counter", 0, ["start"], -1)
    error = host.ready()
    assert (error["code"], error["type"], error["message"]) == ("remote_exception", "RuntimeError",
                                                                "start must not be negative")
    assert host.call("add", 0, []) == ({"ok": False, "error": error}, None)
    missing = Host(f"{user}:Nope", 0, [])
    assert missing.ready()["code"] == "missing_function" and "class 'Nope'" in missing.ready()["message"]


def test_host_calls_public_methods_only(user):
    host = Host(f"{user}:Counter", 1, [], 10)
    assert host.ready() is None
    assert host.call("add", 0, ["n"], 5) == ({"ok": True, "size": 2}, 15)
    assert host.call("add", 0, []) == ({"ok": True, "size": 2}, 16)
    for method in ("_secret", "__init__", "absent", "count"):
        outcome, value = host.call(method, 0, [])
        assert value is None and outcome["ok"] is False and outcome["error"]["code"] == "missing_function"
        assert method in outcome["error"]["message"]


# MARK: owner helpers

@pytest.mark.parametrize("value", [True, False, -1, -0.5, float("nan"), float("inf"), "3", [1]])
def test_number_refuses(value):
    with pytest.raises(Refused) as error:
        number({"k": value}, "k")
    assert error.value.code == "bad_request"


def test_number_accepts():
    assert number({}, "k") is None and number({"k": None}, "k") is None
    assert number({"k": 0}, "k") == 0 and number({"k": 2.5}, "k") == 2.5
    assert number({"k": -1}, "k", low=-1) == -1


@pytest.mark.parametrize("target", ["nocolon", ":x", "x:", ":", "", None, 3])
def test_target_of_refuses(target):
    with pytest.raises(Refused) as error:
        target_of({"function": target}, "function")
    assert error.value.code == "bad_request"
    assert target_of({"function": "mod.sub:Cls.f"}, "function") == "mod.sub:Cls.f"


def test_to_json_encodes_bytes_everywhere():
    assert to_json({"a": [b"hi", {"b": b""}], "n": 1.5, "s": "x"}) == {
        "a": [{"$bytes": "aGk="}, {"b": {"$bytes": ""}}], "n": 1.5, "s": "x"}


# MARK: Owner.decode and check_feasible

class Clock:
    """The owner's clock, moved by the test."""

    def __init__(self, now: float = 1000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def owner(monkeypatch):
    """An Owner without Ray: `ray.put` stands in (its calls in owner.puts), time is owner.clock (a Clock), and
    the sweep counts as started (tests call expire() themselves)."""
    owner = object.__new__(Owner)
    owner.generation, owner.started = "0123abcd", time.time()
    owner.objects, owner.tasks, owner.aliases, owner.expired = {}, {}, {}, {}
    owner.node_resources, owner.nodes_read = [], time.monotonic()
    owner.max_held_bytes, owner.object_ttl_s = owner_module.DEFAULT_MAX_HELD_BYTES, 3600.0
    owner.clock, owner.sweeper = Clock(), SimpleNamespace(done=lambda: False)
    owner.puts = []
    numbers = itertools.count(1)

    def put(data):
        owner.puts.append(data)
        return SimpleNamespace(hex=lambda n=next(numbers): f"{n:040x}", data=data)

    monkeypatch.setattr(owner_module.ray, "put", put)
    return owner


def test_decode_bytes_and_trees(owner):
    assert owner.decode({"$bytes": "aGk="}) == b"hi"
    assert owner.decode([{"x": {"$bytes": ""}}, 1, "s"]) == [{"x": b""}, 1, "s"]
    assert owner.decode({"$bytes": "aGk=", "other": 1}) == {"$bytes": "aGk=", "other": 1}
    for bad in ("not base64!", "aG!k=", "aGk", 12):
        with pytest.raises(Refused) as error:
            owner.decode({"$bytes": bad})
        assert error.value.code == "bad_request"


def test_decode_refs(owner):
    stored = Stored("0123abcd-ff00", object(), 3, time.time())
    owner.objects[stored.id] = stored
    owner.aliases["mine"] = stored.id
    assert owner.decode({"$ref": stored.id}) is stored.ref
    assert owner.decode([{"$ref": "mine"}]) == [stored.ref]
    for given, code in [("deadbeef-ff00", "owner_died"), ("0123abcd-ffff", "unknown_object"),
                        ("whatever", "unknown_object"), (5, "bad_request")]:
        with pytest.raises(Refused) as error:
            owner.decode({"$ref": given})
        assert error.value.code == code, given


def test_check_feasible(owner):
    owner.node_resources = [{"CPU": 8.0, "memory": 16e9}, {"CPU": 4.0, "memory": 8e9}]
    with pytest.raises(Refused) as error:
        owner.check_feasible({"num_cpus": 1, "num_gpus": 1})
    assert error.value.code == "infeasible" and "no node has a GPU" in error.value.message
    owner.check_feasible({"num_cpus": 8, "memory": 1e9})
    owner.check_feasible({})
    owner.node_resources = [{"CPU": 16.0}, {"CPU": 2.0, "GPU": 1.0}]
    owner.check_feasible({"num_cpus": 2, "num_gpus": 1})
    with pytest.raises(Refused) as error:
        owner.check_feasible({"num_cpus": 4, "num_gpus": 1})
    assert error.value.code == "infeasible" and "all of CPU 4, GPU 1 at once" in error.value.message
    with pytest.raises(Refused) as error:
        owner.check_feasible({"num_cpus": 1, "resources": {"tpu": 1}})
    assert error.value.code == "infeasible"


def test_options_check_their_spec(owner):
    owner.node_resources = [{"CPU": 4.0, "GPU": 1.0}]
    assert owner.options({}, actor=False) == {"num_cpus": 1, "max_retries": 0, "num_returns": 2}
    assert owner.options({"resources": {"gpus": 1, "cpus": 0}}, actor=True) == {"num_cpus": 0, "num_gpus": 1}
    for spec in ({"resources": [1]}, {"resources": {"cpus": -1}}, {"runtime_env": {"conda": "x"}},
                 {"runtime_env": {"working_dir": "./here"}}):
        with pytest.raises(Refused) as error:
            owner.options(spec, actor=False)
        assert error.value.code == "bad_request", spec
    assert owner.arguments({"args": [{"$bytes": "aGk="}], "kwargs": {"k": 1}}) == (1, ["k"], [b"hi", 1])


def test_a_delivered_call_is_not_held_until_the_uncollected_timeout():
    """watch() returns once the task ends; a result not kept is forgotten later by id, so nothing holds the
    task (and its object refs) after the answer delivered it."""
    import asyncio
    import gc
    import weakref

    from raylan_gateway.owner import Calls, Task

    async def scenario():
        calls = object.__new__(Calls)
        calls.tasks, calls.aliases = {}, {}
        outcome = asyncio.get_running_loop().create_future()
        outcome.set_result({"ok": True, "size": 2})
        value = asyncio.get_running_loop().create_future()
        value.set_result([])
        task = Task("g-1", "m:f", outcome, value, time.time(), None, keep=False)
        calls.tasks[task.id] = task
        await asyncio.wait_for(calls.watch(task), 2)  # not the 10-minute wait
        status, view, _ = await calls.outcome(task, 0)
        assert (status, view["state"]) == (200, "finished")
        assert task.id not in calls.tasks  # forgotten once delivered
        held = weakref.ref(task)
        del task, outcome, value
        gc.collect()
        return held, calls

    held, calls = asyncio.run(scenario())
    assert held() is None, "the delivered task is still referenced"
    calls.forget_uncollected("g-1")  # the timer's later call finds nothing to forget


def test_a_finished_calls_bytes_are_its_answer_raw_and_other_values_json():
    """A value that is bytes comes back as the answer's body (the app renders bytes as application/octet-stream),
    not {"$bytes": base64} inside JSON; any other value as {"value": JSON}."""
    async def answer_for(result):
        calls = object.__new__(Calls)
        calls.tasks, calls.aliases = {}, {}
        loop = asyncio.get_running_loop()
        value = loop.create_future()
        value.set_result(result)
        task = Task("g-1", "m:f", None, value, time.time(), None, keep=True, state="finished")
        task.done.set()
        return await calls.answer(task, 0)

    piece = bytes(range(256)) * 3
    assert asyncio.run(answer_for(piece)) == (200, piece)
    status, view = asyncio.run(answer_for({"a": b"hi"}))
    assert status == 200 and view["state"] == "finished" and view["value"] == {"a": {"$bytes": "aGk="}}
    response = app.render((200, piece))
    assert response.body == piece and response.media_type == "application/octet-stream"


# MARK: the owner's byte cap and expiry

def ended_task(owner: Owner, size: int, keep: bool = True, alias: str | None = None) -> Task:
    """A finished task the owner holds (its result `size` bytes), as watch() leaves one."""
    task = Task(owner.new_id(uuid.uuid4().hex), "m:f", None, f"value of {size}", time.time(), None, keep=keep,
                state="finished", size=size, used=owner.clock())
    task.done.set()
    owner.tasks[task.id] = task
    if alias:
        owner.aliases[alias] = task.id
    return task


def test_a_put_over_the_cap_is_refused_before_it_is_stored(owner):
    owner.max_held_bytes = 1000
    status, first = asyncio.run(owner.put(b"a" * 600))
    assert status == 200 and owner.held_bytes() == 600
    for answer in (owner.room(500), owner.put(b"b" * 500)):
        status, body = asyncio.run(answer)
        assert status == 507 and body["error"]["code"] == "store_full"
        message, remedy = body["error"]["message"], body["error"]["remedy"]
        assert "holds 600 B of objects and results, and its cap is 1000 B (max_held_bytes 1000)" in message
        assert "a put of 500 B does not fit" in message
        assert "raylan free REF" in remedy and "max_held_bytes" in remedy
    assert owner.puts == [b"a" * 600], "the refused put reached the object store"
    assert list(owner.objects) == [first["ref"]] and owner.held_bytes() == 600
    assert asyncio.run(owner.room(400)) == (200, {"held_bytes": 600, "max_held_bytes": 1000})


def test_kept_results_count_and_freeing_makes_room(owner):
    owner.max_held_bytes = 1000
    _, put = asyncio.run(owner.put(b"a" * 600))
    result = ended_task(owner, 400, alias="mine")
    ended_task(owner, 10_000, keep=False).size = None  # a result whose size is not known counts nothing
    assert owner.held_bytes() == 1000
    _, listed = asyncio.run(owner.list_objects())
    assert (listed["total_bytes"], listed["max_held_bytes"]) == (1000, 1000)
    assert asyncio.run(owner.put(b"b"))[0] == 507
    # Full: a call that keeps its result is refused; one that waits for its value is not (it keeps nothing).
    owner.node_resources = [{"CPU": 4.0}]
    status, body = asyncio.run(owner.call({"function": "m:f", "keep": True}))
    assert status == 507 and "a call that keeps its result" in body["error"]["message"]
    owner.room_for_result({"function": "m:f", "wait": 5})
    assert asyncio.run(owner.free(put["ref"])) == (200, {"freed": put["ref"]})
    assert owner.held_bytes() == 400
    assert asyncio.run(owner.put(b"b" * 600))[0] == 200
    assert asyncio.run(owner.free("mine")) == (200, {"freed": result.id})
    assert owner.held_bytes() == 600 and asyncio.run(owner.put(b"c" * 400))[0] == 200


def test_expiry_frees_what_nobody_used_and_keeps_what_was_used(owner):
    owner.object_ttl_s = 3600
    clock = owner.clock
    ids = [asyncio.run(owner.put(data))[1]["ref"] for data in (b"got", b"argument", b"untouched")]
    got, argument, untouched = ids
    asked, unasked = ended_task(owner, 5, alias="asked-alias"), ended_task(owner, 7, alias="unasked-alias")
    running = ended_task(owner, 0)
    running.done.clear()
    clock.now += 2000
    assert asyncio.run(owner.locate(got, 0))[0] == 200  # a get
    assert owner.decode([{"$ref": argument}]) == [owner.objects[argument].ref]  # passed to a call
    assert asyncio.run(owner.task_status("asked-alias"))[0] == 200
    clock.now += 1600  # 3600 s since the untouched ones were made
    assert sorted(owner.expire()) == sorted([untouched, unasked.id, "unasked-alias"])
    assert set(owner.objects) == {got, argument} and set(owner.tasks) == {asked.id, running.id}
    assert owner.held_bytes() == len(b"got") + len(b"argument") + 5
    for answer, code in [(owner.locate(untouched, 0), "unknown_object"), (owner.free(untouched), "unknown_object"),
                         (owner.locate(unasked.id, 0), "unknown_object"),
                         (owner.task_result("unasked-alias", 0), "unknown_task")]:
        status, body = asyncio.run(answer)
        assert (status, body["error"]["code"]) == (404, code)
        assert "expired: nobody used it for 1 h (the gateway's object_ttl_s)" in body["error"]["message"]
    with pytest.raises(Refused, match="expired"):
        owner.decode({"$ref": untouched})
    assert asyncio.run(owner.locate("0123abcd-" + "f" * 40, 0))[1]["error"]["message"].startswith("no object")
    clock.now += 2000  # 3600 s since the others were last used; a running task never expires
    assert sorted(owner.expire()) == sorted([got, argument, asked.id, "asked-alias"])
    assert owner.objects == {} and set(owner.tasks) == {running.id}


def test_the_sweep_runs_expire_by_itself(owner):
    async def scenario():
        owner.object_ttl_s, owner.sweeper = 0.02, None  # a sweep every 10 ms of real time
        _, put = await owner.put(b"x")
        owner.clock.now += 1
        for _ in range(500):
            if not owner.objects:
                break
            await asyncio.sleep(0.01)
        owner.sweeper.cancel()
        return put["ref"]

    assert asyncio.run(scenario()) in owner.expired and owner.objects == {}


# MARK: the ingress over HTTP: browsers, content types, and the cap before the body is read

class OwnerHandle:
    """The owner actor's handle, in process: handle.method.remote(*args) is the owner's coroutine."""

    def __init__(self, owner: Owner):
        self.owner, self.asked = owner, []

    def __getattr__(self, name):
        method = getattr(self.owner, name)
        return SimpleNamespace(remote=lambda *args: self.asked.append(name) or method(*args))


@pytest.fixture
def gateway(owner, monkeypatch):
    """gateway(key=None) → the Gateway deployment's instance, with the owner fixture behind an in-process
    handle; the routes find it through Serve's replica context, as in a replica."""
    def make(key: str | None = None):
        cls = app.Gateway.func_or_class.__bases__[0]  # the class as written, without Serve's ASGI wrapper
        instance = cls.__new__(cls)
        instance.service_key, instance.code_uri = (verifier_of(key) if key else None), None  # as key_verifier makes it
        instance.max_json_bytes, instance.max_put_bytes = app.DEFAULT_MAX_JSON_BYTES, app.DEFAULT_MAX_PUT_BYTES
        instance.max_held_bytes, instance.object_ttl_s = owner.max_held_bytes, owner.object_ttl_s
        instance._owner = OwnerHandle(owner)
        instance.local = object.__new__(Calls)
        instance.local.tasks, instance.local.aliases = {}, {}
        monkeypatch.setattr("ray.serve.get_replica_context", lambda: SimpleNamespace(servable_object=instance))
        return instance

    return make


@pytest.fixture
def client():
    with TestClient(app.api, base_url="http://127.0.0.1") as client:
        yield client


BROWSER = [{"Origin": "http://localhost:3000"}, {"Origin": "null"}, {"Sec-Fetch-Site": "cross-site"},
           {"Sec-Fetch-Site": "same-origin"}]


@pytest.mark.parametrize("headers", BROWSER)
def test_a_keyless_gateway_refuses_browsers(gateway, client, headers):
    gateway()
    for method, path in [("GET", "/objects"), ("GET", "/info"), ("DELETE", "/owner"), ("POST", "/tasks/x/cancel"),
                         ("POST", "/nothing-here")]:
        response = client.request(method, path, headers=headers)
        assert response.status_code == 403, (method, path, response.text)
        assert response.json()["error"]["code"] == "browser_refused"
    response = client.post("/call", json={"function": "m:f"}, headers=headers)
    assert response.status_code == 403 and "web browsers" in response.json()["error"]["message"]
    assert client.get("/healthz", headers=headers).status_code == 200
    assert client.get("/objects").status_code == 200  # the same request without the browser's header


@pytest.mark.parametrize("path,content_type", [
    ("/call", "text/plain"), ("/call", "application/x-www-form-urlencoded"), ("/call", "multipart/form-data"),
    ("/call", None), ("/actors", "text/plain"), ("/actors/a/call", "text/plain;charset=UTF-8"),
    ("/tasks/x/cancel", "application/x-www-form-urlencoded"), ("/objects", "application/json"),
    ("/objects", "text/plain"), ("/objects", None),
])
def test_a_body_of_another_type_is_refused(gateway, client, owner, path, content_type):
    gateway()
    headers = {"Content-Type": content_type} if content_type else {}
    response = client.post(path, content=b'{"function": "m:f"}', headers=headers)
    assert response.status_code == 415, response.text
    error = response.json()["error"]
    wanted = "application/octet-stream" if path == "/objects" else "application/json"
    assert error["code"] == "unsupported_media_type" and f"Content-Type: {wanted}" in error["remedy"]
    assert owner.puts == [] and owner.tasks == {}


def test_what_the_swift_client_sends_passes(gateway, client, owner):
    """The Swift client: JSON bodies as application/json, a put as application/octet-stream, and a cancel, a
    GET or a DELETE without a body (nor a Content-Type)."""
    gateway()
    response = client.post("/objects", content=b"\x00\x01", headers={"Content-Type": "application/octet-stream"})
    assert response.status_code == 200 and owner.puts == [b"\x00\x01"]
    response = client.post("/call", content=b'{"function": "nocolon"}',
                           headers={"Content-Type": "application/json; charset=utf-8"})
    assert response.status_code == 400 and "'module:name'" in response.json()["error"]["message"]  # the owner's
    response = client.post("/tasks/0123abcd-ff/cancel")
    assert response.status_code == 404 and response.json()["error"]["code"] == "unknown_task"
    response = client.delete("/objects/0123abcd-ee")
    assert response.status_code == 404 and response.json()["error"]["code"] == "unknown_object"


def test_the_key_is_checked_first_then_the_browser(gateway, client):
    """With a key, a stranger's browser request is 401 (it learns nothing more); the browser checks run inside
    the key check for every gateway (they do not read the key)."""
    gateway(key="k3y-0f-th3-g4t3w4y")
    assert client.get("/objects", headers={"Origin": "http://localhost"}).status_code == 401
    assert client.post("/call", content=b"{}", headers={"Content-Type": "text/plain"}).status_code == 401
    # With the key, the browser checks still apply.
    keyed = {"Authorization": "Bearer k3y-0f-th3-g4t3w4y"}
    refused = client.get("/objects", headers={**keyed, "Origin": "http://localhost"})
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "browser_refused"
    wrong_type = client.post("/call", content=b"{}", headers={**keyed, "Content-Type": "text/plain"})
    assert wrong_type.status_code == 415
    assert [entry.cls for entry in app.api.user_middleware] == [app.ServiceKey, app.BrowserGuard]  # outermost first


def test_a_put_is_refused_for_the_cap_before_its_body_is_read(gateway, owner):
    """The route alone, on a raw ASGI call whose body must not be touched: the owner is asked for room from the
    declared Content-Length."""
    owner.max_held_bytes = 4 * 2**20
    owner.objects["0123abcd-aa"] = Stored("0123abcd-aa", object(), 3 * 2**20, time.time(), used=owner.clock())
    instance = gateway()
    sent = []

    async def receive():
        raise AssertionError("the body was read")

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/raylan/gateway/objects", "root_path": "/raylan/gateway",
             "headers": [(b"content-length", str(2 * 2**20).encode()),
                         (b"content-type", b"application/octet-stream")],
             "query_string": b"", "http_version": "1.1", "scheme": "http", "server": ("127.0.0.1", 8000)}
    asyncio.run(app.api(scope, receive, send))
    assert sent[0]["status"] == 507 and b'"store_full"' in sent[1]["body"] and b"2.0 MiB" in sent[1]["body"]
    assert instance._owner.asked == ["room"] and owner.puts == [] and list(owner.objects) == ["0123abcd-aa"]


@pytest.mark.parametrize("args", [{"max_held_bytes": -1}, {"object_ttl_s": -1}, {"object_ttl_s": float("nan")},
                                  {"object_ttl_s": float("inf")}])
def test_build_refuses_limits_below_zero_or_not_finite(args):
    with pytest.raises(ValueError, match="must be positive"):
        app.build(args)


def test_build_hands_the_limits_to_the_gateway():
    bound = app.build({"max_held_bytes": 1000, "object_ttl_s": 5})
    kwargs = bound._bound_deployment.init_kwargs
    assert (kwargs["max_held_bytes"], kwargs["object_ttl_s"]) == (1000, 5.0)
    defaults = app.build({})._bound_deployment.init_kwargs
    assert (defaults["max_held_bytes"], defaults["object_ttl_s"]) == (app.DEFAULT_MAX_HELD_BYTES,
                                                                      app.DEFAULT_OBJECT_TTL_SECONDS)
