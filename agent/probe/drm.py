"""GPUs as the kernel's DRM subsystem lists them in sysfs (AMD and Intel backends)."""

from __future__ import annotations

import re

DRM = "/sys/class/drm"
_CARD = re.compile(r"card(\d+)")  # card0-HDMI-A-1 and friends are connectors, not GPUs


class Card:
    __slots__ = ("name", "number", "device_dir", "pci_id", "pci_bus_id", "driver")

    def __init__(self, name, number, device_dir, pci_id, pci_bus_id, driver):
        self.name = name
        self.number = number
        self.device_dir = device_dir
        self.pci_id = pci_id
        self.pci_bus_id = pci_bus_id
        self.driver = driver


def cards(ctx, vendor_id: str) -> list[Card]:
    """DRM cards whose PCI vendor is `vendor_id` ("0x1002"), in card-number order."""
    found = []
    for name in ctx.listdir(DRM):
        match = _CARD.fullmatch(name)
        if not match:
            continue
        device_dir = f"{DRM}/{name}/device"
        if (ctx.read_text(f"{device_dir}/vendor") or "").lower() != vendor_id:
            continue
        uevent = dict(line.partition("=")[::2] for line in (ctx.read_text(f"{device_dir}/uevent") or "").splitlines())
        device = (ctx.read_text(f"{device_dir}/device") or "").lower().removeprefix("0x")
        pci_id = (uevent.get("PCI_ID") or f"{vendor_id[2:]}:{device}").lower()
        found.append(
            Card(name, int(match.group(1)), device_dir, pci_id, uevent.get("PCI_SLOT_NAME"), uevent.get("DRIVER"))
        )
    return sorted(found, key=lambda c: c.number)
