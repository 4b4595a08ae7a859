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


def write_atomic(path: str | os.PathLike, text: str, mode: int = 0o600) -> None:
    """Replace `path` with `text` whole: a fresh temporary file in the same folder (created
    exclusively, so never through a planted link; its name starts with a dot, which watchers of
    the folder such as NFD skip), fsynced, given `mode`, then renamed over the old one."""
    import tempfile

    path = os.fspath(path)
    folder, name = os.path.split(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=folder or ".")
    except OSError as exc:  # the same message every time, not the random temporary name
        raise OSError(exc.errno, f"{exc.strerror} (directory {folder or '.'})") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def write_private(path: str, text: str) -> None:
    """write_atomic into the user's own folder (made 0700 if missing), readable by this user only."""
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    write_atomic(path, text, 0o600)
