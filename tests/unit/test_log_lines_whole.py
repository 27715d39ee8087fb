"""Every log line reaches stderr in one write, newline included: the call-log writer thread shares the
stream, and a line written in two parts (text, then newline) let its batch land in between."""

from __future__ import annotations

import io
import sys
from collections.abc import Iterator

import pytest
import structlog

from server.log_setup import CALLS, configure_logging


class RecordingStream(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.writes: list[str] = []

    def write(self, text: str) -> int:
        self.writes.append(text)
        return super().write(text)

    def isatty(self) -> bool:
        return False


@pytest.fixture
def stream(monkeypatch: pytest.MonkeyPatch) -> Iterator[RecordingStream]:
    before = structlog.get_config()
    calls_before = (CALLS.enabled, CALLS._render, CALLS._stream)  # put back as found
    recording = RecordingStream()
    monkeypatch.setattr(sys, "stderr", recording)
    configure_logging("json", "info")
    yield recording
    structlog.configure(**before)
    enabled, render, stream = calls_before
    CALLS.configure(enabled=enabled, render=render, stream=stream)


def test_a_structlog_line_is_one_write_with_its_newline(stream: RecordingStream) -> None:
    structlog.get_logger().info("recon.day", account="direct-pk", rows=0)
    lines = [text for text in stream.writes if "recon.day" in text]
    assert len(lines) == 1, stream.writes
    assert lines[0].endswith("\n")
    assert lines[0].count("\n") == 1
