"""An in-memory NVML that behaves like NVIDIA's nvidia-ml-py (the `pynvml` module).

Same function names and signatures, the binding's own exception classes (NVMLError and its
generated NVMLError_<Name> subclasses), constants and ctypes result structures — so code
that works against this fake works against the real binding. It models what a driver does:
calls before nvmlInit raise Uninitialized, a lost GPU raises GpuIsLost, a driver before R510
has no nvmlDeviceGetMemoryInfo_v2, MIG memory is per MIG handle, unified-memory parts raise
NotSupported for memory, process lists may need privileges.

Device figures are modelled on public `nvidia-smi -q` / `deviceQuery` dumps (see
/work/shared/hardware-notes.md §1.3–1.6): RTX 4090 24564 MiB total, 354 MiB reserved, max
memory clock 10501 MHz on 384 bits; H100 SXM 81559 MiB, 2619 MHz on 5120 bits; A100-SXM4-80GB
81920 MiB, 1593 MHz on 5120 bits; RTX 3090 24576 MiB, 9751 MHz on 384 bits.

Use: ``nvml = FakeNvml([rtx_4090()])`` and pass it as ``nvml_module=nvml``; or
``sys.modules["pynvml"] = nvml.as_module()`` for code that imports pynvml itself.
"""

from __future__ import annotations

import types

import pynvml as _real

MiB = 1 << 20


class FakeProcess:
    def __init__(
        self,
        pid: int,
        used_bytes: int | None,
        name: str | None,
        kind: str = "compute",
        gpu_instance_id: int = 0xFFFFFFFF,
        compute_instance_id: int = 0xFFFFFFFF,
    ):
        self.pid, self.used_bytes, self.name, self.kind = pid, used_bytes, name, kind
        self.gpu_instance_id, self.compute_instance_id = gpu_instance_id, compute_instance_id


class FakeMigInstance:
    def __init__(
        self,
        slot: int,
        profile: str,
        uuid: str,
        gpu_instance_id: int,
        compute_instance_id: int,
        total_bytes: int,
        used_bytes: int,
        processes=(),
    ):
        self.slot, self.profile, self.uuid = slot, profile, uuid
        self.gpu_instance_id, self.compute_instance_id = gpu_instance_id, compute_instance_id
        self.total_bytes, self.used_bytes, self.processes = total_bytes, used_bytes, list(processes)


class FakeGpu:
    """One physical board as NVML describes it."""

    def __init__(
        self,
        *,
        name: str,
        uuid: str,
        pci_device_id: int,
        bus_id: str,
        total_bytes: int,
        reserved_bytes: int,
        used_bytes: int,
        bus_width_bits: int | None,
        max_memory_clock_mhz: int | None,
        compute_capability: tuple[int, int],
        pcie=(4, 16, 4, 16, 4),
        processes=(),
        mig_instances=None,
        max_mig_devices: int = 7,
        lost: bool = False,
        memory_supported: bool = True,
    ):
        self.name, self.uuid, self.pci_device_id, self.bus_id = name, uuid, pci_device_id, bus_id
        self.total_bytes, self.reserved_bytes, self.used_bytes = total_bytes, reserved_bytes, used_bytes
        self.bus_width_bits, self.max_memory_clock_mhz = bus_width_bits, max_memory_clock_mhz
        self.compute_capability, self.pcie, self.processes = compute_capability, pcie, list(processes)
        self.mig_instances = mig_instances  # None: not MIG-capable; []: capable, MIG off
        self.max_mig_devices, self.lost, self.memory_supported = max_mig_devices, lost, memory_supported


# --- realistic boards -------------------------------------------------------------------------


def rtx_4090(bus: int = 1, serial: int = 0) -> FakeGpu:
    return FakeGpu(
        name="NVIDIA GeForce RTX 4090",
        uuid=f"GPU-5b1c7d2e-{serial:04x}-4000-8000-000000004090",
        pci_device_id=0x268410DE,
        bus_id=f"00000000:{bus:02X}:00.0",
        total_bytes=24564 * MiB,
        reserved_bytes=354 * MiB,
        used_bytes=609 * MiB,
        bus_width_bits=384,
        max_memory_clock_mhz=10501,
        compute_capability=(8, 9),
        pcie=(3, 16, 1, 16, 4),
        processes=[
            FakeProcess(1873, 212 * MiB, "/usr/lib/xorg/Xorg", kind="graphics"),
            FakeProcess(40112, 386 * MiB, "/usr/bin/python3"),
        ],
    )


