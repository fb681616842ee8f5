"""Readers and writers; everything returns or takes a `Recording`."""

from neurovox.io.recording import (
    Recording,
    RecordingMeta,
    make_channel_table,
    make_trial_table,
)

__all__ = ["Recording", "RecordingMeta", "make_channel_table", "make_trial_table"]
