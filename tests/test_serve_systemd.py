"""systemd integration: the notify protocol spoken by `fitagent serve`, and the unit file."""

from __future__ import annotations

import re
import shutil
import signal
import socket
import subprocess
from pathlib import Path

import pytest
from agent_server import AgentProcess, copy_fixture

UNIT = Path(__file__).resolve().parent.parent / "systemd" / "fitagent.service"


def receive_until(sock: socket.socket, wanted: str, limit: int = 50) -> list[str]:
    messages = []
    for _ in range(limit):
        message = sock.recv(4096).decode()
        messages.append(message)
        if wanted in message.splitlines():
            return messages
    raise AssertionError(f"never got {wanted}: {messages}")


def test_ready_watchdog_and_stopping_are_sent(tmp_path):
    address = str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(address)
        sock.settimeout(60)
        agent = AgentProcess(
            tmp_path, copy_fixture("rtx4090", tmp_path), env={"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "120000000"}
        )
        try:
            messages = receive_until(sock, "READY=1")
            assert messages[0].splitlines()[0] == "WATCHDOG=1"  # the first scan pets, then says ready
            assert messages[-1].splitlines()[1].startswith("STATUS=scan 1 ok in ")
            agent.wait_ready()
            agent.rescan()
            assert receive_until(sock, "WATCHDOG=1")[-1].startswith("WATCHDOG=1\nSTATUS=scan 2 ok")
            agent.signal(signal.SIGTERM)
            assert receive_until(sock, "STOPPING=1")
            assert agent.proc.wait(20) == 0
        finally:
            agent.stop()


def test_unit_file_has_the_hardening_the_issue_asks_for():
    lines = UNIT.read_text().splitlines()
    settings = [line.split("=", 1) for line in lines if "=" in line and not line.startswith("#")]
    values: dict[str, list[str]] = {}
    for key, value in settings:
        values.setdefault(key, []).append(value)
    assert values["Type"] == ["notify"] and values["WatchdogSec"] == ["120"]
    assert values["DynamicUser"] == ["yes"] and values["ProtectSystem"] == ["strict"]
    assert values["ProtectHome"] == ["yes"] and values["NoNewPrivileges"] == ["yes"] and values["PrivateTmp"] == ["yes"]
    assert "PrivateDevices" not in values  # it would hide the GPUs from NVML
    allowed = {v.split()[0] for v in values["DeviceAllow"]}
    assert {"/dev/nvidiactl", "char-nvidia*", "/dev/nvidia-uvm", "char-drm", "/dev/kfd"} <= allowed
    assert values["ExecReload"] == ["/bin/kill -HUP $MAINPID"]


@pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed (apt-get install systemd)"
)
def test_systemd_analyze_verify_passes(tmp_path, cli):
    # verify checks that ExecStart exists: point it at this installation's fitagent.
    from conftest import fitagent_command

    exe = fitagent_command()[0]
    if not Path(exe).is_file():
        pytest.skip("fitagent is not installed as a script")
    unit = tmp_path / "fitagent.service"
    unit.write_text(UNIT.read_text().replace("/opt/fitagent/bin/fitagent", exe))
    result = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr  # a misspelt setting is only a warning


@pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed (apt-get install systemd)"
)
def test_systemd_security_exposure_is_at_most_1_5(tmp_path):
    unit = tmp_path / "fitagent.service"
    unit.write_text(UNIT.read_text())
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", str(unit)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    exposure = float(re.search(r"Overall exposure level for fitagent\.service: ([0-9.]+)", result.stdout).group(1))
    assert exposure <= 1.5, result.stdout[-3000:]
    values = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values.setdefault(key, []).append(value)
    assert values["IPAddressDeny"] == ["any"] and values["IPAddressAllow"] == ["localhost"]
    assert values["ProtectProc"] == ["invisible"] and "~@privileged @resources" in values["SystemCallFilter"]
