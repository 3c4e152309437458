"""The program side of the ``code`` verifier: the untrusted code, in a sandbox of its own.

Sent into the sandbox as self-contained source (``selfimprove.sandbox.inline``) and started with
``serve(program, names)``. It runs the program as module ``solution``, sends one frame that says what each of
``names`` (what the tests take from the program) is, then answers the tests driver's calls (``code_driver``)
until the driver closes its end (``code_peer``).

Nothing here is trusted: the program shares this process and can rewrite all of it. Whatever it makes this
process send, the driver decodes as plain values and builds with its own standard library.
"""

import sys

from selfimprove.sandbox.plain import NotPlain
from selfimprove.verifiers.code_peer import Peer, classes_of, describe_value
from selfimprove.verifiers.code_values import NotValue
from selfimprove.verifiers.describe import MAX_MESSAGE, describe

PEER_IN_FD, PEER_OUT_FD = 4, 5  # as in selfimprove/sandbox/run.py (not importable in the sandbox)
PROGRAM_FILE = "solution.py"


def serve(program, names):
    module = sys.modules["solution"] = type(sys)("solution")  # a real module: pickle and multiprocessing find it
    namespace = module.__dict__
    peer = Peer(PEER_IN_FD, PEER_OUT_FD, namespace, by_name=True, files=(PROGRAM_FILE,))
    failure = load(program, namespace)
    peer.send(failure or ready(peer, namespace, names))
    if failure is None:
        peer.serve_forever()


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


def ready(peer, namespace, names):
    """``("ready", callables, values, exceptions, modules, others)``: of the names the program defines, those
    the tests call, those that are values (with the value), exception classes (with their classes' names),
    modules (with the module's name), and those that cannot reach the tests (with why)."""
    callables, values, exceptions, modules, others = [], {}, {}, {}, {}
    for name in names:
        if name not in namespace:
            continue
        value = namespace[name]
        if isinstance(value, type) and issubclass(value, BaseException):
            exceptions[name] = classes_of(value)
        elif type(value) is type(sys):
            modules[name] = value.__name__
        elif callable(value):
            callables.append(name)
        else:
            try:
                peer.text(value)
                values[name] = value
            except (NotPlain, NotValue, RecursionError) as exc:
                others[name] = describe_value(value, exc)
    return ("ready", callables, values, exceptions, modules, others)
