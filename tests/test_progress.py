"""Progress bars: on a terminal and in Jupyter, never in logs."""

from __future__ import annotations

import io
import sys

from sim.progress import in_jupyter, progress_bar


def test_hidden_in_logs_and_shown_when_asked(monkeypatch):
    monkeypatch.setattr(sys, "stderr", io.StringIO())  # a log file: not a terminal
    assert not in_jupyter()
    assert progress_bar(3).disable
    assert not progress_bar(3, progress=True).disable
    assert progress_bar(3, progress=False).disable


def test_shown_on_a_terminal(monkeypatch):
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setattr(sys, "stderr", Terminal())
    assert not progress_bar(3).disable
