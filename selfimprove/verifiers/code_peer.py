"""One end of the code verifier's pipe, the same on both sides: calls to the other process and answers to its.

Inlined into both harnesses. A call is ``("call", target, args, kwargs)``; the answer is ``("ok", value)``,
``("raise", classes, args, message, where)`` or ``("error", why)``, after a ``("state", changes)`` frame when the
call changed a mutable argument. While a side waits for its answer it serves the other side's calls, so a
callable can cross either way: the tests' ``key=lambda x: -x`` is a function the program calls back, a function
the program returns is one the tests call (builtins cross by name towards the program, where they run there).

Identity crosses too. The answer's value names any argument object it is (or holds) as ``arg(path)``, and the
receiver puts its own object there; a changed argument comes back in the state frame and is written into the
caller's own object (``code_values.refresh``). So ``ys = f(xs)`` with an in-place sort leaves the tests' ``xs``
sorted and ``ys is xs`` true, and a test that wants a new list sees that it did not get one.

Nothing the other side sends is evaluated or unpickled: frames are plain values and the calls of
``code_values.BUILDERS`` (and ``arg``, ``mine``, ``function``, ``builtin``), built with this side's own
standard library.
"""

import builtins
import sys

from selfimprove.sandbox.plain import MAX_DEPTH, NotPlain, encode
from selfimprove.sandbox.wire import Channel
from selfimprove.verifiers.code_values import BUILDERS, NotValue, builtin_name, convert, from_builtins, mutable, refresh
from selfimprove.verifiers.describe import MAX_MESSAGE, where

PROGRAM_ENDED = "the program's process ended"


class ProtocolError(Exception):
    """The other side broke the protocol or ended; on the tests' side the verdict fails whatever they catch."""


class ProgramError(Exception):
    """An exception of the other side's that is not raised here as itself (``'StopIteration: text'``)."""


class ProgramExit(BaseException):
    """The other side raised SystemExit, KeyboardInterrupt or another exception that is not an ``Exception``:
    like those, ``except Exception`` does not catch it."""


