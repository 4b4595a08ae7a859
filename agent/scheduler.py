"""The agent: rescans on a schedule (and on demand) and swaps the state whole.

One APScheduler job, one instance at a time, coalescing missed runs; a request never waits
for a probe. A failed scan keeps the last good snapshot and records the error.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timezone

from ..catalog.types import Catalog
from ..estimator.budget import budget_from_snapshot
from ..estimator.hardware import HardwareSnapshot
from . import sdnotify
from .config import Config
from .events import Change, EventLog, fit_changes, hardware_changes, watched_changes
from .state import (
    AgentState,
    Precomputed,
    ResponseCache,
    ScanAborted,
    budget_moved,
    precompute,
    release_freed_memory,
    settings_key,
)

log = logging.getLogger("fitagent.agent")
JOB_ID = "rescan"

Prober = Callable[[], HardwareSnapshot]


def _one_line(exc: BaseException) -> str:
    from ..catalog.errors import FitagentError

    text = " ".join(str(exc).split())
    if isinstance(exc, FitagentError) and text:
        return text
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class Agent:
    def __init__(
        self,
        config: Config,
        prober: Prober | None = None,
        catalog: Catalog | None = None,
        notify: Callable[[str], bool] = sdnotify.notify,
        clock: Callable[[], float] = time.time,
    ):
        if catalog is None:
            from .catalog_cache import load_catalog

            catalog = load_catalog()
        self.catalog = catalog
        self._config = config
        self._token = config.read_token()
        self._prober = prober or self._default_prober
        self._notify = notify
        self._clock = clock
        self.events = EventLog(config.events_max)
        self._state = AgentState(
            generation=0,
            snapshot=None,
            computed=None,
            scanned_at=None,
            scan_duration_s=None,
            rescan_interval_s=config.rescan_interval_s,
        )
        self._scan_lock = threading.Lock()
        self._scanned = threading.Condition()
        # A rescan asked for while the job runs would be skipped by the scheduler (one instance at a
        # time): the running job sees the flag and scans once more instead.
        self._rescan_lock = threading.Lock()
        self._rescan_pending = False
        self._job_running = False
        self._stop = threading.Event()
        self._scheduler = None
        self._ready_sent = False
        self.started_at = clock()

    # ------------------------------------------------------------ what views read

    @property
    def state(self) -> AgentState:
        return self._state

    @property
    def config(self) -> Config:
        return self._config

    @property
    def token(self) -> str | None:
        return self._token

    def _default_prober(self) -> HardwareSnapshot:
        if self._config.hardware:
            from .hardware import load_snapshot_file

            return load_snapshot_file(self._config.hardware)  # re-read each scan: what-if files can change
        from .hardware import take_snapshot

        first = self._state.generation == 0
        return take_snapshot(measure_bandwidth=first and self._config.measure_bandwidth_at_start)

    # ------------------------------------------------------------ scanning

    def scan_once(self) -> AgentState:
        """Probe, precompute (or reuse what still holds), swap. Never raises for a failed probe."""
        with self._scan_lock:
            old, config = self._state, self._config
            started, now = time.monotonic(), self._clock()
            previous = old.computed
            try:
                snapshot = self._prober()
                computed = self._computed_for(snapshot, previous, config)
            except ScanAborted:
                return old
            except Exception as exc:  # noqa: BLE001 - a failing scan is reported, and the last good state kept
                new = self._failed(old, _one_line(exc), now)
            else:
                new = AgentState(
                    generation=old.generation + 1,
                    snapshot=snapshot,
                    computed=computed,
                    scanned_at=now,
                    scan_duration_s=time.monotonic() - started,
                    rescan_interval_s=config.rescan_interval_s,
                    scans_total=old.scans_total + 1,
                    scan_failures_total=old.scan_failures_total,
                    installed=self._scan_installed(config),
                )
                self.events.extend(self._changes(old, new, previous, config), now)
            self._state = new
        if new.error is None:
            self._write_node_features(new, config)
            self._read_runtimes(new, config)
        self._after_scan(new)
        return new

    def _read_runtimes(self, state: AgentState, config: Config) -> None:
        """What the runtimes serving here reach (agent/runtimes.py), kept in the cache dir for
        /v1/hardware and the box's factor; a runtime that is not there, or a failure, is no failed scan."""
        import os

        from .paths import cache_dir
        from .runtimes import endpoints, measure, save_store

        where = endpoints(config.runtimes)
        if not where or state.computed is None:
            return
        try:
            readings, _ = measure(where, self.catalog, state.computed.budget)
            if readings:
                save_store(cache_dir(os.environ), readings)
        except Exception as exc:  # noqa: BLE001 - a side output of the scan
            log.warning("could not read the runtimes' metrics: %s", _one_line(exc))

    def _write_node_features(self, state: AgentState, config: Config) -> None:
        """The NFD feature file (``nfd_features_file``), after each good scan; a failure is logged
        (once per distinct error), never a failed scan: node labels are a side output."""
        if not config.nfd_features_file:
            return
        from .fleet.nfd import write_node_features

        try:
            write_node_features(config.nfd_features_file, state, config, self.catalog)
            self._nfd_error = None
        except Exception as exc:  # noqa: BLE001
            message = _one_line(exc)
            if getattr(self, "_nfd_error", None) != message:
                log.warning("could not write node features to %s: %s", config.nfd_features_file, message)
            self._nfd_error = message

    def _computed_for(self, snapshot: HardwareSnapshot, previous: Precomputed | None, config: Config) -> Precomputed:
        if previous is not None and previous.settings == settings_key(config):
            budget = budget_from_snapshot(snapshot, self.catalog)
            if not budget_moved(previous.budget, budget, config.recompute_min_change_bytes):
                return previous
        computed = precompute(snapshot, self.catalog, config, stop=self._stop, clock=self._clock)
        release_freed_memory()
        return computed

    def _scan_installed(self, config: Config):
        """The models installed here (agent/localmodels), rescanned through the scan cache: a stat per
        file, headers read only where a file changed. A failure is logged and leaves the last list,
        never a failed scan."""
        import os

        from .localmodels import NOTHING, scan_installed

        try:
            return scan_installed(self.catalog, os.environ, model_dirs=config.model_dirs)
        except Exception as exc:  # noqa: BLE001 - the disk's models are a side output of a scan
            log.warning("could not scan the installed models: %s", _one_line(exc))
            return self._state.installed or NOTHING

    def _failed(self, old: AgentState, message: str, now: float) -> AgentState:
        log.error("scan failed: %s", message)
        if old.error != message:
            kept = (
                f"keeping the scan from {old.age_s(now):.0f} s ago"
                if old.scanned_at is not None
                else "no good scan yet"
            )
            self.events.add(Change("scan_failed", f"scan failed: {message} ({kept})", {"error": message}), now)
        return replace(
            old,
            generation=old.generation + 1,
            error=message,
            error_at=now,
            consecutive_failures=old.consecutive_failures + 1,
            scans_total=old.scans_total + 1,
            scan_failures_total=old.scan_failures_total + 1,
            cache=ResponseCache(256),
        )

    def _changes(self, old: AgentState, new: AgentState, previous: Precomputed | None, config: Config) -> list[Change]:
        changes = []
        if old.error is not None:
            changes.append(
                Change("scan_recovered", f"scans work again after {old.consecutive_failures} failure(s)", {})
            )
        if old.snapshot is None:
            return changes
        assert new.snapshot is not None and new.computed is not None  # new is a good scan's state
        hardware = hardware_changes(old.snapshot, new.snapshot, config.recompute_min_change_bytes)
        changes += hardware
        computed = new.computed
        if previous is None or computed is previous:
            return changes
        old_host, new_host = previous.budget.host_available_bytes, computed.budget.host_available_bytes
        if previous.default_key == computed.default_key:
            use_case, context = computed.default_key
            changes += fit_changes(
                previous.best_fitting, computed.best_fitting, context, use_case, hardware, old_host, new_host
            )
        changes += watched_changes(previous.watched, computed.watched, hardware, old_host, new_host)
        return changes

    def _after_scan(self, state: AgentState) -> None:
        if state.error is None:
            status = f"STATUS=scan {state.generation} ok in {state.scan_duration_s:.2f} s"
        else:
            status = f"STATUS=scan failed: {state.error}"
        # The watchdog is petted by every scan that completes, failed or not: what it guards
        # against is a wedged scan (a hung driver call), and a failing one is already reported
        # as stale in /healthz; restarting would only throw away the last good state.
        self._notify(f"WATCHDOG=1\n{status}")
        if not self._ready_sent:
            self._ready_sent = True
            self._notify(f"READY=1\n{status}")
        with self._scanned:
            self._scanned.notify_all()

    def wait_for_scan(self, after_generation: int, timeout_s: float) -> AgentState:
        """Block until a scan newer than `after_generation` finished (or the timeout)."""
        deadline = time.monotonic() + timeout_s
        with self._scanned:
            while self._state.generation <= after_generation:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._scanned.wait(left)
        return self._state

    def _scheduled_scan(self) -> None:
        with self._rescan_lock:
            self._job_running = True
        while True:
            with self._rescan_lock:
                self._rescan_pending = False
            try:
                self.scan_once()
            except Exception:  # noqa: BLE001 - keep the job alive whatever happens
                log.exception("scan crashed")
            with self._rescan_lock:
                if not self._rescan_pending:
                    self._job_running = False
                    return

    # ------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Start the rescan job; the first scan runs at once."""
        from apscheduler.executors.pool import ThreadPoolExecutor
        from apscheduler.schedulers.background import BackgroundScheduler

        if self._scheduler is not None:
            return
        interval = self._config.rescan_interval_s
        watchdog = sdnotify.watchdog_interval_s()
        if watchdog is not None and interval * 2 > watchdog:
            log.warning(
                "rescan_interval_s %.0f s is more than half of systemd's WatchdogSec (%.0f s); "
                "raise WatchdogSec or the service will be restarted",
                interval,
                watchdog,
            )
        scheduler = BackgroundScheduler(
            timezone=timezone.utc,
            executors={"default": ThreadPoolExecutor(1)},
            job_defaults={"max_instances": 1, "coalesce": True},
        )
        scheduler.add_job(
            self._scheduled_scan,
            "interval",
            seconds=interval,
            id=JOB_ID,
            max_instances=1,
            coalesce=True,
            misfire_grace_time=int(interval) or 1,
            next_run_time=datetime.now(timezone.utc),
            replace_existing=True,
        )
        scheduler.start()
        self._scheduler = scheduler

    def request_rescan(self) -> None:
        """Run the scan job now (in the scheduler's thread, so scans stay one at a time); a job that
        is running scans once more when it finishes."""
        with self._rescan_lock:
            self._rescan_pending = True
            if self._job_running:
                return
        if self._scheduler is not None and self._scheduler.running:
            self._scheduler.modify_job(JOB_ID, next_run_time=datetime.now(timezone.utc))
        else:
            threading.Thread(target=self._scheduled_scan, name="fitagent-rescan", daemon=True).start()

    def reload(self, config: Config) -> list[str]:
        """Apply a validated new configuration; returns what could not be applied without a restart."""
        token = config.read_token()
        old, self._config, self._token = self._config, config, token
        self.events.resize(config.events_max)
        needs_restart = [k for k in ("host", "port", "threads") if getattr(old, k) != getattr(config, k)]
        if self._scheduler is not None and old.rescan_interval_s != config.rescan_interval_s:
            self._scheduler.reschedule_job(JOB_ID, trigger="interval", seconds=config.rescan_interval_s)
        changed = settings_key(old) != settings_key(config) or old.hardware != config.hardware
        changed = changed or old.model_dirs != config.model_dirs  # the installed models' folders
        note = f"; {', '.join(needs_restart)} take effect after a restart" if needs_restart else ""
        self.events.add(Change("config", f"configuration reloaded from {config.source}{note}", {}), self._clock())
        if changed or old.recompute_min_change_bytes != config.recompute_min_change_bytes:
            self.request_rescan()
        return needs_restart

    def wait_idle(self, timeout: float) -> bool:
        """Whether no scan is running, waiting up to `timeout` seconds for one to finish."""
        if self._scan_lock.acquire(timeout=timeout):
            self._scan_lock.release()
            return True
        return False

    def stop(self) -> None:
        """Stop rescanning; a scan in progress gives up at its next step."""
        self._stop.set()
        if self._scheduler is not None:
            try:
                self._scheduler.shutdown(wait=False)
            except Exception:  # noqa: BLE001 - already stopped
                pass
            self._scheduler = None
