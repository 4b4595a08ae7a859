"""Reading the small files users hand fitagent (config, snapshot, targets, token) with a size cap,
so a path to /dev/zero, a FIFO or a huge file is one clear error instead of a hung or swollen process."""

from __future__ import annotations

import os
import stat

from ..catalog.errors import UsageError

MAX_CONFIG_BYTES = 1 << 20  # a config, a snapshot or a targets file is a few kB; 1 MiB is generous


def read_text(path: str | os.PathLike, what: str, limit: int = MAX_CONFIG_BYTES) -> str:
    """The file's text; UsageError naming `what` and the path when it is missing, not a regular file,
    larger than `limit`, or not UTF-8. FileNotFoundError is re-raised for callers that word it."""
    path = os.fspath(path)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))  # a FIFO must not block the open
    except FileNotFoundError:
        raise
    except IsADirectoryError:
        raise UsageError(f"{what} {path}: is a directory, not a file") from None
    except OSError as exc:
        raise UsageError(f"{what} {path}: cannot read it ({exc.strerror or exc})") from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise UsageError(f"{what} {path}: is a directory, not a file")
        if not stat.S_ISREG(info.st_mode):
            raise UsageError(f"{what} {path}: not a regular file (a device, FIFO or socket); give a file")
        if info.st_size > limit:
            raise UsageError(f"{what} {path}: {info.st_size:,} bytes, more than the {limit:,} such a file can be")
        data = os.read(fd, limit + 1)
        while len(data) <= limit:
            more = os.read(fd, limit + 1 - len(data))
            if not more:
                break
            data += more
    except OSError as exc:
        raise UsageError(f"{what} {path}: cannot read it ({exc.strerror or exc})") from None
    finally:
        os.close(fd)
    if len(data) > limit:
        raise UsageError(f"{what} {path}: more than the {limit:,} bytes such a file can be")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"{what} {path}: not UTF-8 text") from None
