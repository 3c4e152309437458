"""The program side of the ``code`` verifier: the untrusted code, in a sandbox of its own.

Sent into the sandbox as self-contained source (``selfimprove.sandbox.inline``) and started with
``serve(program, names)``. It runs the program as module ``solution``, sends one frame that says which of
``names`` (what the tests take from the program) it defines, then answers the tests driver's calls
(``code_driver``) until the driver closes its end: each result as a plain value, or the exception raised.

Nothing here is trusted: the program shares this process and can rewrite all of it. Whatever it makes this
process send, the driver decodes as plain values and judges with the tests' own code.
"""

import builtins
import sys

from selfimprove.sandbox.plain import MAX_CHARS, NotPlain, encode, why_not
from selfimprove.sandbox.wire import Channel
from selfimprove.verifiers.describe import MAX_MESSAGE, describe, where

PEER_IN_FD, PEER_OUT_FD = 4, 5  # as in selfimprove/sandbox/run.py (not importable in the sandbox)
PROGRAM_FILE = "solution.py"


def serve(program, names):
    channel = Channel(PEER_IN_FD, PEER_OUT_FD)
    namespace = {"__name__": "solution"}
    failure = load(program, namespace)
    flush()
    channel.send(failure or ready(namespace, names))
    while failure is None:
        try:
            _, name, args, kwargs = channel.receive()
        except EOFError:
            return
        frame = call(namespace, name, args, kwargs)
        flush()
        try:
            channel.send(frame)
        except NotPlain as exc:
            channel.send(("error", f"{name}() returned {why_not(frame[1], exc)}, not a plain value"))


def load(program, namespace):
    """Run the program; None when it ran, else the frame that says why not."""
    try:
        code = compile(program, PROGRAM_FILE, "exec")
    except SyntaxError as exc:
        return ("syntax", f"SyntaxError: {exc.msg} (line {exc.lineno})")
    except ValueError as exc:  # a null byte
        return ("syntax", f"ValueError: {exc}")
    try:
        exec(code, namespace)
    except MemoryError:
        namespace.clear()  # room to send the frame
        return ("memory", "MemoryError")
    except SystemExit as exc:
        return ("error", f"exited early (SystemExit {exc.code!r})"[:MAX_MESSAGE])
    except BaseException as exc:
        return ("error", describe(exc, (PROGRAM_FILE,)))
    return None


def ready(namespace, names):
    """``("ready", callables, values, others)``: the names the program defines that are callable, those that are
    plain values (with the value), and those that are neither (with what they are)."""
    callables, values, others = [], {}, {}
    for name in names:
        if name not in namespace:
            continue
        value = namespace[name]
        if callable(value):
            callables.append(name)
            continue
        try:
            encode(value)
            values[name] = value
        except NotPlain as exc:
            others[name] = why_not(value, exc)
    return ("ready", callables, values, others)


def call(namespace, name, args, kwargs):
    """``("ok", result)``, or ``("raise", type name, nearest built-in base's name, args or None, message, where)``."""
    try:
        if name not in namespace:
            raise NameError(f"name {name!r} is not defined")
        return ("ok", namespace[name](*args, **kwargs))
    except BaseException as exc:
        return raised(exc)


def raised(exc):
    cls = type(exc)
    base = next((c.__name__ for c in cls.__mro__ if getattr(builtins, c.__name__, None) is c), "Exception")
    try:
        args = exc.args if len(encode(exc.args)) <= MAX_CHARS // 4 else None
    except NotPlain:
        args = None
    try:
        message = str(exc)[:MAX_MESSAGE]
    except BaseException:
        message = ""
    return ("raise", cls.__name__, base, args, message, where(exc, (PROGRAM_FILE,)))


def flush():
    """Output printed so far reaches its pipe before the answer: the process is killed once the tests end."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:
            pass
