"""On a machine with an NVIDIA GPU: the probe against nvidia-smi, raw NVML readings, achievable
memory bandwidth and matrix throughput (PyTorch), free memory dropping while PyTorch holds
memory, and the agent serving the real NVML path.

    python -m benchmarks.nvidia_check --out DIR [--fitagent PATH] [--hold-gib 32]

Prints a summary and writes into DIR: summary.json (every figure below), nvml-raw.json (what
each NVML call the probe makes returned, per GPU: the material for fake-NVML fixtures),
nvidia-smi.xml, probe-idle.json, probe-loaded.json (while PyTorch holds --hold-gib), and
serve.json (the agent's /v1/hardware, /v1/events and /metrics around the same allocation).
Needs PyTorch with CUDA for the bandwidth and allocation steps; every step that fails is
recorded as an error and the rest still run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.request
from pathlib import Path

GIB = 1 << 30


def _step(summary: dict, name: str, fn, *args):
    started = time.perf_counter()
    try:
        summary[name] = fn(*args)
    except Exception as exc:  # a check machine: record and go on
        summary[name] = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc(limit=4)}
    print(
        f"== {name} ({time.perf_counter() - started:.1f} s): {json.dumps(summary[name], default=str)[:600]}", flush=True
    )


# ---------------------------------------------------------------- nvidia-smi and raw NVML

SMI_FIELDS = (
    "index,name,uuid,pci.bus_id,pci.device_id,memory.total,memory.free,memory.used,memory.reserved,"
    "driver_version,clocks.max.memory,clocks.max.sm,pcie.link.gen.max,pcie.link.width.max,compute_cap,"
    "power.limit,mig.mode.current"
)


def nvidia_smi(out: Path) -> dict:
    csv = subprocess.run(
        ["nvidia-smi", f"--query-gpu={SMI_FIELDS}", "--format=csv,nounits"], capture_output=True, text=True, timeout=30
    )
    xml = subprocess.run(["nvidia-smi", "-q", "-x"], capture_output=True, text=True, timeout=30)
    (out / "nvidia-smi.xml").write_text(xml.stdout)
    header, *rows = [line.split(", ") for line in csv.stdout.strip().splitlines()]
    return {"rc": csv.returncode, "stderr": csv.stderr.strip(), "gpus": [dict(zip(header, row)) for row in rows]}


def _nvml_value(value):
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    if hasattr(value, "_fields_"):
        return {name: _nvml_value(getattr(value, name)) for name, *_ in value._fields_}
    if isinstance(value, (list, tuple)):
        return [_nvml_value(v) for v in value]
    return value


def nvml_raw() -> dict:
    """Every NVML call the probe makes, with what it returned or raised."""
    import pynvml as nv

    def call(name, *args):
        try:
            return {"value": _nvml_value(getattr(nv, name)(*args))}
        except nv.NVMLError as exc:
            return {"error": type(exc).__name__, "code": getattr(exc, "value", None)}
        except Exception as exc:
            return {"error": type(exc).__name__, "message": str(exc)}

    nv.nvmlInit()
    try:
        doc = {
            "nvidia_ml_py": getattr(nv, "__version__", None),
            "driver": call("nvmlSystemGetDriverVersion"),
            "cuda": call("nvmlSystemGetCudaDriverVersion"),
            "count": call("nvmlDeviceGetCount"),
            "gpus": [],
        }
        for index in range(nv.nvmlDeviceGetCount()):
            h = nv.nvmlDeviceGetHandleByIndex(index)
            gpu = {
                name: call(name, h)
                for name in (
                    "nvmlDeviceGetName",
                    "nvmlDeviceGetUUID",
                    "nvmlDeviceGetPciInfo",
                    "nvmlDeviceGetCudaComputeCapability",
                    "nvmlDeviceGetMemoryBusWidth",
                    "nvmlDeviceGetMigMode",
                    "nvmlDeviceGetMaxMigDeviceCount",
                    "nvmlDeviceGetMaxPcieLinkGeneration",
                    "nvmlDeviceGetMaxPcieLinkWidth",
                    "nvmlDeviceGetCurrPcieLinkGeneration",
                    "nvmlDeviceGetCurrPcieLinkWidth",
                    "nvmlDeviceGetGpuMaxPcieLinkGeneration",
                    "nvmlDeviceGetComputeRunningProcesses",
                    "nvmlDeviceGetGraphicsRunningProcesses",
                    "nvmlDeviceGetMemoryInfo",
                )
            }
            gpu["nvmlDeviceGetMaxClockInfo(MEM)"] = call("nvmlDeviceGetMaxClockInfo", h, nv.NVML_CLOCK_MEM)
            gpu["nvmlDeviceGetMaxClockInfo(SM)"] = call("nvmlDeviceGetMaxClockInfo", h, nv.NVML_CLOCK_SM)
            gpu["nvmlDeviceGetClockInfo(MEM)"] = call("nvmlDeviceGetClockInfo", h, nv.NVML_CLOCK_MEM)
            if hasattr(nv, "nvmlMemory_v2"):
                gpu["nvmlDeviceGetMemoryInfo(v2)"] = call("nvmlDeviceGetMemoryInfo", h, nv.nvmlMemory_v2)
            doc["gpus"].append(gpu)
        return doc
    finally:
        nv.nvmlShutdown()


# ---------------------------------------------------------------- the probe


def probe(fitagent: str, out: Path, name: str) -> dict:
    started = time.perf_counter()
    run = subprocess.run([fitagent, "probe", "--json"], capture_output=True, text=True, timeout=60)
    seconds = time.perf_counter() - started
    (out / name).write_text(run.stdout)
    doc = json.loads(run.stdout)
    return {
        "rc": run.returncode,
        "seconds": round(seconds, 3),
        "stderr": run.stderr.strip()[:500],
        "gpus": [
            {
                k: g.get(k)
                for k in (
                    "name",
                    "pci_id",
                    "memory_total_bytes",
                    "memory_free_bytes",
                    "memory_used_bytes",
                    "memory_reserved_bytes",
                    "memory_bandwidth_bytes_per_s",
                    "bandwidth_source",
                    "compute_capability",
                    "driver_version",
                    "memory_source",
                    "processes",
                    "notes",
                )
            }
            for g in doc.get("gpus", [])
        ],
        "problems": doc.get("problems"),
    }


def compare(smi: dict, idle: dict) -> list[dict]:
    """fitagent's figures beside nvidia-smi's (MiB there, bytes here)."""
    rows = []
    for s, g in zip(smi.get("gpus", []), idle.get("gpus", [])):
        row = {"name": (s.get("name"), g.get("name"))}
        for key, field in (
            ("memory.total [MiB]", "memory_total_bytes"),
            ("memory.free [MiB]", "memory_free_bytes"),
            ("memory.used [MiB]", "memory_used_bytes"),
            ("memory.reserved [MiB]", "memory_reserved_bytes"),
        ):
            smi_bytes = int(s[key]) * (1 << 20) if s.get(key, "").strip().isdigit() else None
            row[field] = {
                "nvidia_smi": smi_bytes,
                "fitagent": g.get(field),
                "diff_bytes": None if smi_bytes is None or g.get(field) is None else g[field] - smi_bytes,
            }
        row["driver"] = (s.get("driver_version"), g.get("driver_version"))
        row["compute_capability"] = (s.get("compute_cap"), g.get("compute_capability"))
        row["max_memory_clock_mhz"] = s.get("clocks.max.memory [MHz]")
        rows.append(row)
    return rows


# ---------------------------------------------------------------- PyTorch: bandwidth and FLOPS


def _time_cuda(torch, fn, repeats: int, warmup: int = 3) -> float:
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    times = []
    for _ in range(repeats):
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end) / 1e3)
    times.sort()
    return times[len(times) // 2]  # median


def bandwidth() -> dict:
    import torch

    dev = torch.device("cuda")
    result = {"torch": torch.__version__, "device": torch.cuda.get_device_name(0)}
    for size_gib in (1, 4):
        n = size_gib * GIB // 2
        src = torch.ones(n, dtype=torch.bfloat16, device=dev)
        dst = torch.empty_like(src)
        copy_s = _time_cuda(torch, lambda dst=dst, src=src: dst.copy_(src), 20)
        read_s = _time_cuda(torch, lambda src=src: src.sum(dtype=torch.float32), 20)
        result[f"copy_{size_gib}gib_bytes_per_s"] = 2 * n * 2 / copy_s  # read + write
        result[f"read_{size_gib}gib_bytes_per_s"] = n * 2 / read_s
        src = dst = None  # free the buffers before the next size
        torch.cuda.empty_cache()
    # Decode reads a matrix once per token: a bf16 GEMV over 8 GiB of weights is the closest kernel.
    rows, cols = 65536, 65536
    w = torch.full((rows, cols), 0.001, dtype=torch.bfloat16, device=dev)
    x = torch.ones(cols, 1, dtype=torch.bfloat16, device=dev)
    gemv_s = _time_cuda(torch, lambda: w @ x, 20)
    result["gemv_bf16_8gib_bytes_per_s"] = rows * cols * 2 / gemv_s
    w = x = None
    torch.cuda.empty_cache()
    for dtype_name in ("bfloat16", "float16"):
        dtype = getattr(torch, dtype_name)
        a = torch.randn(8192, 8192, dtype=dtype, device=dev)
        b = torch.randn(8192, 8192, dtype=dtype, device=dev)
        mm_s = _time_cuda(torch, lambda a=a, b=b: a @ b, 10)
        result[f"matmul_{dtype_name}_8192_flops"] = 2 * 8192**3 / mm_s
        a = b = None
    torch.cuda.empty_cache()
    return {k: (round(v) if isinstance(v, float) else v) for k, v in result.items()}


class Hold:
    """PyTorch holding `gib` GiB on GPU 0 (plain cudaMalloc through the caching allocator)."""

    def __init__(self, gib: int):
        import torch

        self.torch = torch
        self.block = torch.empty(gib * GIB, dtype=torch.uint8, device="cuda")
        self.block.fill_(1)
        torch.cuda.synchronize()

    def release(self):
        del self.block
        self.torch.cuda.empty_cache()
        self.torch.cuda.synchronize()


def free_drop(fitagent: str, out: Path, hold_gib: int, idle: dict) -> dict:
    hold = Hold(hold_gib)
    try:
        loaded = probe(fitagent, out, "probe-loaded.json")
    finally:
        hold.release()
    before = idle["gpus"][0]["memory_free_bytes"]
    after = loaded["gpus"][0]["memory_free_bytes"]
    mine = [p for p in loaded["gpus"][0].get("processes") or [] if p.get("pid") == os.getpid()]
    return {
        "held_bytes": hold_gib * GIB,
        "free_before": before,
        "free_after": after,
        "drop_bytes": before - after,
        "drop_minus_held_bytes": before - after - hold_gib * GIB,
        "this_process_listed": mine,
        "processes": loaded["gpus"][0].get("processes"),
    }


# ---------------------------------------------------------------- the agent on the real NVML path


def _get(url: str, token: str | None = None, method: str = "GET") -> tuple[int, str]:
    request = urllib.request.Request(url, method=method, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def serve(fitagent: str, out: Path, hold_gib: int) -> dict:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    token = "device-check-token"
    config = Path(tempfile.mkdtemp()) / "fitagent-check.yaml"
    config.write_text(f"port: {port}\ntoken: {token}\nrescan_interval_s: 600\n")
    agent = subprocess.Popen(
        [fitagent, "serve", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    doc: dict = {}
    try:
        for _ in range(120):
            try:
                if _get(base + "/healthz")[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.5)
        doc["healthz"] = _get(base + "/healthz")
        doc["hardware_idle"] = json.loads(_get(base + "/v1/hardware")[1])
        doc["pick_idle"] = json.loads(_get(base + "/v1/pick?use_case=code&context=32768")[1])
        hold = Hold(hold_gib)
        try:
            doc["rescan"] = _get(base + "/v1/rescan?wait=30", token, "POST")
            doc["hardware_loaded"] = json.loads(_get(base + "/v1/hardware")[1])
            doc["events"] = json.loads(_get(base + "/v1/events?limit=50")[1])
            doc["metrics"] = _get(base + "/metrics")[1]
        finally:
            hold.release()
    finally:
        os.killpg(agent.pid, signal.SIGTERM)
        try:
            doc["log"] = agent.communicate(timeout=15)[0][-4000:]
        except subprocess.TimeoutExpired:
            os.killpg(agent.pid, signal.SIGKILL)
        doc["exit_code"] = agent.returncode
    (out / "serve.json").write_text(json.dumps(doc, indent=1))
    gpus = lambda hw: [(g["name"], g["memory_free_bytes"]) for g in hw.get("gpus", [])]  # noqa: E731
    return {
        "healthz_status": doc["healthz"][0],
        "free_idle": gpus(doc["hardware_idle"]),
        "free_loaded": gpus(doc["hardware_loaded"]),
        "rescan_status": doc["rescan"][0],
        "events": [e.get("message") for e in doc["events"].get("events", [])][-8:],
        "pick_idle": {k: doc["pick_idle"].get(k) for k in ("model", "quant", "gpu_layers", "decode_tokens_per_s")},
        "exit_code": doc["exit_code"],
    }


def recommend(fitagent: str, out: Path) -> dict:
    run = subprocess.run([fitagent, "recommend", "--top", "8"], capture_output=True, text=True, timeout=120)
    return {"rc": run.returncode, "stdout": run.stdout[-3000:], "stderr": run.stderr[-500:]}


def system_facts() -> dict:
    facts = {}
    try:
        facts["proc_devices_nvidia"] = [
            line for line in Path("/proc/devices").read_text().splitlines() if "nvidia" in line
        ]
    except OSError as exc:
        facts["proc_devices_nvidia"] = str(exc)
    facts["dev_nvidia"] = sorted(p.name for p in Path("/dev").glob("nvidia*"))
    for path in ("/sys/firmware/dmi/tables/DMI", "/sys/firmware/dmi/entries"):
        facts[path] = oct(os.stat(path).st_mode) if os.path.exists(path) else None
    facts["uname"] = os.uname().release
    facts["cpu_count"] = os.cpu_count()
    return facts


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--fitagent", default=shutil.which("fitagent") or "fitagent")
    parser.add_argument("--hold-gib", type=int, default=32)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    summary: dict = {}
    _step(summary, "system", system_facts)
    _step(summary, "nvidia_smi", nvidia_smi, args.out)
    _step(summary, "nvml_raw", nvml_raw)
    (args.out / "nvml-raw.json").write_text(json.dumps(summary.pop("nvml_raw"), indent=1, default=str))
    _step(summary, "probe_idle", probe, args.fitagent, args.out, "probe-idle.json")
    if "gpus" in summary["probe_idle"] and "gpus" in summary["nvidia_smi"]:
        _step(summary, "probe_vs_nvidia_smi", compare, summary["nvidia_smi"], summary["probe_idle"])
        _step(summary, "free_drop", free_drop, args.fitagent, args.out, args.hold_gib, summary["probe_idle"])
    _step(summary, "bandwidth", bandwidth)
    _step(summary, "serve", serve, args.fitagent, args.out, args.hold_gib)
    _step(summary, "recommend", recommend, args.fitagent, args.out)
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