class Peer:
    """``names``: what the other side may call by name (the program's module; nothing on the tests' side).
    ``by_name``: builtins the other side sends by name run here (only towards the program)."""

    def __init__(self, fd_in, fd_out, names, by_name, files):
        self.channel = Channel(fd_in, fd_out)
        self.names, self.files = names, files
        self.exports = []  # callables handed to the other side, by handle
        self.handles = {}  # id(callable) -> its handle
        self.classes = {}  # exception classes of the other side, made here by name
        self.calling = []  # (args, kwargs) of each call this side waits on, innermost last
        self.serving = []  # {id: path} of the arguments of each call this side answers, innermost last
        self.broken = None
        self.calls = dict(BUILDERS, arg=self._arg, mine=self._mine, function=self._proxy)
        if by_name:
            self.calls["builtin"] = from_builtins

    # -- sending -------------------------------------------------------------------------------------------
    def hook(self, x):
        """How a value that is not a plain scalar is written (``encode``'s hook)."""
        if self.serving and id(x) in self.serving[-1]:
            return ("arg", (self.serving[-1][id(x)],))
        if not callable(x):
            return convert(x)
        target = getattr(x, "__peer_target__", None)
        if target is not None:
            return ("mine", (target,))
        name = builtin_name(x)
        if name is not None and "builtin" not in self.calls:  # towards the program: run there, by name
            return ("builtin", (name,))
        if id(x) not in self.handles:
            self.handles[id(x)] = len(self.exports)
            self.exports.append(x)
        return ("function", (self.handles[id(x)], str(getattr(x, "__name__", type(x).__name__))[:100]))

    def send(self, frame):
        for stream in (sys.stdout, sys.stderr):  # what was printed reaches its pipe first: the run may end soon
            try:
                stream.flush()
            except BaseException:
                pass
        self.channel.send(frame, self.hook)

    # -- receiving -----------------------------------------------------------------------------------------
    def receive(self):
        return self.channel.receive(self.calls)

    def _arg(self, path):
        if not self.calling:
            raise ValueError("arg() outside an answer")
        args, kwargs = self.calling[-1]
        found = args if type(path[0]) is int else kwargs
        for step in path:
            found = found[step] if type(found) in (list, tuple, dict) or mutable(found) else None
        if not mutable(found):
            raise ValueError("arg() names no argument object")
        return found

    def _mine(self, target):
        return self.exports[target] if type(target) is int else self.names[target]

    def _proxy(self, handle, name):
        if type(handle) is not int or type(name) is not str:
            raise ValueError("function() needs a handle and a name")
        return proxy(self, handle, name)

    # -- calling the other side ------------------------------------------------------------------------------
    def fail(self, why):
        if self.broken is None:
            self.broken = why[:MAX_MESSAGE]
        raise ProtocolError(self.broken)

    def call(self, target, name, args, kwargs):
        if self.broken is not None:
            raise ProtocolError(self.broken)
        try:
            self.send(("call", target, list(args), kwargs))
        except (NotPlain, NotValue) as exc:
            raise TypeError(f"an argument of {name}() cannot go to the program: {exc}") from None
        except OSError:
            self.fail(PROGRAM_ENDED)
        self.calling.append((args, kwargs))
        try:
            while True:
                frame = self.next_frame(f"{name}()'s answer")
                kind = frame[0]
                if kind == "call":
                    self.serve(frame)
                elif kind == "state" and len(frame) == 2 and type(frame[1]) is dict:
                    for key, value in frame[1].items():
                        if type(key) is int and 0 <= key < len(args) or type(key) is str and key in kwargs:
                            refresh(args[key] if type(key) is int else kwargs[key], value)
                elif kind == "ok" and len(frame) == 2:
                    return frame[1]
                elif kind == "raise" and len(frame) == 5:
                    raise self.rebuilt(*frame[1:])
                elif kind == "error" and len(frame) == 2 and type(frame[1]) is str:
                    self.fail(frame[1])
                else:
                    self.fail(f"{name}()'s answer is not in the protocol")
        finally:
            self.calling.pop()

    def next_frame(self, what):
        try:
            frame = self.receive()
        except EOFError:
            self.fail(PROGRAM_ENDED)
        except Exception as exc:  # NotPlainText, and anything a builder let through
            self.fail(f"{what}: not a value ({exc})")
        if type(frame) is not tuple or not frame or type(frame[0]) is not str:
            self.fail(f"{what} is not in the protocol")
        return frame

    def rebuilt(self, classes, args, message, line):
        """The other side's exception on this side. ``classes``: its class's name and its bases' up to the
        nearest built-in one. A built-in ``Exception`` is raised as itself (the tests' ``except ValueError``
        works), the other side's own classes as classes made here with the same names and built-in base;
        StopIteration-like ones as a ``ProgramError`` and ones that are not ``Exception`` as ``ProgramExit``."""
        cls = self.exception_class(classes)
        if cls is None or not issubclass(cls, Exception) or issubclass(cls, (StopIteration, StopAsyncIteration)):
            exiting = cls is not None and not issubclass(cls, Exception)
            exc = (ProgramExit if exiting else ProgramError)(f"{classes[0]}: {message}" if message else classes[0])
        else:
            try:
                exc = cls(*args) if type(args) is tuple else cls(message)
            except Exception:
                exc = cls(message)
        exc.add_note(f"raised by the program ({classes[0]}{', ' + line if line else ''})"[:MAX_MESSAGE])
        return exc

    def exception_class(self, classes):
        """The class for a chain of names ending in a built-in exception's; None when it is not one."""
        if type(classes) is not tuple or not classes or not all(type(c) is str for c in classes):
            return None
        base = getattr(builtins, classes[-1], None)
        if not (isinstance(base, type) and issubclass(base, BaseException)):
            return None
        for name in reversed(classes[:-1]):
            if name not in self.classes:
                self.classes[name] = type(name, (base,), {"__module__": "program"})
            base = self.classes[name]
        return base

    # -- answering the other side ----------------------------------------------------------------------------
    def serve_forever(self):
        """Answer the other side's calls until it closes its end."""
        while True:
            try:
                frame = self.receive()
            except EOFError:
                return
            if type(frame) is tuple and frame and frame[0] == "call":
                self.serve(frame)

    def serve(self, frame):
        if len(frame) != 4 or type(frame[2]) is not list or type(frame[3]) is not dict:
            self.fail("a call that is not in the protocol")
        _, target, args, kwargs = frame
        name = str(target)
        refs = paths((args, kwargs))
        before = self.texts(args, kwargs)
        try:
            try:
                found = self._mine(target)
            except (KeyError, IndexError, TypeError):
                raise NameError(f"name {name!r} is not defined") from None
            name = str(getattr(found, "__name__", name))
            answer = ("ok", found(*args, **kwargs))
        except BaseException as exc:
            answer = raised(exc, self.files)
        after = self.texts(args, kwargs)
        changed = [key for key in after if after[key] != before.get(key)]
        changes = {key: args[key] if type(key) is int else kwargs[key] for key in changed}
        try:
            if changes:
                self.send(("state", changes))
            self.serving.append(refs)
            try:
                self.send(answer)
            finally:
                self.serving.pop()
        except (NotPlain, NotValue) as exc:
            what = "returned" if answer[0] == "ok" else "raised"
            self.send(("error", f"{name}() {what} {describe_value(answer[1], exc)}"))

    def texts(self, args, kwargs):
        """The text of each mutable argument, to see afterwards which the call changed."""
        out = {}
        for key, value in [*enumerate(args), *kwargs.items()]:
            if mutable(value):
                try:
                    out[key] = self.text(value)
                except (NotPlain, NotValue):
                    pass
        return out

    def text(self, value):
        serving, self.serving = self.serving, []
        try:
            return encode(value, self.hook)
        finally:
            self.serving = serving


