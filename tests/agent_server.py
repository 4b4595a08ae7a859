"""Start `fitagent serve` as a real process on an ephemeral port and talk HTTP to it (test helper)."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from conftest import SNAPSHOTS, fitagent_command

# Small enough that a scan takes well under a second on a shared CI core.
FAST_CONFIG = """\
port: 0
rescan_interval_s: 3600
contexts: [8192, 16384]
use_cases: [general, code]
token: test-token
events_max: 50
"""


class Prober:
    """In-process stand-in for the hardware probe: hands out snapshots in turn (the last one
    again once they run out); an exception in the list is raised instead."""

    def __init__(self, *items):
        self.items = list(items)
        self.calls = 0

    def __call__(self):
        item = self.items[min(self.calls, len(self.items) - 1)]
        self.calls += 1
        if isinstance(item, Exception):
            raise item
        return item


def clean_env(extra: dict | None = None) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FITAGENT_", "NOTIFY_SOCKET", "WATCHDOG_"))}
    env.update(extra or {})
    return env


def write_snapshot(path: Path, data: dict) -> None:
    """Replace the file whole, as a probe writing a snapshot would (a reader never sees half)."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


def copy_fixture(name: str, directory: Path) -> Path:
    target = directory / f"{name}.json"
    shutil.copyfile(SNAPSHOTS / f"{name}.json", target)
    return target


class AgentProcess:
    def __init__(
        self,
        directory: Path,
        hardware: Path | None,
        config_text: str = FAST_CONFIG,
        env: dict | None = None,
        args: tuple[str, ...] = (),
    ):
        self.directory = directory
        self.config_path = directory / "fitagent.yaml"
        self.config_path.write_text(config_text)
        command = [*fitagent_command(), "serve", "--config", str(self.config_path), *args]
        if hardware is not None:
            command += ["--hardware", str(hardware)]
        self.log: list[str] = []
        self._bound = threading.Event()
        self.url = ""
        self.proc = subprocess.Popen(
            command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=clean_env(env), cwd=directory
        )
        threading.Thread(target=self._read_log, daemon=True).start()

    def _read_log(self) -> None:
        for line in self.proc.stderr:
            self.log.append(line.rstrip("\n"))
            found = re.search(r"serving on (http://\S+)", line)
            if found:
                self.url = found.group(1)
                self._bound.set()

    def wait_bound(self, timeout: float = 60) -> AgentProcess:
        if not self._bound.wait(timeout):
            self.stop()
            raise AssertionError("agent did not start:\n" + "\n".join(self.log))
        return self

    def wait_ready(self, timeout: float = 120) -> AgentProcess:
        self.wait_bound()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status, body = self.get("/healthz")
            if status == 200:
                return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError("agent never became ready:\n" + "\n".join(self.log))

    def request(self, method: str, path: str, headers: dict | None = None, timeout: float = 60):
        req = urllib.request.Request(self.url + path, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as response:
                return response.status, response.headers, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.headers, exc.read()

    def get(self, path: str, **kw):
        status, headers, body = self.request("GET", path, **kw)
        ctype = headers.get("Content-Type", "")
        return status, (json.loads(body) if ctype.startswith("application/json") else body.decode())

    def post(self, path: str, token: str | None = None):
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        status, headers, body = self.request("POST", path, headers=headers)
        return status, json.loads(body)

    def rescan(self, timeout_s: int = 30) -> dict:
        status, body = self.post(f"/v1/rescan?wait={timeout_s}", token="test-token")
        assert status == 200, body
        return body

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def stop(self, timeout: float = 20) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode
