"""Where fitagent keeps what it remembers between runs (the user's cache directory)."""

from __future__ import annotations

import os


def cache_dir(environ=None) -> str:
    """$FITAGENT_CACHE_DIR, systemd's $CACHE_DIRECTORY, else $XDG_CACHE_HOME/fitagent or ~/.cache/fitagent."""
    environ = os.environ if environ is None else environ
    explicit = environ.get("FITAGENT_CACHE_DIR") or environ.get("CACHE_DIRECTORY")
    if explicit:
        return explicit.split(":")[0]
    base = environ.get("XDG_CACHE_HOME") or os.path.join(environ.get("HOME") or os.path.expanduser("~"), ".cache")
    return os.path.join(base, "fitagent")


def write_private(path: str, text: str) -> None:
    """Replace `path` with `text` atomically: a fresh temporary file only this user can read
    (created exclusively, never through a planted link), then renamed over the old one."""
    folder = os.path.dirname(path)
    os.makedirs(folder, mode=0o700, exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    try:
        os.unlink(tmp)
    except FileNotFoundError:
        pass
    fd = os.open(tmp, flags, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
