"""Where the CLI's tables go: fitted to a terminal, complete when piped, or JSON.

On a terminal, a table is as wide as the terminal: views pick a layout that fits (or wraps at word
boundaries) instead of letting rich cut cells to `stat…`. Piped, the width is unlimited, so every cell
is complete on one line for grep and awk; `--json` gives the same data for programs.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console, RenderableType

PIPED_WIDTH = 4096


def stdout_console() -> Console:
    """The console for a command's output on stdout."""
    if sys.stdout.isatty():
        return Console()
    return Console(width=PIPED_WIDTH)


def fits(console: Console, renderable: RenderableType) -> bool:
    """Whether `renderable` prints at its natural width, nothing wrapped or cut."""
    # Measured against unlimited room: rich clamps a measurement to the width it is given.
    natural = console.measure(renderable, options=console.options.update_width(PIPED_WIDTH)).maximum
    return natural <= console.width


def print_json(data: Any) -> None:
    json.dump(data, sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")
