"""Run a command with its stdout and stderr on a pseudo-terminal of a given width, as a person would."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import struct
import subprocess
import termios

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def run_in_terminal(
    argv: list[str], *, columns: int = 80, env: dict[str, str] | None = None, timeout_s: float = 60
) -> tuple[int, str]:
    """Exit code and what the terminal showed (colours stripped, one `\\n` per line)."""
    parent, child = pty.openpty()
    fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    full_env = {**(env if env is not None else os.environ), "COLUMNS": str(columns), "TERM": "xterm"}
    process = subprocess.Popen(argv, stdin=child, stdout=child, stderr=child, env=full_env)
    os.close(child)
    chunks: list[bytes] = []
    try:
        while True:
            try:
                data = os.read(parent, 65536)
            except OSError:  # EIO: the child side is closed
                break
            if not data:
                break
            chunks.append(data)
        code = process.wait(timeout=timeout_s)
    finally:
        os.close(parent)
        if process.poll() is None:
            process.kill()
            process.wait()
    return code, ANSI.sub("", b"".join(chunks).decode(errors="replace")).replace("\r\n", "\n")
