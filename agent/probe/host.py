"""The host: CPU, RAM, and what caps them (cgroup limits, containers, WSL).

On Linux everything comes from /proc and /sys under the context's root, which is what
psutil reads too, without its import cost. Elsewhere psutil and sysctl answer.
"""

from __future__ import annotations

import os
import re

from . import cgroup

# MIDR implementer/part → core name (Arm's TRMs; the same table util-linux's lscpu uses)
# /proc/cpuinfo's (CPU implementer, CPU part) of Arm's own cores (Linux arch/arm64/include/asm/cputype.h).
_ARM_PARTS = {
    ("0x41", "0xd03"): "Cortex-A53",
    ("0x41", "0xd04"): "Cortex-A35",
    ("0x41", "0xd05"): "Cortex-A55",
    ("0x41", "0xd07"): "Cortex-A57",
    ("0x41", "0xd08"): "Cortex-A72",
    ("0x41", "0xd09"): "Cortex-A73",
    ("0x41", "0xd0a"): "Cortex-A75",
    ("0x41", "0xd0b"): "Cortex-A76",
    ("0x41", "0xd0c"): "Neoverse-N1",
    ("0x41", "0xd0d"): "Cortex-A77",
    ("0x41", "0xd0e"): "Cortex-A76AE",
    ("0x41", "0xd40"): "Neoverse-V1",
    ("0x41", "0xd41"): "Cortex-A78",
    ("0x41", "0xd42"): "Cortex-A78AE",
    ("0x41", "0xd44"): "Cortex-X1",
    ("0x41", "0xd46"): "Cortex-A510",
    ("0x41", "0xd47"): "Cortex-A710",
    ("0x41", "0xd48"): "Cortex-X2",
    ("0x41", "0xd49"): "Neoverse-N2",
    ("0x41", "0xd4b"): "Cortex-A78C",
    ("0x41", "0xd4d"): "Cortex-A715",
    ("0x41", "0xd4e"): "Cortex-X3",
    ("0x41", "0xd4f"): "Neoverse-V2",
    ("0x41", "0xd80"): "Cortex-A520",
    ("0x41", "0xd81"): "Cortex-A720",
    ("0x41", "0xd82"): "Cortex-X4",
    ("0x41", "0xd84"): "Neoverse-V3",
    ("0x41", "0xd85"): "Cortex-X925",
    ("0x41", "0xd87"): "Cortex-A725",
}


def cpu_class_of(parts: list[str]) -> str | None:
    """ "embedded" when every core is a Cortex-A (Raspberry Pi, Jetson, Rockchip boards): cores that
    take several times a desktop CPU's time to build llama.cpp's graph and drive a GPU through it
    (estimator.speed: embedded_host_layer_seconds). Neoverse, Cortex-X, Apple and x86 cores: None."""
    return "embedded" if parts and all(p.startswith("Cortex-A") for p in parts) else None


def probe(ctx) -> dict:
    if ctx.system == "Linux" and ctx.read_text("/proc/meminfo"):
        facts = _linux(ctx)
    elif ctx.system == "Darwin":
        facts = _darwin(ctx)
    else:
        facts = _portable()
    _apply_cgroup_limits(ctx, facts)
    return facts


def _meminfo(ctx) -> dict[str, int]:
    values = {}
    for line in (ctx.read_text("/proc/meminfo") or "").splitlines():
        name, _, rest = line.partition(":")
        number = rest.split()
        if number and number[0].isdigit():
            values[name] = int(number[0]) * (1024 if rest.strip().endswith("kB") else 1)
    return values


def _cpuinfo(ctx) -> tuple[str | None, int, int, str | None, list[str]]:
    """(model, physical cores, logical CPUs, architecture class, Arm core names) from /proc/cpuinfo."""
    model, processors, cores, parts = None, 0, set(), []
    arch = None
    physical_id, implementer = None, ""
    for line in (ctx.read_text("/proc/cpuinfo") or "").splitlines():
        key, _, value = (part.strip() for part in line.partition(":"))
        if key == "processor":
            processors += 1
        elif key == "model name" and model is None:
            model = value
        elif key == "physical id":
            physical_id = value
        elif key == "core id":
            cores.add((physical_id, value))
        elif key == "CPU implementer":
            implementer, arch = value, "arm"
        elif key == "vendor_id" and arch is None:
            arch = "x86"
        elif key == "CPU part":
            name = _ARM_PARTS.get((implementer.lower(), value.lower()))
            if name and name not in parts:
                parts.append(name)
    if model is None:
        board = ctx.read_text("/sys/firmware/devicetree/base/model")
        model = board.rstrip("\x00") if board else ("ARM " + " + ".join(parts) if parts else None)
    processors = processors or os.cpu_count() or 1
    return model, len(cores) or processors, processors, arch, parts


def _linux(ctx) -> dict:
    mem = _meminfo(ctx)
    total = mem.get("MemTotal", 0)
    available = mem.get("MemAvailable")
    if available is None:  # kernels before 3.14
        available = mem.get("MemFree", 0) + mem.get("Buffers", 0) + mem.get("Cached", 0)
    model, cores, processors, arch, parts = _cpuinfo(ctx)
    threads = processors
    if ctx.fs_root in ("", "/") and hasattr(os, "sched_getaffinity"):
        threads = len(os.sched_getaffinity(0))  # taskset / cpuset narrow what we may use
    release = ctx.read_text("/proc/sys/kernel/osrelease") or os.uname().release
    return {
        "hostname": ctx.read_text("/proc/sys/kernel/hostname") or os.uname().nodename,
        "os": f"Linux {release}",
        "cpu_model": model,
        "cpu_cores": min(cores, threads),
        "cpu_threads": threads,
        "cpu_arch": arch,
        "cpu_class": cpu_class_of(parts),
        "memory_total_bytes": total,
        "memory_available_bytes": min(available, total),
        "container": _container(ctx),
        "wsl": True if "microsoft" in release.lower() else None,
        "notes": [],
    }


