"""systemd's notify protocol (sd_notify(3)): one datagram to $NOTIFY_SOCKET, nothing when unset.

waitress does not speak it, so the agent says READY=1 after its first scan, WATCHDOG=1
after each scan that completes, and STOPPING=1 on SIGTERM.
"""

from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger("fitagent.sdnotify")


def notify(state: str, environ=os.environ) -> bool:
    """Send `state` (e.g. "READY=1\\nSTATUS=…"); False when not under systemd or the send failed."""
    address = environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]  # abstract namespace
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(state.encode("utf-8"))
        return True
    except OSError as exc:
        log.warning("could not notify systemd at %s: %s", environ.get("NOTIFY_SOCKET"), exc)
        return False


def watchdog_interval_s(environ=os.environ) -> float | None:
    """systemd's WatchdogSec for this process, when it set one."""
    usec = environ.get("WATCHDOG_USEC")
    pid = environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return int(usec) / 1e6
    except ValueError:
        return None
