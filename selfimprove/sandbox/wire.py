"""Frames of plain values over a pair of pipes: one encoded value (``selfimprove.sandbox.plain``) per line.

Used by both ends of a connected sandbox run; self-contained like ``plain`` (its source is sent into the sandbox
with ``plain``'s inlined). A frame never holds a raw newline: ``encode`` escapes every one inside str and bytes.
"""

import os

from selfimprove.sandbox.plain import MAX_CHARS, NotPlain, NotPlainText, decode, encode


class Channel:
    """Reads frames from ``fd_in`` and writes them to ``fd_out``. ``receive`` raises ``EOFError`` when the other
    end has closed, and ``NotPlainText`` for a frame that is too long, not UTF-8 or not a plain value."""

    def __init__(self, fd_in, fd_out, max_chars=MAX_CHARS):
        self.fd_in, self.fd_out, self.max_chars = fd_in, fd_out, max_chars
        self.buffer = bytearray()

    def send(self, value, hook=None):
        """Write one frame; raises ``NotPlain`` for a value that is not plain (see ``encode``'s ``hook``) or
        whose text is longer than ``max_chars``, before anything is written."""
        text = encode(value, hook)
        if len(text) > self.max_chars:
            raise NotPlain(type(value).__name__, f"longer than {self.max_chars} characters")
        data = memoryview((text + "\n").encode("utf-8"))
        while data:
            data = data[os.write(self.fd_out, data) :]

    def receive(self, calls=None):
        start = 0
        while True:
            end = self.buffer.find(b"\n", start)
            if end >= 0:
                break
            if len(self.buffer) > self.max_chars * 4:  # UTF-8: at most four bytes a character
                raise NotPlainText(f"a frame longer than {self.max_chars} characters")
            start = len(self.buffer)
            data = os.read(self.fd_in, 1 << 16)
            if not data:
                raise EOFError("the other end closed")
            self.buffer += data
        line = bytes(self.buffer[:end])
        del self.buffer[: end + 1]
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            raise NotPlainText("a frame that is not UTF-8") from None
        return decode(text, self.max_chars, calls)
