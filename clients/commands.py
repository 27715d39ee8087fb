"""Sub-commands of the `orderpay` CLI that belong to this part (filled in by its owner)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add this part's sub-commands to the root parser."""
    del sub