def rtx_3090(bus: int = 1, serial: int = 0, busy: bool = False) -> FakeGpu:
    processes = [FakeProcess(5151, 20480 * MiB, "/opt/llama.cpp/llama-server")] if busy else []
    return FakeGpu(
        name="NVIDIA GeForce RTX 3090",
        uuid=f"GPU-0c3a9f10-{serial:04x}-4000-8000-000000003090",
        pci_device_id=0x220410DE,
        bus_id=f"00000000:{bus:02X}:00.0",
        total_bytes=24576 * MiB,
        reserved_bytes=256 * MiB,
        used_bytes=(20486 if busy else 6) * MiB,
        bus_width_bits=384,
        max_memory_clock_mhz=9751,
        compute_capability=(8, 6),
        pcie=(4, 16, 4, 16, 4),
        processes=processes,
    )


def a100_80gb_mig(bus: int = 0x41) -> FakeGpu:
    """MIG on, two 3g.40gb instances; the first holds a vLLM worker."""
    instance_bytes = 40192 * MiB  # 39.25 GiB: the 3g.40gb profile on an 80 GB A100 (inferred)
    return FakeGpu(
        name="NVIDIA A100-SXM4-80GB",
        uuid="GPU-a1000000-0000-4000-8000-0000000a1000",
        pci_device_id=0x20B210DE,
        bus_id=f"00000000:{bus:02X}:00.0",
        total_bytes=81920 * MiB,
        reserved_bytes=0,
        used_bytes=87 * MiB,
        bus_width_bits=5120,
        max_memory_clock_mhz=1593,
        compute_capability=(8, 0),
        pcie=(4, 16, 4, 16, 4),
        mig_instances=[
            FakeMigInstance(
                0,
                "3g.40gb",
                "MIG-7e1d6a3c-1111-5b2e-9f00-00000000a101",
                1,
                0,
                instance_bytes,
                20013 * MiB,
                processes=[
                    FakeProcess(7001, 19968 * MiB, "/usr/bin/python3", gpu_instance_id=1, compute_instance_id=0)
                ],
            ),
            FakeMigInstance(1, "3g.40gb", "MIG-7e1d6a3c-2222-5b2e-9f00-00000000a102", 2, 0, instance_bytes, 13 * MiB),
        ],
    )


def h100_sxm(bus: int = 0x18) -> FakeGpu:
    return FakeGpu(
        name="NVIDIA H100 80GB HBM3",
        uuid="GPU-b1000000-0000-4000-8000-0000000b1000",
        pci_device_id=0x233010DE,
        bus_id=f"00000000:{bus:02X}:00.0",
        total_bytes=81559 * MiB,
        reserved_bytes=511 * MiB,
        used_bytes=4 * MiB,
        bus_width_bits=5120,
        max_memory_clock_mhz=2619,
        compute_capability=(9, 0),
        pcie=(5, 16, 5, 16, 5),
        mig_instances=[],
    )


def h200(bus: int = 6, processes=()) -> FakeGpu:
    """As a real H200 SXM answered NVML on 2026-12-04 (driver 580.159.04; recorded by
    `python -m benchmarks.nvidia_check` in tests/fixtures/device/h200/nvml-raw.json): 143771 MiB,
    615.06 MiB reserved, 3201 MHz on 6016 bits (not the 6144 the spec sheets imply), MIG off."""
    return FakeGpu(
        name="NVIDIA H200",
        uuid="GPU-786c46bb-ba0e-48b2-f7c2-c8e8c0b3474f",
        pci_device_id=0x233510DE,
        bus_id=f"00000000:00:{bus:02X}.0",
        total_bytes=150754820096,
        reserved_bytes=644939776,
        used_bytes=0,
        bus_width_bits=6016,
        max_memory_clock_mhz=3201,
        compute_capability=(9, 0),
        pcie=(5, 16, 5, 16, 5),
        processes=processes,
        mig_instances=[],
        max_mig_devices=0,
    )


def gb10() -> FakeGpu:
    """DGX Spark: unified LPDDR5X, NVML answers NotSupported for memory and has no bus width."""
    return FakeGpu(
        name="NVIDIA GB10",
        uuid="GPU-cb100000-0000-4000-8000-00000000cb10",
        pci_device_id=0x2E1210DE,
        bus_id="0000000F:01:00.0",
        total_bytes=0,
        reserved_bytes=0,
        used_bytes=0,
        bus_width_bits=None,
        max_memory_clock_mhz=None,
        compute_capability=(12, 1),
        pcie=(),
        memory_supported=False,
    )


