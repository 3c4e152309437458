"""Exceptions in words, for the harnesses in the sandbox (inlined there: standard library only)."""

MAX_MESSAGE = 2000


def where(exc, filenames):
    """``'tests.py, line 3'``: the innermost line of ``exc``'s traceback in one of ``filenames``, or ``''``."""
    found = ""
    tb = exc.__traceback__
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if filename in filenames:
            found = f"{filename}, line {tb.tb_lineno}"
        tb = tb.tb_next
    return found


def describe(exc, filenames):
    """``'ValueError: bad input (solution.py, line 3)'``, whatever ``str(exc)`` does."""
    try:
        text = str(exc)
    except BaseException:
        text = ""
    line = where(exc, filenames)
    head = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    notes = getattr(exc, "__notes__", None)
    tail = "; ".join(note for note in notes if type(note) is str) if type(notes) is list else ""
    return head[:MAX_MESSAGE] + (f" ({line})" if line else "") + (f"; {tail}" if tail else "")
