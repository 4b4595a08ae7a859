"""A bounded walk below the scan's roots: each symbolic link followed once, never out of the roots.

What goes wrong on a disk is data, not an exception: an unreadable folder, a link loop, a link that
leads outside every root or to nothing become ``(path, message)`` problems, and the walk goes on.
Only the files a caller wants are stat-ed; nothing is opened here.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

MAX_DEPTH = 16  # folders below a root (LM Studio needs 2, a Hugging Face snapshot 1 or 2)
MAX_ENTRIES = 500_000  # directory entries in one scan: a root of `/` stops here instead of running for hours


@dataclass(frozen=True)
class FileStat:
    path: str  # as reached from the root (links not resolved): what a runtime is given
    size: int
    mtime_ns: int

    @property
    def signature(self) -> list:
        return [self.path, self.size, self.mtime_ns]


class Walker:
    """Walks folders below `boundaries` (the scan's roots). A directory is entered once, whatever
    number of links lead to it (its (st_dev, st_ino) is remembered); a link is followed only when its
    target, resolved, lies under a root."""

    def __init__(self, boundaries: Iterable[str], problems: list[tuple[str, str]]):
        self.boundaries = tuple(dict.fromkeys(os.path.realpath(b) for b in boundaries))
        self.problems = problems
        self.visited: set[tuple[int, int]] = set()
        self._real_folders: dict[str, str] = {}
        self.entries = 0
        self.stats = 0  # files stat-ed (the benchmark reports it)

    def problem(self, path: str, message: str) -> None:
        self.problems.append((path, message))

    def inside(self, real: str) -> bool:
        return any(real == b or real.startswith(b.rstrip(os.sep) + os.sep) for b in self.boundaries)

    def stat(self, path: str) -> os.stat_result | None:
        """The status of a file the walk did not reach itself (a blob a manifest names): only when the
        path, resolved (a link in it, a linked folder on the way), lies under a root; else None and a problem."""
        return self._follow(path)

    def file(self, path: str) -> FileStat | None:
        st = self.stat(path)
        if st is None:
            return None
        if not stat.S_ISREG(st.st_mode):
            self.problem(path, "not a regular file (a folder, pipe or device?)")
            return None
        return FileStat(path, st.st_size, st.st_mtime_ns)

    def _real_folder(self, folder: str) -> str:
        real = self._real_folders.get(folder)
        if real is None:
            real = self._real_folders[folder] = os.path.realpath(folder)
        return real

    def resolve(self, link: str) -> str:
        """The link's target, resolved as os.path.realpath does, with the folders on the way resolved
        once per scan (a Hugging Face snapshot holds a link per file, all into the same blobs/)."""
        try:
            target = os.readlink(link)
        except OSError:
            return os.path.realpath(link)
        # the link's folder, resolved, has no links left in it: ".." in the target is plain path arithmetic
        candidate = os.path.normpath(os.path.join(self._real_folder(os.path.dirname(link)), target))
        folder, name = os.path.split(candidate)
        found = os.path.join(self._real_folder(folder), name) if name else candidate
        return os.path.realpath(found) if os.path.islink(found) else found

    def _follow(self, path: str) -> os.stat_result | None:
        real = self.resolve(path)
        if not self.inside(real):
            self.problem(path, f"a link to {real}, outside the folders scanned: not followed")
            return None
        try:
            self.stats += 1
            return os.stat(path)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                self.problem(path, "symbolic link loop: the link leads back to itself")
            elif exc.errno == errno.ENOENT:
                self.problem(path, f"broken link: its target {real} does not exist")
            else:
                self.problem(path, _reason(exc))
            return None

    def enter(self, top: str) -> bool:
        """Mark a root (or a folder reached directly) as walked; False when it was already, or is no folder."""
        try:
            st = os.stat(top)
        except OSError:
            return False
        key = (st.st_dev, st.st_ino)
        if not stat.S_ISDIR(st.st_mode) or key in self.visited:
            return False
        self.visited.add(key)
        return True

    def tree(
        self, top: str, wanted: Callable[[str], bool], max_depth: int = MAX_DEPTH
    ) -> Iterator[tuple[str, list[FileStat]]]:
        """(folder, the wanted files in it) for `top` and every folder below it, parents first."""
        if not self.enter(top):
            return
        stack = [(top, 0)]
        while stack:
            path, depth = stack.pop()
            files, folders = self.listing(path, wanted)
            yield path, files
            if folders and depth >= max_depth:
                self.problem(path, f"more than {max_depth} folders deep: what lies below is not scanned")
                continue
            stack += [(f, depth + 1) for f in reversed(folders)]

    def listing(self, path: str, wanted: Callable[[str], bool]) -> tuple[list[FileStat], list[str]]:
        """The wanted files and the not-yet-walked folders directly in `path`, by name (dot-files skipped)."""
        files: list[FileStat] = []
        folders: list[str] = []
        try:
            scanner = os.scandir(path)
        except OSError as exc:
            self.problem(path, f"cannot list this folder: {_reason(exc)}")
            return files, folders
        with scanner:
            for entry in scanner:
                if self.entries >= MAX_ENTRIES:
                    if self.entries == MAX_ENTRIES:
                        self.problem(path, f"stopped after {MAX_ENTRIES:,} entries: scan a narrower folder")
                        self.entries += 1
                    break
                self.entries += 1
                name = entry.name
                if name.startswith("."):
                    continue  # .git, .locks, .cache, partial downloads
                try:
                    link = entry.is_symlink()
                    if link:
                        if not wanted(name) and not entry.is_dir():
                            continue
                        st = self._follow(entry.path)
                        if st is None:
                            continue
                    else:
                        if not wanted(name) and not entry.is_dir(follow_symlinks=False):
                            continue
                        self.stats += 1
                        st = entry.stat(follow_symlinks=False)
                except OSError as exc:
                    self.problem(entry.path, _reason(exc))
                    continue
                if stat.S_ISDIR(st.st_mode):
                    key = (st.st_dev, st.st_ino)
                    if key in self.visited:
                        if link and _is_ancestor(self.resolve(entry.path), self._real_folder(path)):
                            self.problem(
                                entry.path,
                                "symbolic link loop: it leads back to a folder above it "
                                f"({self.resolve(entry.path)}): not followed",
                            )
                        continue  # reached before by another way: its models are listed from there
                    self.visited.add(key)
                    folders.append(entry.path)
                elif wanted(name):
                    if not stat.S_ISREG(st.st_mode):
                        self.problem(entry.path, "not a regular file (a pipe, socket or device?)")
                        continue
                    files.append(FileStat(entry.path, st.st_size, st.st_mtime_ns))
        files.sort(key=lambda f: f.path)
        folders.sort()
        return files, folders


def _is_ancestor(target: str, folder: str) -> bool:
    return folder == target or folder.startswith(target.rstrip(os.sep) + os.sep)


def _reason(exc: OSError) -> str:
    if isinstance(exc, PermissionError):
        return "permission denied"
    return exc.strerror or str(exc)
