"""The cgroup limits that cap this process (containers, systemd MemoryMax=, Kubernetes).

Reads /proc/self/cgroup and /proc/self/mountinfo to find this process's cgroup directory,
then walks up to the mount root: a parent's limit binds as much as our own. Handles v2
(memory.max, cpu.max) and v1 (memory.limit_in_bytes, cpu.cfs_quota_us).
"""

from __future__ import annotations

# v1 "no limit" is PAGE_COUNTER_MAX × page size, 9223372036854771712 on 4 KiB pages
_UNLIMITED = 1 << 62


class CgroupMemory:
    __slots__ = ("limit_bytes", "usage_bytes", "reclaimable_bytes", "version", "path")

    def __init__(self, limit_bytes, usage_bytes, reclaimable_bytes, version, path):
        self.limit_bytes = limit_bytes
        self.usage_bytes = usage_bytes
        self.reclaimable_bytes = reclaimable_bytes
        self.version = version
        self.path = path

    @property
    def available_bytes(self) -> int:
        """What this cgroup can still allocate: page cache it holds can be reclaimed."""
        used = max(0, (self.usage_bytes or 0) - (self.reclaimable_bytes or 0))
        return max(0, self.limit_bytes - used)


def _own_cgroups(ctx) -> dict[str, str]:
    """{"v2": path} and/or {"v1:<controller>": path} from /proc/self/cgroup."""
    if "cgroups" in ctx.cache:
        return ctx.cache["cgroups"]
    found = ctx.cache["cgroups"] = {}
    for line in (ctx.read_text("/proc/self/cgroup") or "").splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        hierarchy, controllers, path = parts
        if hierarchy == "0" and controllers == "":
            found["v2"] = path
        for controller in controllers.split(","):
            if controller:
                found[f"v1:{controller}"] = path
    return found


def _mounts(ctx) -> dict[str, tuple[str, str]]:
    """{"v2" | "v1:<controller>": (mount root, mount point)} from /proc/self/mountinfo."""
    if "cgroup_mounts" in ctx.cache:
        return ctx.cache["cgroup_mounts"]
    found: dict[str, tuple[str, str]] = {}
    ctx.cache["cgroup_mounts"] = found
    for line in (ctx.read_text("/proc/self/mountinfo") or "").splitlines():
        left, _, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if len(fields) < 5 or len(tail) < 3:
            continue
        root, mount_point = fields[3], fields[4]
        if tail[0] == "cgroup2":
            found.setdefault("v2", (root, mount_point))
        elif tail[0] == "cgroup":
            for option in tail[2].split(","):
                found.setdefault(f"v1:{option}", (root, mount_point))
    return found


def _directories(ctx, key: str) -> list[str]:
    """Our cgroup directory for `key` and its ancestors up to the mount point, innermost first."""
    path = _own_cgroups(ctx).get(key)
    mount = _mounts(ctx).get(key)
    if path is None or mount is None:
        return []
    root, mount_point = mount
    # With a cgroup namespace the path is already relative to the mount; a bind mount of a
    # sub-tree (root != "/") needs its prefix removed.
    if root != "/" and (path == root or path.startswith(root + "/")):
        path = path[len(root) :] or "/"
    directories, current = [], path.rstrip("/")
    while True:
        directories.append(mount_point.rstrip("/") + current)
        if not current:
            break
        current = current.rsplit("/", 1)[0]
    return directories


def _stat(ctx, directory: str, key: str) -> int | None:
    for line in (ctx.read_text(f"{directory}/memory.stat") or "").splitlines():
        name, _, value = line.partition(" ")
        if name == key and value.strip().isdigit():
            return int(value)
    return None


def memory_limit(ctx, host_total_bytes: int) -> CgroupMemory | None:
    """The tightest memory limit on this process below the host's RAM, or None."""
    best = None
    for key, version, limit_file, usage_file, reclaimable in (
        ("v2", "cgroup v2", "memory.max", "memory.current", "inactive_file"),
        ("v1:memory", "cgroup v1", "memory.limit_in_bytes", "memory.usage_in_bytes", "total_inactive_file"),
    ):
        directories = _directories(ctx, key)
        for directory in directories:
            limit = ctx.read_int(f"{directory}/{limit_file}")  # "max" reads as None
            if limit is None or limit >= min(host_total_bytes, _UNLIMITED):
                continue
            if best is None or limit < best.limit_bytes:
                leaf = directories[0]
                best = CgroupMemory(
                    limit,
                    ctx.read_int(f"{leaf}/{usage_file}"),
                    _stat(ctx, leaf, reclaimable),
                    version,
                    f"{directory}/{limit_file}",
                )
    return best


def cpu_limit(ctx) -> tuple[float, str] | None:
    """(CPUs allowed by a CFS quota, where it was read), or None when there is no quota."""
    best = None
    for directory in _directories(ctx, "v2"):
        text = ctx.read_text(f"{directory}/cpu.max") or ""
        quota, _, period = text.partition(" ")
        if quota.isdigit() and period.strip().isdigit() and int(period) > 0:
            cpus = int(quota) / int(period)
            if best is None or cpus < best[0]:
                best = (cpus, f"{directory}/cpu.max")
    for directory in _directories(ctx, "v1:cpu"):
        quota = ctx.read_int(f"{directory}/cpu.cfs_quota_us")
        period = ctx.read_int(f"{directory}/cpu.cfs_period_us")
        if quota and quota > 0 and period:
            cpus = quota / period
            if best is None or cpus < best[0]:
                best = (cpus, f"{directory}/cpu.cfs_quota_us")
    return best
