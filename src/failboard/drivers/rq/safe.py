"""A look at rq's serialized job data and meta that never runs it.

rq pickles ``(func_name, instance, args, kwargs)`` by default (zlib-compressed in the job hash).
Unpickling runs whatever the bytes say, so the dashboard never does it: :func:`read_pickle`
walks the opcodes with :func:`pickletools.genops` — a parser, not an interpreter — and rebuilds
only plain values (str, bytes, numbers, None, bools, tuples, lists, dicts, sets). Anything that
would import or call (``GLOBAL``, ``REDUCE``, ``NEWOBJ``, ``BUILD`` …) becomes a placeholder
string naming the class, so ``Decimal('1')`` shows as ``<object decimal.Decimal>`` and nothing
is imported. Jobs written with rq's JSONSerializer are plain JSON and read as such.
"""

from __future__ import annotations

import json
import pickletools
from collections.abc import Callable
from typing import Any

from failboard.drivers.rq.store import inflate

__all__ = ["describe_serialized", "read_pickle"]

MAX_BYTES = 1_000_000
MAX_OPS = 200_000
MAX_TEXT = 2_000


class _Opaque:
    """Something only running the pickle could build."""

    def __init__(self, what: str) -> None:
        self.what = what

    def __repr__(self) -> str:
        return f"<object {self.what}>"


class _Mark:
    pass


_MARK = _Mark()


class Unreadable(Exception):
    pass


def read_pickle(data: bytes) -> Any:
    """The plain values of a pickle, with placeholders for objects; raises Unreadable."""
    stack: list[Any] = []
    memo: dict[int, Any] = {}
    try:
        for count, (op, arg, _pos) in enumerate(pickletools.genops(data)):
            if count > MAX_OPS:
                raise Unreadable("too many opcodes")
            _step(op.name, arg, stack, memo)
            if op.name == "STOP":
                break
    except Unreadable:
        raise
    except Exception as exc:  # a malformed pickle can fail genops or our stack in many ways
        raise Unreadable(f"{type(exc).__name__}: {exc}") from exc
    if len(stack) != 1:
        raise Unreadable("not one value")
    return stack[0]


def _pop_mark(stack: list[Any]) -> list[Any]:
    items: list[Any] = []
    while True:
        item = stack.pop()
        if item is _MARK:
            items.reverse()
            return items
        items.append(item)


_PLAIN: dict[str, Callable[[], Any]] = {
    "NONE": lambda: None,
    "NEWTRUE": lambda: True,
    "NEWFALSE": lambda: False,
    "EMPTY_TUPLE": tuple,
    "EMPTY_LIST": list,
    "EMPTY_DICT": dict,
    "EMPTY_SET": set,
}
_VALUE_OPS = frozenset(
    {
        "INT", "BININT", "BININT1", "BININT2", "LONG", "LONG1", "LONG4", "FLOAT", "BINFLOAT",
        "STRING", "BINSTRING", "SHORT_BINSTRING", "UNICODE", "BINUNICODE", "SHORT_BINUNICODE",
        "BINUNICODE8", "BINBYTES", "SHORT_BINBYTES", "BINBYTES8", "BYTEARRAY8",
    }
)  # fmt: skip


