"""Everything a backend reads the machine through, so tests hand in a fixture instead of patching.

The filesystem root (glances' ``drm_root_folder`` idea), the environment, the command runner
and the NVML module are parameters; the defaults are the real machine.
"""

from __future__ import annotations

import os
import sys


def run_command(argv: list[str], timeout_s: float = 5.0) -> str | None:
    """stdout of a command, or None when it is missing, fails or hangs."""
    import subprocess

    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 or done.stdout else None


def _default_system() -> str:
    if sys.platform.startswith("linux"):
        return "Linux"
    if sys.platform == "darwin":
        return "Darwin"
    if sys.platform.startswith(("win", "cygwin")):
        return "Windows"
    return sys.platform


class ProbeContext:
    """Where and how the probe reads: one object handed to every backend."""

    __slots__ = ("fs_root", "environ", "run", "nvml_module", "gpu_table", "system", "measure_bandwidth", "cache")

    def __init__(
        self,
        *,
        fs_root: str = "/",
        environ=None,
        run=None,
        nvml_module=None,
        gpu_table=None,
        system: str | None = None,
        measure_bandwidth: bool = False,
    ):
        self.fs_root = fs_root
        self.environ = os.environ if environ is None else environ
        self.run = run or run_command
        self.nvml_module = nvml_module  # None: NVIDIA's nvidia-ml-py, imported only when a driver is there
        self.gpu_table = gpu_table  # None: data/gpus.yaml, read only when a GPU needs it
        self.system = system or _default_system()
        self.measure_bandwidth = measure_bandwidth
        self.cache: dict = {}  # files several backends read (mountinfo, sysctl output), read once

    def path(self, absolute: str) -> str:
        if self.fs_root in ("", "/"):
            return absolute
        return os.path.join(self.fs_root, absolute.lstrip("/"))

    def read_text(self, absolute: str) -> str | None:
        """A small text file (sysfs, procfs), stripped; None when absent or not readable."""
        try:
            with open(self.path(absolute), encoding="utf-8", errors="replace") as handle:
                return handle.read().strip()
        except OSError:
            return None

    def read_int(self, absolute: str) -> int | None:
        text = self.read_text(absolute)
        if not text:
            return None
        try:
            return int(text, 16) if text[:2] in ("0x", "0X") else int(text)
        except ValueError:
            return None

    def listdir(self, absolute: str) -> list[str]:
        try:
            return sorted(os.listdir(self.path(absolute)))
        except OSError:
            return []

    def exists(self, absolute: str) -> bool:
        return os.path.exists(self.path(absolute))

    def _gpus(self):
        if self.gpu_table is None:
            from .tables import load_gpu_table

            self.gpu_table = load_gpu_table()
        return self.gpu_table

    def lookup_gpu(self, pci_id: str | None):
        """The gpus.yaml entry for a PCI id (vendor:device), or None."""
        return self._gpus().gpu_by_pci_id(pci_id) if pci_id else None

    def lookup_gpu_name(self, name: str):
        """The gpus.yaml entry with this name or alias (Apple chips have no PCI id), or None."""
        return self._gpus().gpu_by_name(name)
