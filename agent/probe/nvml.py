"""The one way into NVML: the only module that imports ``pynvml`` (NVIDIA's nvidia-ml-py).

It loads the binding lazily (after checking the driver library is there at all, because the
import alone costs ~15 ms), turns "not supported" / "function not found" into ``None``, tells
the binding apart from the deprecated look-alikes, and words every failure as cause + fix.
Tests pass a fake module with the same functions and exception classes instead of patching.
"""

from __future__ import annotations

import os
import sys

LIBRARY = "libnvidia-ml.so.1"

# NVML_ERROR_* values (nvml.h); the binding's exception classes carry them as `.value`.
UNINITIALIZED, INVALID_ARGUMENT, NOT_SUPPORTED, NO_PERMISSION = 1, 2, 3, 4
NOT_FOUND, INSUFFICIENT_SIZE, DRIVER_NOT_LOADED, TIMEOUT = 6, 7, 9, 10
LIBRARY_NOT_FOUND, FUNCTION_NOT_FOUND, GPU_IS_LOST, RESET_REQUIRED = 12, 13, 15, 16
LIB_RM_VERSION_MISMATCH, ARGUMENT_VERSION_MISMATCH, NOT_READY, GPU_NOT_FOUND, UNKNOWN = 18, 25, 27, 28, 999

_HOST_FIXES = {
    LIBRARY_NOT_FOUND: f"NVML library not found ({LIBRARY}): no NVIDIA driver on this host"
    " — if it has an NVIDIA GPU, install the NVIDIA driver; in a container, start it with"
    " `--gpus all` (NVIDIA Container Toolkit)",
    DRIVER_NOT_LOADED: "NVIDIA driver libraries are installed but the kernel module is not loaded"
    " — run `sudo modprobe nvidia` or reboot after installing the driver; in a container,"
    " start it with `--gpus all` so /dev/nvidia* are passed in",
    NO_PERMISSION: "no permission to open the NVIDIA devices (/dev/nvidiactl, /dev/nvidia*)"
    " — run as a user who may open them; under systemd allow them with"
    " `DeviceAllow=char-nvidia* rw` and keep `PrivateDevices=` off",
    LIB_RM_VERSION_MISMATCH: "the NVIDIA driver was upgraded but the old kernel module is still loaded"
    " — reboot (or unload and reload the nvidia modules)",
    FUNCTION_NOT_FOUND: "the NVIDIA driver is older than the nvidia-ml-py binding expects"
    " — update the driver, or install an nvidia-ml-py matching its branch",
    INSUFFICIENT_SIZE: "NVML could not allocate what it needed — check `nvidia-smi` and free host memory",
    TIMEOUT: "NVML timed out talking to the driver — check `nvidia-smi`; a hung GPU may need a reset",
    UNKNOWN: "NVML reported an unknown error — run `nvidia-smi`; if it fails too, the driver needs attention",
}

# (cause, fix) for errors that concern one GPU: the cause goes into the GPU's `error`
# field, cause and fix into the problem line.
_DEVICE_ERRORS = {
    GPU_IS_LOST: (
        "GPU is lost (fell off the bus)",
        "check `sudo dmesg | grep -i xid`, then reset it (`nvidia-smi -r`) or reboot; the other GPUs are still reported",
    ),
    RESET_REQUIRED: ("GPU needs a reset", "run `nvidia-smi -r` on it (as root, with nothing running) or reboot"),
    GPU_NOT_FOUND: ("GPU is no longer on the bus", "check `sudo dmesg`, reseat it or reboot"),
    NO_PERMISSION: ("no permission to read this GPU", "run as a user who may open /dev/nvidia*"),
    NOT_READY: ("GPU is not ready (still initialising)", "probe again in a moment"),
    TIMEOUT: ("GPU did not answer in time", "check `nvidia-smi`; it may need a reset"),
    UNKNOWN: ("NVML returned an unknown error for this GPU", "run `nvidia-smi`; it may need a reset"),
}


def text(value):
    """NVML strings arrive as str from nvidia-ml-py, as bytes from older bindings."""
    return value.decode(errors="replace") if isinstance(value, bytes) else value


class NvmlUnavailable(Exception):
    """NVML cannot be used at all; the message names the cause and the fix."""

    def __init__(self, message: str, driver_absent: bool = False):
        super().__init__(message)
        self.driver_absent = driver_absent  # no NVIDIA driver at all, as opposed to a broken one


def error_code(exc) -> int | None:
    return getattr(exc, "value", None)


def host_error_message(exc) -> str:
    code = error_code(exc)
    fix = _HOST_FIXES.get(code) if code is not None else None
    return fix or f"NVML failed to start ({exc}, code {code}) — run `nvidia-smi` to see whether the driver works"


def device_error(exc) -> tuple[str, str]:
    """(cause, fix) for an NVML error on one GPU."""
    code = error_code(exc)
    if code in _DEVICE_ERRORS:
        return _DEVICE_ERRORS[code]
    if code in _HOST_FIXES:
        cause, _, fix = _HOST_FIXES[code].partition(" — ")
        return cause, fix
    return f"NVML error: {exc} (code {code})", "run `nvidia-smi` on this GPU"