def lost_gpu(bus: int = 2, serial: int = 1) -> FakeGpu:
    """An RTX 3090 that fell off the bus (Xid 79): every call on it raises GpuIsLost."""
    gpu = rtx_3090(bus=bus, serial=serial)
    gpu.lost = True
    return gpu


# --- the module ----------------------------------------------------------------------------------


class _Handle:
    """Stands in for c_nvmlDevice_t: opaque to callers."""

    def __init__(self, gpu: FakeGpu, instance: FakeMigInstance | None = None):
        self.gpu, self.instance = gpu, instance


def _raise(code: int):
    raise _real.NVMLError(code)  # NVMLError.__new__ picks the NVMLError_<Name> subclass


class FakeNvml:
    """The pynvml module's surface, backed by FakeGpu boards.

    Switches: ``init_error`` (an NVML_ERROR_* code nvmlInit raises: LIBRARY_NOT_FOUND,
    DRIVER_NOT_LOADED, NO_PERMISSION, LIB_RM_VERSION_MISMATCH…), ``memory_v2`` (False: driver
    before R510), ``mig_parent_memory`` ("no_permission" as for an unprivileged caller, or
    "aggregate"), ``processes_error`` (a code raised by the process-list calls).
    """

    def __init__(
        self,
        gpus,
        *,
        driver_version: str = "550.54.15",
        cuda_version: int = 12040,
        init_error: int | None = None,
        memory_v2: bool = True,
        mig_parent_memory: str = "no_permission",
        processes_error: int | None = None,
    ):
        self.gpus = list(gpus)
        self.driver_version, self.cuda_version = driver_version, cuda_version
        self.init_error, self.memory_v2 = init_error, memory_v2
        self.mig_parent_memory, self.processes_error = mig_parent_memory, processes_error
        self.initialised = 0
        self.calls: list[str] = []

    def as_module(self) -> types.ModuleType:
        module = types.ModuleType("pynvml")
        for name in dir(self):
            if not name.startswith("__"):
                setattr(module, name, getattr(self, name))
        return module

    # -- plumbing
    def _ready(self, name: str) -> None:
        self.calls.append(name)
        if not self.initialised:
            _raise(_real.NVML_ERROR_UNINITIALIZED)

    def _board(self, handle: _Handle) -> FakeGpu:
        if handle.gpu.lost:
            _raise(_real.NVML_ERROR_GPU_IS_LOST)
        return handle.gpu

    def _nvmlGetFunctionPointer(self, name: str):
        if not self.initialised:
            _raise(_real.NVML_ERROR_UNINITIALIZED)
        if name == "nvmlDeviceGetMemoryInfo_v2" and not self.memory_v2:
            _raise(_real.NVML_ERROR_FUNCTION_NOT_FOUND)
        return name

    # -- library
    def nvmlInitWithFlags(self, flags: int) -> None:
        self.calls.append("nvmlInit")
        if self.init_error is not None:
            _raise(self.init_error)
        self.initialised += 1

    def nvmlInit(self) -> None:
        self.nvmlInitWithFlags(0)

    def nvmlShutdown(self) -> None:
        self._ready("nvmlShutdown")
        self.initialised -= 1

    def nvmlSystemGetDriverVersion(self) -> str:
        self._ready("nvmlSystemGetDriverVersion")
        return self.driver_version

    def nvmlSystemGetCudaDriverVersion(self) -> int:
        self._ready("nvmlSystemGetCudaDriverVersion")
        return self.cuda_version

    nvmlSystemGetCudaDriverVersion_v2 = nvmlSystemGetCudaDriverVersion

    def nvmlSystemGetProcessName(self, pid: int) -> str:
        self._ready("nvmlSystemGetProcessName")
        for gpu in self.gpus:
            for proc in gpu.processes + [p for m in gpu.mig_instances or [] for p in m.processes]:
                if proc.pid == pid and proc.name:
                    return proc.name
        _raise(_real.NVML_ERROR_NOT_FOUND)

    # -- devices
    def nvmlDeviceGetCount(self) -> int:
        self._ready("nvmlDeviceGetCount")
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> _Handle:
        self._ready("nvmlDeviceGetHandleByIndex")
        if not 0 <= index < len(self.gpus):
            _raise(_real.NVML_ERROR_INVALID_ARGUMENT)
        gpu = self.gpus[index]
        if gpu.lost:
            _raise(_real.NVML_ERROR_GPU_IS_LOST)
        return _Handle(gpu)

    def nvmlDeviceGetName(self, handle: _Handle) -> str:
        self._ready("nvmlDeviceGetName")
        gpu = self._board(handle)
        return f"{gpu.name} MIG {handle.instance.profile}" if handle.instance else gpu.name

    def nvmlDeviceGetUUID(self, handle: _Handle) -> str:
        self._ready("nvmlDeviceGetUUID")
        gpu = self._board(handle)
        return handle.instance.uuid if handle.instance else gpu.uuid

    def nvmlDeviceGetPciInfo_v3(self, handle: _Handle):
        self._ready("nvmlDeviceGetPciInfo")
        gpu = self._board(handle)
        info = _real.nvmlPciInfo_t()
        domain, bus, rest = gpu.bus_id.split(":")
        info.busId = gpu.bus_id
        info.busIdLegacy = gpu.bus_id[4:]
        info.domain, info.bus, info.device = int(domain, 16), int(bus, 16), int(rest.split(".")[0], 16)
        info.pciDeviceId = gpu.pci_device_id
        info.pciSubSystemId = 0x16F310DE
        return info

    nvmlDeviceGetPciInfo = nvmlDeviceGetPciInfo_v3

    def nvmlDeviceGetMemoryInfo(self, handle: _Handle, version=None):
        self._ready("nvmlDeviceGetMemoryInfo")
        gpu = self._board(handle)
        if version:
            self._nvmlGetFunctionPointer("nvmlDeviceGetMemoryInfo_v2")
        if not gpu.memory_supported:
            _raise(_real.NVML_ERROR_NOT_SUPPORTED)
        if handle.instance is not None:
            total, reserved, used = handle.instance.total_bytes, 0, handle.instance.used_bytes
        elif gpu.mig_instances and self.mig_parent_memory == "no_permission":
            _raise(_real.NVML_ERROR_NO_PERMISSION)
        else:
            total, reserved, used = gpu.total_bytes, gpu.reserved_bytes, gpu.used_bytes
        free = total - reserved - used
        if version:
            memory = _real.c_nvmlMemory_v2_t()
            memory.version, memory.total, memory.reserved, memory.free, memory.used = (
                version,
                total,
                reserved,
                free,
                used,
            )
        else:  # v1 counts what the driver reserved as used
            memory = _real.c_nvmlMemory_t()
            memory.total, memory.free, memory.used = total, free, used + reserved
        return memory

    def nvmlDeviceGetMemoryBusWidth(self, handle: _Handle) -> int:
        self._ready("nvmlDeviceGetMemoryBusWidth")
        gpu = self._board(handle)
        if gpu.bus_width_bits is None:
            _raise(_real.NVML_ERROR_NOT_SUPPORTED)
        return gpu.bus_width_bits

    def nvmlDeviceGetMaxClockInfo(self, handle: _Handle, type: int) -> int:
        self._ready("nvmlDeviceGetMaxClockInfo")
        gpu = self._board(handle)
        if type != _real.NVML_CLOCK_MEM or gpu.max_memory_clock_mhz is None:
            _raise(_real.NVML_ERROR_NOT_SUPPORTED)
        return gpu.max_memory_clock_mhz

    def nvmlDeviceGetCudaComputeCapability(self, handle: _Handle) -> tuple[int, int]:
        self._ready("nvmlDeviceGetCudaComputeCapability")
        return self._board(handle).compute_capability

    def _pcie(self, handle: _Handle, position: int, name: str) -> int:
        self._ready(name)
        gpu = self._board(handle)
        if len(gpu.pcie) <= position:
            _raise(_real.NVML_ERROR_NOT_SUPPORTED)
        return gpu.pcie[position]

    def nvmlDeviceGetMaxPcieLinkGeneration(self, handle):
        return self._pcie(handle, 0, "nvmlDeviceGetMaxPcieLinkGeneration")

    def nvmlDeviceGetMaxPcieLinkWidth(self, handle):
        return self._pcie(handle, 1, "nvmlDeviceGetMaxPcieLinkWidth")

    def nvmlDeviceGetCurrPcieLinkGeneration(self, handle):
        return self._pcie(handle, 2, "nvmlDeviceGetCurrPcieLinkGeneration")

    def nvmlDeviceGetCurrPcieLinkWidth(self, handle):
        return self._pcie(handle, 3, "nvmlDeviceGetCurrPcieLinkWidth")

    def nvmlDeviceGetGpuMaxPcieLinkGeneration(self, handle):
        return self._pcie(handle, 4, "nvmlDeviceGetGpuMaxPcieLinkGeneration")

    def _processes(self, handle: _Handle, kind: str, name: str) -> list:
        self._ready(name)
        gpu = self._board(handle)
        if self.processes_error is not None:
            _raise(self.processes_error)
        listed = handle.instance.processes if handle.instance else gpu.processes
        out = []
        for proc in listed:
            if proc.kind != kind:
                continue
            info = _real.c_nvmlProcessInfo_v2_t()
            info.pid = proc.pid
            info.usedGpuMemory = (
                proc.used_bytes if proc.used_bytes is not None else _real.NVML_VALUE_NOT_AVAILABLE_ulonglong.value
            )
            info.gpuInstanceId, info.computeInstanceId = proc.gpu_instance_id, proc.compute_instance_id
            friendly = _real.nvmlStructToFriendlyObject(info)
            if friendly.usedGpuMemory == _real.NVML_VALUE_NOT_AVAILABLE_ulonglong.value:
                friendly.usedGpuMemory = None  # what the binding does for WDDM / MIG
            out.append(friendly)
        return out

    def nvmlDeviceGetComputeRunningProcesses(self, handle):
        return self._processes(handle, "compute", "nvmlDeviceGetComputeRunningProcesses")

    def nvmlDeviceGetGraphicsRunningProcesses(self, handle):
        return self._processes(handle, "graphics", "nvmlDeviceGetGraphicsRunningProcesses")

    # -- MIG
    def nvmlDeviceGetMigMode(self, handle: _Handle) -> list[int]:
        self._ready("nvmlDeviceGetMigMode")
        gpu = self._board(handle)
        if gpu.mig_instances is None or handle.instance is not None:
            _raise(_real.NVML_ERROR_NOT_SUPPORTED)
        mode = _real.NVML_DEVICE_MIG_ENABLE if gpu.mig_instances else _real.NVML_DEVICE_MIG_DISABLE
        return [mode, mode]

    def nvmlDeviceGetMaxMigDeviceCount(self, handle: _Handle) -> int:
        self._ready("nvmlDeviceGetMaxMigDeviceCount")
        gpu = self._board(handle)
        if gpu.mig_instances is None:
            _raise(_real.NVML_ERROR_NOT_SUPPORTED)
        return gpu.max_mig_devices

    def nvmlDeviceGetMigDeviceHandleByIndex(self, handle: _Handle, index: int) -> _Handle:
        self._ready("nvmlDeviceGetMigDeviceHandleByIndex")
        gpu = self._board(handle)
        for instance in gpu.mig_instances or []:
            if instance.slot == index:
                return _Handle(gpu, instance)
        _raise(_real.NVML_ERROR_NOT_FOUND)

    def nvmlDeviceIsMigDeviceHandle(self, handle: _Handle) -> bool:
        self._ready("nvmlDeviceIsMigDeviceHandle")
        return handle.instance is not None

    def nvmlDeviceGetGpuInstanceId(self, handle: _Handle) -> int:
        self._ready("nvmlDeviceGetGpuInstanceId")
        if handle.instance is None:
            _raise(_real.NVML_ERROR_INVALID_ARGUMENT)
        return handle.instance.gpu_instance_id

    def nvmlDeviceGetComputeInstanceId(self, handle: _Handle) -> int:
        self._ready("nvmlDeviceGetComputeInstanceId")
        if handle.instance is None:
            _raise(_real.NVML_ERROR_INVALID_ARGUMENT)
        return handle.instance.compute_instance_id

    def nvmlDeviceGetDeviceHandleFromMigDeviceHandle(self, handle: _Handle) -> _Handle:
        self._ready("nvmlDeviceGetDeviceHandleFromMigDeviceHandle")
        if handle.instance is None:
            _raise(_real.NVML_ERROR_INVALID_ARGUMENT)
        return _Handle(handle.gpu)


# The binding's constants, exception classes and structures, exactly as nvidia-ml-py defines them.
for _name in dir(_real):
    if _name.startswith(("NVML_", "NVMLError")) or _name in (
        "nvmlMemory_v2",
        "nvmlStructToFriendlyObject",
        "c_nvmlMemory_t",
        "c_nvmlMemory_v2_t",
        "nvmlPciInfo_t",
    ):
        _value = getattr(_real, _name)
        setattr(FakeNvml, _name, staticmethod(_value) if isinstance(_value, types.FunctionType) else _value)
del _name, _value
