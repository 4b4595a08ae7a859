"""Host RAM peak bandwidth from SMBIOS type 17 ("Memory Device") records.

Peak = configured MT/s × 8 bytes × populated 64-bit channels. The kernel exposes each record
as /sys/firmware/dmi/entries/17-N/raw, readable by root only on most systems; layout from
DMTF DSP0134 (SMBIOS 3.x) §7.18. "Configured Memory Speed" is what the DIMM runs at, "Speed"
only what it is rated for (a DDR4-3200 DIMM can run at 2133).
"""

from __future__ import annotations

import re
import struct

ENTRIES = "/sys/firmware/dmi/entries"

MEMORY_TYPES = {
    0x12: "DDR",
    0x13: "DDR2",
    0x18: "DDR3",
    0x1A: "DDR4",
    0x1B: "LPDDR",
    0x1C: "LPDDR2",
    0x1D: "LPDDR3",
    0x1E: "LPDDR4",
    0x20: "HBM",
    0x21: "HBM2",
    0x22: "DDR5",
    0x23: "LPDDR5",
    0x24: "HBM3",
}


class MemoryDevice:
    __slots__ = (
        "size_bytes",
        "memory_type",
        "configured_mts",
        "rated_mts",
        "data_width_bits",
        "locator",
        "bank_locator",
    )

    def __init__(self, size_bytes, memory_type, configured_mts, rated_mts, data_width_bits, locator, bank_locator):
        self.size_bytes = size_bytes
        self.memory_type = memory_type
        self.configured_mts = configured_mts
        self.rated_mts = rated_mts
        self.data_width_bits = data_width_bits
        self.locator = locator
        self.bank_locator = bank_locator


def _strings(raw: bytes, length: int) -> list[str]:
    return [s.decode("ascii", "replace").strip() for s in raw[length:].split(b"\x00")]


def _word(raw: bytes, offset: int) -> int | None:
    return struct.unpack_from("<H", raw, offset)[0] if len(raw) >= offset + 2 else None


def _dword(raw: bytes, offset: int) -> int | None:
    return struct.unpack_from("<I", raw, offset)[0] if len(raw) >= offset + 4 else None


def parse_memory_device(raw: bytes) -> MemoryDevice | None:
    """One type-17 record (formatted area + string table), or None if it is not one."""
    if len(raw) < 0x15 or raw[0] != 17:
        return None
    length = raw[1]
    formatted = raw[:length]
    strings = _strings(raw, length)

    def string(offset: int) -> str:
        index = formatted[offset] if len(formatted) > offset else 0
        return strings[index - 1] if 0 < index <= len(strings) else ""

    size = _word(formatted, 0x0C) or 0
    if size == 0x7FFF:
        size_bytes = (_dword(formatted, 0x1C) or 0) * 1024 * 1024
    elif size == 0xFFFF:
        size_bytes = None  # unknown size, but populated
    else:
        size_bytes = (size & 0x7FFF) * (1024 if size & 0x8000 else 1024 * 1024)

    def speed(offset: int, extended_offset: int) -> int | None:
        value = _word(formatted, offset)
        if value == 0xFFFF:
            value = (_dword(formatted, extended_offset) or 0) & 0x7FFFFFFF
        return value or None

    width = _word(formatted, 0x0A)
    return MemoryDevice(
        size_bytes=size_bytes,
        memory_type=MEMORY_TYPES.get(formatted[0x12] if len(formatted) > 0x12 else 0),
        configured_mts=speed(0x20, 0x58),
        rated_mts=speed(0x15, 0x54),
        data_width_bits=width if width not in (None, 0, 0xFFFF) else None,
        locator=string(0x10),
        bank_locator=string(0x11),
    )


def read_memory_devices(ctx) -> tuple[list[MemoryDevice], str | None]:
    """(devices, why none could be read)."""
    names = [n for n in ctx.listdir(ENTRIES) if n.startswith("17-")]
    if not names:
        return [], "no SMBIOS memory records (/sys/firmware/dmi absent: VM, container or non-x86)"
    devices, denied = [], False
    for name in names:
        try:
            with open(ctx.path(f"{ENTRIES}/{name}/raw"), "rb") as handle:
                device = parse_memory_device(handle.read())
        except PermissionError:
            denied = True
            continue
        except OSError:
            continue
        if device is not None:
            devices.append(device)
    if not devices and denied:
        return [], "SMBIOS memory records are readable by root only"
    return devices, None


_SOCKET = re.compile(r"\b(?:P|CPU|NODE|SOCKET)\s*_?(\d+)")
_CONTROLLER = re.compile(r"CONTROLLER\s*_?(\d+)")
_CHANNEL = (
    re.compile(r"CHANNEL\s*_?([A-Z0-9]+)"),
    re.compile(r"\bCH\s*_?([A-Z0-9])\b"),
    re.compile(r"DIMM\s*_?([A-Z])\d"),
    re.compile(r"^([A-Z])\d+$"),
)


def channel_of(device: MemoryDevice) -> tuple | None:
    """(socket, controller, channel) from the vendor-formatted locators, or None."""
    text = f"{device.bank_locator} {device.locator}".upper()
    for pattern in _CHANNEL:
        match = pattern.search(text) or pattern.search(device.locator.upper())
        if match:
            socket = _SOCKET.search(text)
            controller = _CONTROLLER.search(text)
            return (socket.group(1) if socket else "0", controller.group(1) if controller else "0", match.group(1))
    return None


def peak_bandwidth(devices: list[MemoryDevice]) -> tuple[int, str] | None:
    """(bytes/s, how it was derived) from the populated memory devices, or None."""
    populated = [d for d in devices if d.size_bytes != 0]
    speeds = [d.configured_mts or d.rated_mts for d in populated]
    if not populated or not all(speeds):
        return None
    mts = min(speeds)  # the memory runs at its slowest module's speed
    channels = [channel_of(d) for d in populated]
    width_of: dict = {}
    if all(channels):
        for key, device in zip(channels, populated):
            width_of[key] = max(width_of.get(key, 0), device.data_width_bits or 64)
        how = f"{len(width_of)} channel(s) named in the module locators"
    else:
        for n, device in enumerate(populated):
            width_of[n] = device.data_width_bits or 64
        how = f"{len(populated)} populated module(s), one channel each (locators name no channels)"
    width_bits = sum(width_of.values())
    kind = populated[0].memory_type or "RAM"
    rated = "configured" if populated[0].configured_mts else "rated"
    return mts * 1_000_000 * width_bits // 8, f"{kind} at {mts} MT/s ({rated}) × {width_bits} bit: {how}"
