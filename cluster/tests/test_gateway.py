"""The gateway's pure parts: the runner's wire form, imports and calls, and the owner's checks (no Ray started)."""
import sys
import time
import uuid
from decimal import Decimal

import numpy as np
import pytest

from raylan_gateway import runner
from raylan_gateway.owner import Owner, Refused, Stored, number, target_of, to_json
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

@pytest.fixture
def owner():
    owner = object.__new__(Owner)
    owner.generation, owner.started = "0123abcd", time.time()
    owner.objects, owner.tasks, owner.aliases = {}, {}, {}
    owner.node_resources, owner.nodes_read = [], time.monotonic()
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
