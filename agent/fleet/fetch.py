"""One HTTP GET for the fleet: whole within a deadline, no larger than a cap.

A socket timeout alone bounds each read, not the answer: a host (or a Prometheus) that drips one
byte every two seconds never trips a three-second timeout, and an endless body grows without end.
Here the answer must be complete `timeout_s` after the request started and no longer than `limit`.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request

CHUNK = 1 << 16


class FetchFailed(Exception):
    """The answer did not come: the message says why, for a `down` entry or a one-line error."""

    def __init__(self, message: str, status: int | None = None, body: bytes = b""):
        super().__init__(message)
        self.status, self.body = status, body


def fetch(url: str, timeout_s: float, limit: int, headers: dict | None = None, data: bytes | None = None) -> bytes:
    """GET `url` (POST `data` when given), within `timeout_s`, at most `limit` bytes."""
    deadline = time.monotonic() + timeout_s
    request = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return _read(response, deadline, limit, timeout_s)
    except urllib.error.HTTPError as exc:
        try:
            body = _read(exc, deadline, 1 << 20, timeout_s)
        except FetchFailed:
            body = b""
        raise FetchFailed(f"HTTP {exc.code} {exc.reason}", exc.code, body) from None
    except urllib.error.URLError as exc:
        raise FetchFailed(str(getattr(exc, "reason", exc))) from None
    except (TimeoutError, OSError) as exc:
        raise FetchFailed(f"{exc or 'timed out'} (after {timeout_s:g} s; --timeout sets it)") from None


def _read(response, deadline: float, limit: int, timeout_s: float) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        if time.monotonic() > deadline:
            raise FetchFailed(f"the answer was not complete after {timeout_s:g} s (--timeout sets it)")
        chunk = response.read1(CHUNK) if hasattr(response, "read1") else response.read(CHUNK)
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > limit:
            raise FetchFailed(f"the answer is larger than {limit:,} bytes")
        chunks.append(chunk)
