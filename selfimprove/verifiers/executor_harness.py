"""The ``executor`` verifier's harness: ``f(*args, **kwargs)`` in the sandbox, its output reported as a plain value.

Sent into the sandbox as self-contained source (``selfimprove.sandbox.inline``) and started with
``run(program, entry, arguments)``, where ``arguments`` is the canonical text of ``(args, kwargs)``, parsed from
the record's input on the verifier's side (``selfimprove.verifiers.arguments``): the call is built here from
values, so an input is never code. It writes one frame to the report channel (descriptor 3), ``("output",
value)`` or ``(status, error)``, and exits 0. The program shares this process and can make it write any frame;
the verifier checks its size, decodes it strictly and compares values on its own side, where the expected
output stays.
"""

import os
import sys

from selfimprove.sandbox.plain import NotPlain, decode, encode, why_not
from selfimprove.verifiers.describe import MAX_MESSAGE, describe

REPORT_FD = 3  # as in selfimprove/sandbox/run.py (not importable in the sandbox)
MAX_OUTPUT = 10_000  # characters of the encoded output


def run(program, entry, arguments):
    frame = outcome(program, entry, arguments)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:
            pass
    os.write(REPORT_FD, (encode(frame) + "\n").encode("utf-8"))
    os._exit(0)


def outcome(program, entry, arguments):
    module = sys.modules["solution"] = type(sys)("solution")  # a real module: pickle finds its functions
    namespace = module.__dict__
    try:
        args, kwargs = decode(arguments)
        exec(compile(program, "solution.py", "exec"), namespace)
        if not callable(namespace.get(entry)):
            return ("error", f"the program defines no function {entry!r}")
        output = namespace[entry](*args, **kwargs)
    except SyntaxError as exc:
        return ("syntax", f"SyntaxError: {exc.msg} (line {exc.lineno})")
    except MemoryError:
        namespace.clear()  # room to report
        return ("memory", "MemoryError")
    except SystemExit as exc:
        return ("error", f"exited early (SystemExit {exc.code!r})"[:MAX_MESSAGE])
    except BaseException as exc:
        return ("error", describe(exc, ("solution.py",)))
    try:
        text = encode(output)
    except NotPlain as exc:
        return ("error", f"{entry} returned {why_not(output, exc)}, not a plain value")
    if len(text) > MAX_OUTPUT:
        return ("error", f"the output is longer than {MAX_OUTPUT} characters")
    return ("output", output)
