"""The tests side of the ``code`` verifier: the trusted driver, in a sandbox of its own.

Sent into the sandbox as self-contained source (``selfimprove.sandbox.inline``) and started with
``drive(prelude, tests, names)``. It holds the only write end of the report channel (descriptor 3); the program
runs in another process (``code_program``) that it reaches over two pipes (``code_peer``). The tests run here,
in a namespace where each of ``names`` that the program defines is what crossed: a function as a proxy that
calls it, a value as a value built here, an exception class as a class of the same name made here on the same
built-in base, a module as this side's own import of it. So every comparison the tests make runs this side's
code on objects built here. After the last statement the driver reports ``("passed",)`` and exits 0; anything
else is one ``(status, stage, error)`` label and exit code 1.
"""

import builtins
import os
import sys

from selfimprove.sandbox.plain import encode
from selfimprove.verifiers.code_peer import PROGRAM_ENDED, Peer, ProtocolError, proxy
from selfimprove.verifiers.describe import MAX_MESSAGE, describe

REPORT_FD, PEER_IN_FD, PEER_OUT_FD = 3, 4, 5  # as in selfimprove/sandbox/run.py (not importable in the sandbox)
TEST_FILES = ("tests.py", "prompt.py")


def drive(prelude, tests, names):
    peer = Peer(PEER_IN_FD, PEER_OUT_FD, {}, by_name=False, files=TEST_FILES)
    try:
        codes = [("prompt", compile(prelude, "prompt.py", "exec")), ("tests", compile(tests, "tests.py", "exec"))]
    except SyntaxError as exc:
        stage = "prompt" if exc.filename == "prompt.py" else "tests"
        finish("syntax", stage, f"SyntaxError: {exc.msg} (line {exc.lineno})")
    try:
        namespace = start(peer, names)
    except ProtocolError as exc:
        finish("error" if str(exc) == PROGRAM_ENDED else "failed", "program", str(exc))
    for stage, code in codes:
        try:
            exec(code, namespace)
        except MemoryError:
            finish("memory", stage, "MemoryError")
        except SystemExit as exc:
            finish("error", stage, f"exited early (SystemExit {exc.code!r})"[:MAX_MESSAGE])
        except BaseException as exc:
            if peer.broken is None:
                finish("failed", stage, describe(exc, TEST_FILES))
        if peer.broken is not None:  # it sticks, whatever the tests caught
            finish("error" if peer.broken == PROGRAM_ENDED else "failed", "program", peer.broken)
    finish("passed")


def start(peer, names):
    """The tests' namespace, once the program is ready: builtins, and for each name the program has, what
    crossed (see the module's docstring)."""
    frame = peer.next_frame("the program's first frame")
    kind = frame[0]
    if kind in ("syntax", "memory", "error") and len(frame) == 2 and type(frame[1]) is str:
        finish(kind, "program", frame[1])
    shape = tuple(type(x) for x in frame[1:]) if kind == "ready" else ()
    if shape != (list, dict, dict, dict, dict):
        peer.fail("the program's first frame is not in the protocol")
    _, callables, values, exceptions, modules, others = frame
    namespace = {"__name__": "tests", "__builtins__": builtins}
    for name in names:
        if name in callables:
            namespace[name] = proxy(peer, name, name)
        elif name in values:
            namespace[name] = values[name]
        elif name in exceptions and peer.exception_class(exceptions[name]) is not None:
            namespace[name] = peer.exception_class(exceptions[name])
        elif name in modules and importable(modules[name]):
            try:
                __import__(modules[name])
                namespace[name] = sys.modules[modules[name]]
            except BaseException:
                finish("failed", "program", f"the tests use {name}, the program's module {modules[name][:100]!r},"
                       " which the tests' side cannot import")  # fmt: skip
        elif name in others:
            finish("failed", "program", f"the tests use {name}, which is {str(others[name])[:MAX_MESSAGE]}")
    return namespace


def importable(module):
    """A module name the tests' side may import for the program: dotted public names, no ``__main__``."""
    return type(module) is str and all(part.isidentifier() and not part.startswith("_") for part in module.split("."))


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