def _step(name: str, arg: Any, stack: list[Any], memo: dict[int, Any]) -> None:
    if name in _VALUE_OPS:
        stack.append(arg)
    elif name in _PLAIN:
        stack.append(_PLAIN[name]())
    elif name in ("PROTO", "FRAME", "STOP"):
        pass
    elif name == "MARK":
        stack.append(_MARK)
    elif name == "TUPLE":
        stack.append(tuple(_pop_mark(stack)))
    elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
        size = int(name[-1])
        items = stack[-size:]
        del stack[-size:]
        stack.append(tuple(items))
    elif name == "LIST":
        stack.append(_pop_mark(stack))
    elif name == "APPEND":
        value = stack.pop()
        stack[-1].append(value)
    elif name == "APPENDS":
        items = _pop_mark(stack)
        stack[-1].extend(items)
    elif name == "DICT":
        items = _pop_mark(stack)
        stack.append(dict(zip(items[::2], items[1::2], strict=False)))
    elif name == "SETITEM":
        value, key = stack.pop(), stack.pop()
        stack[-1][_key(key)] = value
    elif name == "SETITEMS":
        items = _pop_mark(stack)
        for key, value in zip(items[::2], items[1::2], strict=False):
            stack[-1][_key(key)] = value
    elif name == "ADDITEMS":
        items = _pop_mark(stack)
        stack[-1].update(_key(item) for item in items)
    elif name == "FROZENSET":
        stack.append(frozenset(_key(item) for item in _pop_mark(stack)))
    elif name == "MEMOIZE":
        memo[len(memo)] = stack[-1]
    elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
        memo[int(arg)] = stack[-1]
    elif name in ("GET", "BINGET", "LONG_BINGET"):
        stack.append(memo[int(arg)])
    elif name in ("GLOBAL", "INST"):
        if name == "INST":
            _pop_mark(stack)
        stack.append(_Opaque(str(arg).replace(" ", ".")))
    elif name == "STACK_GLOBAL":
        attr, module = stack.pop(), stack.pop()
        stack.append(_Opaque(f"{module}.{attr}"))
    elif name == "REDUCE":
        stack.pop()
        stack.append(_Opaque(_what(stack.pop())))
    elif name == "NEWOBJ":
        stack.pop()
        stack.append(_Opaque(_what(stack.pop())))
    elif name == "NEWOBJ_EX":
        del stack[-2:]
        stack.append(_Opaque(_what(stack.pop())))
    elif name == "OBJ":
        items = _pop_mark(stack)
        stack.append(_Opaque(_what(items[0]) if items else "?"))
    elif name == "BUILD":
        stack.pop()  # the state goes into an object we do not build
    elif name == "POP":
        stack.pop()
    elif name == "POP_MARK":
        _pop_mark(stack)
    elif name == "DUP":
        stack.append(stack[-1])
    elif name in ("PERSID", "BINPERSID", "EXT1", "EXT2", "EXT4", "NEXT_BUFFER"):
        if name == "BINPERSID":
            stack.pop()
        stack.append(_Opaque(name.lower()))
    elif name == "READONLY_BUFFER":
        pass
    else:
        raise Unreadable(f"opcode {name}")


def _what(value: Any) -> str:
    return value.what if isinstance(value, _Opaque) else type(value).__name__


def _key(value: Any) -> Any:
    # Keys must hash; an unhashable one (a list built by the pickle) is shown by its repr.
    try:
        hash(value)
    except TypeError:
        return repr(value)
    return value


def plain(value: Any, depth: int = 0) -> Any:
    """JSON-friendly copy: tuples/sets as lists, bytes and objects as text, long text cut."""
    if depth > 20:
        return "…"
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return value if len(value) <= MAX_TEXT else value[:MAX_TEXT] + "…"
    if isinstance(value, bytes | bytearray):
        return repr(bytes(value[:MAX_TEXT]))
    if isinstance(value, dict):
        return {str(plain(k, depth + 1)): plain(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [plain(item, depth + 1) for item in value]
    return repr(value)


def describe_serialized(raw: bytes | None, *, compressed: bool) -> dict[str, Any] | None:
    """What can be shown of rq's ``data`` (``compressed``) or ``meta`` without running them.

    For ``data``: ``func``, ``args`` and ``kwargs`` when they read as plain values."""
    if not raw:
        return None
    data = raw
    if compressed:
        data, _ = inflate(raw, MAX_BYTES)
    out: dict[str, Any] = {"bytes": len(data)}
    try:
        value: Any = json.loads(data)
        out["serializer"] = "json"
    except (ValueError, UnicodeDecodeError):
        try:
            value = read_pickle(data)
            out["serializer"] = "pickle (read without unpickling)"
        except Unreadable as exc:
            out["serializer"] = "unknown"
            out["error"] = str(exc)
            return out
    if compressed and isinstance(value, list | tuple) and len(value) == 4:
        func, instance, args, kwargs = value
        out["func"] = plain(func)
        if instance is not None:
            out["instance"] = plain(instance)
        out["args"] = plain(args)
        out["kwargs"] = plain(kwargs)
    else:
        out["value"] = plain(value)
    return out
