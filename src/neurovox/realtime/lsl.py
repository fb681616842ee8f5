"""pylsl, configured before its first use.

liblsl finds peers by multicast; on one machine two processes only see each other's streams when its
resolve scope is "machine" and 127.0.0.1 is a known peer. `import_pylsl()` writes that configuration
(unless LSLAPICFG already names one: a lab's own set-up wins) and then imports pylsl, so neurovox's
streams stay on this computer unless the user configured otherwise (`NEUROVOX_LSL_SCOPE=site` lifts it).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from neurovox.errors import DataError

MACHINE_SCOPE_CFG = "[multicast]\nResolveScope = machine\n[lab]\nKnownPeers = {127.0.0.1}\n[log]\nlevel = -2\n"


def import_pylsl() -> Any:
    """pylsl, with liblsl configured for this machine (see the module docstring)."""
    if "LSLAPICFG" not in os.environ and os.environ.get("NEUROVOX_LSL_SCOPE", "machine") == "machine":
        path = Path(tempfile.gettempdir()) / "neurovox_lsl_api.cfg"
        if not path.exists() or path.read_text() != MACHINE_SCOPE_CFG:
            path.write_text(MACHINE_SCOPE_CFG)
        os.environ["LSLAPICFG"] = str(path)
    try:
        import pylsl
    except ImportError as err:
        raise DataError("Streaming needs pylsl (pip install pylsl; its Linux wheel bundles liblsl).") from err
    return pylsl


def neural_outlet(name: str, channel_names: list[str], kinds: list[str], unit: str, rate_hz: float,
                  source_id: str) -> Any:
    """An outlet of float32 neural samples with each channel's label, type and unit in its description."""
    pylsl = import_pylsl()
    info = pylsl.StreamInfo(name, "ECoG", len(channel_names), float(rate_hz), pylsl.cf_float32, source_id)
    chans = info.desc().append_child("channels")
    for label, kind in zip(channel_names, kinds):
        ch = chans.append_child("channel")
        ch.append_child_value("label", str(label))
        ch.append_child_value("type", str(kind))
        ch.append_child_value("unit", str(unit))
    info.desc().append_child_value("manufacturer", "neurovox")
    return pylsl.StreamOutlet(info, chunk_size=1, max_buffered=60)


def audio_outlet(name: str, rate_hz: float, source_id: str) -> Any:
    """A mono float32 audio outlet."""
    pylsl = import_pylsl()
    info = pylsl.StreamInfo(name, "Audio", 1, float(rate_hz), pylsl.cf_float32, source_id)
    info.desc().append_child("channels").append_child("channel").append_child_value("label", "audio")
    return pylsl.StreamOutlet(info, chunk_size=128, max_buffered=60)


def resolve(name: str, timeout_s: float) -> Any:
    """The StreamInfo of the stream called `name` on this machine (DataError when none answers in time)."""
    pylsl = import_pylsl()
    found = pylsl.resolve_byprop("name", name, minimum=1, timeout=float(timeout_s))
    if not found:
        raise DataError(f"No LSL stream named {name!r} found within {timeout_s:g} s on this machine. Start it first "
                        f"(`neurovox replay --data FILE --name {name}`, or the amplifier's LSL app), or check the name.")
    return found[0]


def channel_labels(info: Any) -> list[str]:
    """Channel labels from a stream's description (empty when it has none)."""
    labels = []
    ch = info.desc().child("channels").child("channel")
    while not ch.empty():
        labels.append(ch.child_value("label"))
        ch = ch.next_sibling()
    return labels
