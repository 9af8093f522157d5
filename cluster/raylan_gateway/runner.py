"""What runs in the user's workers: the task that calls `module:function`, and the actor that hosts a
`module:Class`. The gateway's owner sends this module to the workers by value (cloudpickle), because a
worker runs in the user's working directory, where `raylan_gateway` is not importable: so it imports only
the standard library and Ray.

A task returns two objects (`num_returns=2`): its outcome, then its value. The value object holds what the
function returned in wire form (bytes, or a JSON tree whose bytes stay bytes), so that it can be passed on
by reference to other calls unchanged. The outcome is small: {"ok": True, "size": n} or
{"ok": False, "error": {"code", "message", "type", "traceback"}}. A Python exception is data here, never an
exception across Ray, so the owner never has to unpickle a class from the user's code.
"""
import asyncio
import importlib
import inspect
import json
import math
import traceback

import ray

#: Tags of a JSON object that stands for something JSON has not: {"$bytes": base64} and {"$ref": id}.
BYTES = "$bytes"
REF = "$ref"


class Missing(Exception):
    """The module, or a name in it, is not there: `code` is missing_module or missing_function."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def resolve(target: str, kind: str = "function"):
    """`module:name` (a dotted name after the colon reaches into classes) → the object."""
    module_name, _, attribute = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        # Only the module itself (or a package above it) missing is "missing"; a module that imports
        # something missing is the user's own exception, with its traceback.
        if error.name and (module_name == error.name or module_name.startswith(error.name + ".")):
            raise Missing("missing_module", (
                f"no module named '{module_name}' in the call's working directory or the cluster's Python")) from None
        raise
    value = module
    for part in attribute.split("."):
        if not hasattr(value, part):
            raise Missing("missing_function", f"the module '{module_name}' has no {kind} '{attribute}'")
        value = getattr(value, part)
    if not callable(value):
        raise Missing("missing_function", f"'{target}' is a {type(value).__name__}, not a {kind}")
    return value


def failure(error: BaseException, code: str = "remote_exception") -> dict:
    """An exception as data: its type, message and traceback (the runner's own frames left out)."""
    if isinstance(error, Missing):
        return {"code": error.code, "message": error.message, "type": "", "traceback": ""}
    kind = type(error)
    name = kind.__qualname__ if kind.__module__ in ("builtins", "__main__") else f"{kind.__module__}.{kind.__qualname__}"
    frames = traceback.extract_tb(error.__traceback__)
    frames = [frame for frame in frames if frame.filename != __file__] or frames
    text = "Traceback (most recent call last):\n" + "".join(traceback.format_list(frames)) + "".join(
        traceback.format_exception_only(kind, error))
    return {"code": code, "message": str(error) or name, "type": name, "traceback": text}


def resolve_refs(value):
    """Object refs nested in lists and dicts, fetched (Ray resolves only top-level arguments itself)."""
    if isinstance(value, ray.ObjectRef):
        return ray.get(value)
    if isinstance(value, list):
        return [resolve_refs(item) for item in value]
    if isinstance(value, dict):
        return {key: resolve_refs(item) for key, item in value.items()}
    return value


def arguments(n_args: int, names: list, values: tuple) -> tuple:
    positional = [resolve_refs(value) for value in values[:n_args]]
    keywords = {name: resolve_refs(value) for name, value in zip(names, values[n_args:])}
    return positional, keywords


def wire(value, path: str = "result"):
    """A result in wire form: bytes as bytes, JSON values as they are, tuples as lists, NumPy arrays and
    scalars through `tolist()`. Anything else raises TypeError naming where it sits."""
    if type(value).__module__ == "numpy" and hasattr(value, "tolist"):  # before float/str: np.float64 is a float
        return wire(value.tolist(), path)
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise TypeError(f"{path} is {value}, which JSON cannot hold")
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, (list, tuple)):
        return [wire(item, f"{path}[{index}]") for index, item in enumerate(value)]
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"{path} has the key {key!r}; JSON objects need string keys")
            out[key] = wire(item, f"{path}[{key!r}]")
        return out
    raise TypeError(f"{path} is a {type(value).__module__}.{type(value).__qualname__}, which has no wire form")


def wire_size(value) -> int:
    """Bytes the value takes on the wire, bytes counted raw (what `get` sends)."""
    if isinstance(value, bytes):
        return len(value)
    return len(json.dumps(value, default=lambda b: "x" * len(b), separators=(",", ":")))


def failed(error: dict) -> tuple:
    """A task's (outcome, value) when it gave no value."""
    return {"ok": False, "error": error}, None


def finish(call):
    """Runs `call` (awaiting a coroutine it returns) → (outcome, value)."""
    try:
        value = call()
        if inspect.iscoroutine(value):
            value = asyncio.run(value)
    except Exception as error:  # the user's exception is the result; KeyboardInterrupt (cancel) is not
        return failed(failure(error))
    try:
        value = wire(value)
    except TypeError as error:
        return failed({"code": "unserializable_result", "message": (
            f"{error}: return JSON values (numbers, strings, lists, dicts), bytes, or NumPy arrays"),
            "type": "", "traceback": ""})
    return {"ok": True, "size": wire_size(value)}, value


def run(target: str, n_args: int, names: list, *values):
    """The task behind every call: imports `target`, calls it, returns (outcome, value)."""
    try:
        function = resolve(target)
    except Exception as error:  # Missing, or the module raised while importing
        return failed(failure(error))
    args, kwargs = arguments(n_args, names, values)
    return finish(lambda: function(*args, **kwargs))


class Host:
    """The actor behind every remote `module:Class`: makes the instance, then calls its methods by name."""

    def __init__(self, target: str, n_args: int, names: list, *values):
        self.instance = None
        self.error = None
        try:
            cls = resolve(target, kind="class")
            args, kwargs = arguments(n_args, names, values)
            self.instance = cls(*args, **kwargs)
        except Exception as error:
            self.error = failure(error)

    def ready(self):
        """None once the instance exists, else why it could not be made."""
        return self.error

    def call(self, method: str, n_args: int, names: list, *values):
        if self.error is not None:
            return failed(self.error)
        function = getattr(self.instance, method, None)
        if method.startswith("_") or not callable(function):
            return failed(failure(Missing(
                "missing_function", f"the actor's class {type(self.instance).__qualname__} has no method '{method}'")))
        args, kwargs = arguments(n_args, names, values)
        return finish(lambda: function(*args, **kwargs))
