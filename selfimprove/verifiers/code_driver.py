"""The tests side of the ``code`` verifier: the trusted driver, in a sandbox of its own.

Sent into the sandbox as self-contained source (``selfimprove.sandbox.inline``) and started with
``drive(prelude, tests, names)``. It holds the only write end of the report channel (descriptor 3); the program
runs in another process (``code_program``) that it reaches over two pipes. The tests run here, in a namespace
where each of ``names`` that the program defines is a proxy: calling it sends the arguments (plain values) to
the program and returns its answer decoded as plain values, so every comparison the tests make is between
built-in values. After the last statement the driver reports ``("passed",)`` and exits 0; anything else is one
``(status, stage, error)`` label and exit code 1.
"""

import builtins
import os
import sys

from selfimprove.sandbox.plain import NotPlain, NotPlainText, encode
from selfimprove.sandbox.wire import Channel
from selfimprove.verifiers.describe import MAX_MESSAGE, describe

REPORT_FD, PEER_IN_FD, PEER_OUT_FD = 3, 4, 5  # as in selfimprove/sandbox/run.py (not importable in the sandbox)
PROGRAM_ENDED = "the program's process ended"
TEST_FILES = ("tests.py", "prompt.py")
# Built-in exceptions a program may not raise into the tests as themselves: StopIteration ends the loop that
# called it (``all(map(f, xs))`` would hold over an empty prefix), and these are not Exceptions either.
NOT_RERAISED = ("StopIteration", "StopAsyncIteration")


class ProgramError(Exception):
    """An exception of the program's that is not re-raised as a built-in one (``'StopIteration: text'``)."""


class ProgramExit(BaseException):
    """The program raised SystemExit, KeyboardInterrupt or another exception that is not an ``Exception``: like
    those, ``except Exception`` in the tests does not catch it."""


class ProtocolError(Exception):
    """The program broke the protocol or ended; the verdict fails whatever the tests do with this."""


class Program:
    """The program's process as the tests see it. The first failure (``broken``) sticks: the tests may catch
    the exception it raises, but the driver then reports a failure anyway."""

    def __init__(self, channel):
        self.channel, self.broken = channel, None

    def fail(self, why):
        if self.broken is None:
            self.broken = why[:MAX_MESSAGE]
        raise ProtocolError(self.broken)

    def receive(self, what):
        try:
            return self.channel.receive()
        except EOFError:
            self.fail(PROGRAM_ENDED)
        except NotPlainText as exc:
            self.fail(f"{what}: not a plain value ({exc})")

    def call(self, name, args, kwargs):
        if self.broken is not None:
            raise ProtocolError(self.broken)
        try:
            self.channel.send(("call", name, list(args), kwargs))
        except NotPlain as exc:
            self.fail(f"an argument of {name}() is not a plain value ({exc})")
        except OSError:
            self.fail(PROGRAM_ENDED)
        answer = self.receive(f"{name}()'s answer")
        kind = answer[0] if type(answer) is tuple and answer else None
        if kind == "ok" and len(answer) == 2:
            return answer[1]
        if kind == "raise" and len(answer) == 6 and all(type(x) is str for x in answer[1:3] + answer[4:]):
            raise rebuilt(*answer[1:])
        if kind == "error" and len(answer) == 2 and type(answer[1]) is str:
            self.fail(answer[1])
        self.fail(f"{name}()'s answer is not in the protocol")


def rebuilt(name, base, args, message, line):
    """The program's exception on this side: the built-in exception ``base`` when it is an ``Exception`` (so the
    tests' ``except ValueError`` works), else a ``ProgramError``, or a ``ProgramExit`` for a built-in base that is
    not an ``Exception``."""
    cls = getattr(builtins, base, None)
    exc = None
    if isinstance(cls, type) and issubclass(cls, Exception) and base not in NOT_RERAISED:
        try:
            exc = cls(*args) if type(args) is tuple else cls(message)
        except Exception:
            exc = None
    if exc is None:
        exiting = isinstance(cls, type) and issubclass(cls, BaseException) and not issubclass(cls, Exception)
        exc = (ProgramExit if exiting else ProgramError)(f"{name}: {message}" if message else name)
    exc.add_note(f"raised by the program ({name}{', ' + line if line else ''})"[:MAX_MESSAGE])
    return exc


def proxy(program, name):
    def call(*args, **kwargs):
        return program.call(name, args, kwargs)

    call.__name__ = call.__qualname__ = name
    return call


def drive(prelude, tests, names):
    program = Program(Channel(PEER_IN_FD, PEER_OUT_FD))
    try:
        codes = [("prompt", compile(prelude, "prompt.py", "exec")), ("tests", compile(tests, "tests.py", "exec"))]
    except SyntaxError as exc:
        stage = "prompt" if exc.filename == "prompt.py" else "tests"
        finish("syntax", stage, f"SyntaxError: {exc.msg} (line {exc.lineno})")
    try:
        namespace = start(program, names)
    except ProtocolError as exc:
        finish("error", "program", str(exc))
    for stage, code in codes:
        try:
            exec(code, namespace)
        except MemoryError:
            finish("memory", stage, "MemoryError")
        except SystemExit as exc:
            finish("error", stage, f"exited early (SystemExit {exc.code!r})"[:MAX_MESSAGE])
        except BaseException as exc:
            if program.broken is None:
                finish("failed", stage, describe(exc, TEST_FILES))
        if program.broken is not None:
            finish("error" if program.broken == PROGRAM_ENDED else "failed", "program", program.broken)
    finish("passed")


def start(program, names):
    """The tests' namespace, once the program is ready: builtins, and a proxy or a value for each name it has."""
    frame = program.receive("the program's first frame")
    kind = frame[0] if type(frame) is tuple and frame else None
    if kind in ("syntax", "memory", "error") and len(frame) == 2 and type(frame[1]) is str:
        finish(kind, "program", frame[1])
    shape = tuple(type(x) for x in frame[1:]) if kind == "ready" else ()
    if shape != (list, dict, dict):
        program.fail("the program's first frame is not in the protocol")
    _, callables, values, others = frame
    for name, what in others.items():
        if name in names:
            finish("failed", "program", f"the tests use {name}, which is {what}, not a plain value")
    namespace = {"__name__": "tests", "__builtins__": builtins}
    for name in names:
        if name in callables:
            namespace[name] = proxy(program, name)
        elif name in values:
            namespace[name] = values[name]
    return namespace


def finish(status, stage="", error=""):
    """Report and exit: 0 after a pass, 1 after anything else."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:
            pass
    label = (status,) if status == "passed" else (status, stage, error[:MAX_MESSAGE])
    os.write(REPORT_FD, (encode(label) + "\n").encode("utf-8"))
    os._exit(0 if status == "passed" else 1)