def paths(arguments):
    """``{id(obj): path}`` of every mutable object in ``(args, kwargs)``; paths start at an index or a keyword."""
    found = {}
    stack = [(value, (key,)) for key, value in [*enumerate(arguments[0]), *arguments[1].items()]]
    while stack:
        value, path = stack.pop()
        if mutable(value) and id(value) not in found:
            found[id(value)] = path
        if len(path) < MAX_DEPTH and type(value) in (list, tuple):
            stack.extend((item, (*path, i)) for i, item in enumerate(value))
        elif len(path) < MAX_DEPTH and type(value) is dict:
            stack.extend((item, (*path, key)) for key, item in value.items() if type(key) in (int, str))
    return found


def raised(exc, files):
    """``("raise", classes, args or None, message, where)`` for an exception raised here."""
    classes = classes_of(type(exc))
    try:
        encode(exc.args)
        args = exc.args
    except (NotPlain, RecursionError):
        args = None
    try:
        message = str(exc)[:MAX_MESSAGE]
    except BaseException:
        message = ""
    return ("raise", tuple(classes), args, message, where(exc, files))


def classes_of(cls):
    """``('SubError', 'MyError', 'ValueError')``: an exception class's name and its bases' up to a built-in one."""
    names = []
    for base in cls.__mro__:
        names.append(base.__name__)
        if getattr(builtins, base.__name__, None) is base:
            break
    return tuple(names)


def describe_value(value, exc):
    """``'list holding AlwaysEqual (why)'``: what could not be sent, and the rule it breaks."""
    outer, inner = type(value).__name__, getattr(exc, "type_name", "")
    return (outer if inner in ("", outer) else f"{outer} holding {inner}") + f" ({exc})"


def proxy(peer, target, name):
    """A local function that calls ``target`` on the other side."""

    def call(*args, **kwargs):
        return peer.call(target, name, args, kwargs)

    call.__name__ = call.__qualname__ = name
    call.__peer_target__ = target
    return call
