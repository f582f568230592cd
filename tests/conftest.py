"""Fixtures shared by the test modules."""

from __future__ import annotations

import pytest

import sim.model.records as records_module


@pytest.fixture
def compact_often(monkeypatch):
    """Summary mode folds finished messages every few hundred (instead of every 2^17), so
    that small runs exercise it."""
    original = records_module.RecordBuffer.__init__

    def init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        self.compact_at = 300

    monkeypatch.setattr(records_module.RecordBuffer, "__init__", init)
    real = records_module.RecordBuffer.compact

    def compact(self, live):
        mapping = real(self, live)
        self.compact_at = self.count + 300
        return mapping

    monkeypatch.setattr(records_module.RecordBuffer, "compact", compact)