def device_error_message(exc) -> str:
    return " — ".join(device_error(exc))


def library_absent(environ, fs_root: str = "/") -> bool:
    """True when the dynamic loader certainly cannot find libnvidia-ml.so.1 (Linux only).

    Checks what glibc's loader searches — LD_LIBRARY_PATH, /etc/ld.so.cache, the default
    directories — without importing ctypes. Where the cache cannot be read (musl, odd
    layouts) it asks the loader itself through ctypes, so "absent" is never a guess.
    """
    if not sys.platform.startswith("linux"):
        return False
    root = "" if fs_root in ("", "/") else fs_root.rstrip("/")
    dirs = [d for d in environ.get("LD_LIBRARY_PATH", "").split(":") if d]
    dirs += [
        "/lib64",
        "/usr/lib64",
        "/lib",
        "/usr/lib",
        "/usr/lib/x86_64-linux-gnu",
        "/usr/lib/aarch64-linux-gnu",
        "/usr/lib/wsl/lib",
    ]
    if any(os.path.exists(root + os.path.join(d, LIBRARY)) for d in dirs):
        return False
    try:
        with open(root + "/etc/ld.so.cache", "rb") as handle:
            return LIBRARY.encode() not in handle.read()
    except OSError:
        if root:
            return True
    import ctypes

    try:
        ctypes.CDLL(LIBRARY)
    except OSError:
        return True
    return False


def import_binding(environ, fs_root: str = "/"):
    """The real pynvml module, or NvmlUnavailable saying why not and what to do."""
    if library_absent(environ, fs_root):
        raise NvmlUnavailable(_HOST_FIXES[LIBRARY_NOT_FOUND], driver_absent=True)
    import warnings

    try:
        with warnings.catch_warnings():
            # The deprecated `pynvml` shim warns on import, but it only forwards to nvidia-ml-py.
            warnings.simplefilter("ignore")
            import pynvml
    except ImportError:
        raise NvmlUnavailable(
            "the NVIDIA driver is installed but NVIDIA's Python binding is not"
            " — `pip install nvidia-ml-py` in fitagent's environment"
        ) from None
    return pynvml


def check_binding(module) -> None:
    """Refuse bindings that are not NVIDIA's nvidia-ml-py (gpustat and nvitop do the same)."""
    needed = ("nvmlInit", "nvmlDeviceGetMemoryInfo", "NVMLError", "nvmlMemory_v2")
    missing = [name for name in needed if not hasattr(module, name)]
    if missing:
        where = getattr(module, "__file__", None) or "the `pynvml` module"
        raise NvmlUnavailable(
            f"{where} is not NVIDIA's nvidia-ml-py (it lacks {', '.join(missing)}; py3nvml, nvidia-ml-py3 and"
            " old pynvml releases count reserved memory as used) — `pip uninstall pynvml nvidia-ml-py3 py3nvml"
            " && pip install nvidia-ml-py`"
        )


class Session:
    """An initialised NVML: calls that map "not supported" to None and remember missing symbols."""

    def __init__(self, module):
        self.lib = module
        self.memory_api = None  # "v2" or "v1", fixed by the first answer

    def call(self, name: str, *args, **kwargs):
        """NVML function `name`, or None where the driver or GPU does not support it."""
        function = getattr(self.lib, name, None)
        if function is None:  # binding older than the call
            return None
        try:
            return function(*args, **kwargs)
        except self.lib.NVMLError as exc:
            if error_code(exc) in (NOT_SUPPORTED, FUNCTION_NOT_FOUND):
                return None
            raise

    def memory_info(self, handle):
        """(total, free, used, reserved or None, api): v2 leaves reserved memory out of used."""
        if self.memory_api != "v1":
            try:
                info = self.lib.nvmlDeviceGetMemoryInfo(handle, version=self.lib.nvmlMemory_v2)
                self.memory_api = "v2"
                return info.total, info.free, info.used, info.reserved, "v2"
            except self.lib.NVMLError as exc:
                # Drivers before R510 have no _v2 symbol; v1 on them is the best there is.
                if error_code(exc) not in (FUNCTION_NOT_FOUND, ARGUMENT_VERSION_MISMATCH):
                    raise
                self.memory_api = "v1"
        info = self.lib.nvmlDeviceGetMemoryInfo(handle)
        return info.total, info.free, info.used, None, "v1"

    def close(self) -> None:
        try:
            self.lib.nvmlShutdown()
        except self.lib.NVMLError:
            pass


def open_session(module=None, environ=None, fs_root: str = "/") -> Session:
    """Initialise NVML; raise NvmlUnavailable with cause and fix when it cannot be used."""
    environ = os.environ if environ is None else environ
    if module is None:
        module = import_binding(environ, fs_root)
    check_binding(module)
    try:
        module.nvmlInit()
    except module.NVMLError as exc:
        raise NvmlUnavailable(host_error_message(exc), driver_absent=error_code(exc) == LIBRARY_NOT_FOUND) from None
    return Session(module)