def _container(ctx) -> str | None:
    if ctx.environ.get("KUBERNETES_SERVICE_HOST"):
        return "kubernetes"
    if ctx.exists("/.dockerenv"):
        return "docker"
    if ctx.exists("/run/.containerenv"):
        return "podman"
    if ctx.environ.get("container"):  # systemd-nspawn, podman, lxc set it for their payload
        return ctx.environ["container"]
    first = ctx.read_text("/proc/1/cgroup") or ""
    for marker, name in (("kubepods", "kubernetes"), ("docker", "docker"), ("lxc", "lxc"), ("libpod", "podman")):
        if marker in first:
            return name
    return None


def darwin_sysctl(ctx) -> dict[str, str]:
    """The sysctl values the Apple backends need, read with one command."""
    if "sysctl" not in ctx.cache:
        names = [
            "hw.memsize",
            "hw.physicalcpu",
            "hw.logicalcpu",
            "hw.perflevel0.physicalcpu",
            "machdep.cpu.brand_string",
            "iogpu.wired_limit_mb",
            "kern.hostname",
            "kern.osrelease",
        ]
        values = {}
        # Unknown names (iogpu.* before macOS 14, perflevel on Intel Macs) only drop their line.
        for line in (ctx.run(["sysctl", *names]) or "").splitlines():
            key, sep, value = line.partition(":")
            if sep:
                values[key.strip()] = value.strip()
        ctx.cache["sysctl"] = values
    return ctx.cache["sysctl"]


def sysctl_int(text: str | None) -> int | None:
    return int(text) if text and text.strip().isdigit() else None


def _vm_stat_available(ctx) -> int | None:
    """Free + inactive pages, psutil's definition of "available" on macOS."""
    text = ctx.run(["vm_stat"]) or ""
    page = re.search(r"page size of (\d+) bytes", text)
    pages = dict(re.findall(r"^Pages (free|inactive):\s+(\d+)\.", text, re.MULTILINE))
    if not page or len(pages) != 2:
        return None
    return (int(pages["free"]) + int(pages["inactive"])) * int(page.group(1))


# The CPU architecture as the estimator prices it (a core's bandwidth: estimator.calibration),
# from platform.machine()'s names.
CPU_ARCH_OF_MACHINE = {"x86_64": "x86", "amd64": "x86", "i686": "x86", "aarch64": "arm", "arm64": "arm"}


def _arch_of_brand(brand: str | None) -> str | None:
    if not brand:
        return None
    return "arm" if brand.startswith("Apple") else "x86" if "Intel" in brand or "AMD" in brand else None


def _darwin(ctx) -> dict:
    values = darwin_sysctl(ctx)
    total = sysctl_int(values.get("hw.memsize")) or 0
    available = _vm_stat_available(ctx)
    threads = sysctl_int(values.get("hw.logicalcpu")) or os.cpu_count() or 1
    return {
        "hostname": values.get("kern.hostname") or os.uname().nodename,
        "os": f"Darwin {values.get('kern.osrelease') or os.uname().release}",
        "cpu_model": values.get("machdep.cpu.brand_string"),
        "cpu_cores": sysctl_int(values.get("hw.physicalcpu")) or threads,
        "cpu_threads": threads,
        "cpu_arch": _arch_of_brand(values.get("machdep.cpu.brand_string")),
        "memory_total_bytes": total,
        "memory_available_bytes": min(available, total) if available is not None else total,
        "container": None,
        "wsl": None,
        "notes": [] if available is not None else ["vm_stat unreadable: available RAM assumed equal to total"],
    }


def _portable() -> dict:
    import platform
    import socket

    import psutil

    vm = psutil.virtual_memory()
    threads = psutil.cpu_count() or os.cpu_count() or 1
    return {
        "hostname": socket.gethostname(),
        "os": f"{platform.system()} {platform.release()}",
        "cpu_model": platform.processor() or None,
        "cpu_cores": psutil.cpu_count(logical=False) or threads,
        "cpu_threads": threads,
        "cpu_arch": CPU_ARCH_OF_MACHINE.get(platform.machine().lower()),
        "memory_total_bytes": vm.total,
        "memory_available_bytes": vm.available,
        "container": None,
        "wsl": None,
        "notes": [],
    }


def _apply_cgroup_limits(ctx, facts: dict) -> None:
    if ctx.system != "Linux":
        return
    memory = cgroup.memory_limit(ctx, facts["memory_total_bytes"])
    if memory is not None:
        facts["memory_limit_bytes"] = memory.limit_bytes
        facts["memory_limit_source"] = memory.version
        facts["memory_available_bytes"] = min(facts["memory_available_bytes"], memory.available_bytes)
        facts["notes"].append(
            f"RAM capped at {memory.limit_bytes / 1e9:.1f} GB by {memory.path}; available = the limit minus"
            " what this cgroup holds (reclaimable page cache not counted)"
        )
    cpus = cgroup.cpu_limit(ctx)
    if cpus is not None and cpus[0] < facts["cpu_cores"]:
        facts["cpu_cores"] = max(1, int(-(-cpus[0] // 1)))  # ceil: 1.5 CPUs of quota keep 2 cores busy
        facts["notes"].append(f"CPU cores capped at {cpus[0]:g} by the CFS quota in {cpus[1]}")
