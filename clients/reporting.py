"""How a command reports an API error on stderr: the reason first (what scripts grep for)."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape

from clients.errors import OrderPayError


def report_error(err: OrderPayError) -> int:
    """The reason, then field violations and the request id to find the logs; exit status 1."""
    lines = [f"[bold red]error:[/] {escape(err.reason)}: {escape(err.message)}"]
    lines += [f"  {escape(name)}: {escape(text)}" for name, text in err.field_violations]
    if err.trace_id:
        lines.append(f"  request id: {escape(err.trace_id)}")
    Console(stderr=True).print("\n".join(lines), highlight=False)
    return 1
