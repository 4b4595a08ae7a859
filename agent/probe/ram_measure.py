"""A short RAM copy measurement, for `fitagent probe --measure-bandwidth` (well under 2 s).

STREAM "copy" convention: bytes read + bytes written per second, so the figure compares with
llmfit's measurement and with what a decode step streams. It is effective, not peak
bandwidth (typically 60–80 % of the spec). numpy's copyto releases the GIL, so threads run
copies in parallel as a multi-channel memory system needs; without numpy a single-thread
memcpy is all pure Python can do, and it says so.
"""

from __future__ import annotations

import os
import time

MiB = 1 << 20
PASS_S = 0.3  # two timed passes, the better one counts: the whole measurement stays near one second


def measure(available_bytes: int) -> tuple[int, str]:
    # Beyond the last-level caches of desktop parts (≤ 128 MiB) yet quick to fault in: on
    # some VMs first touch runs at a few hundred MB/s, and the whole must stay under 2 s.
    footprint = max(64 * MiB, min(256 * MiB, available_bytes // 8))
    try:
        import numpy
    except ImportError:
        return _memoryview_copy(footprint)
    threads = max(1, min(os.cpu_count() or 1, 16))
    return _numpy_copy(numpy, threads, footprint), (
        f"copy of {footprint // MiB} MiB with {threads} thread(s), read + written bytes counted (effective, not peak)"
    )


def _numpy_copy(numpy, threads: int, footprint: int) -> int:
    import threading

    items = footprint // 2 // threads // 8
    sources = [numpy.ones(items) for _ in range(threads)]
    targets = [numpy.empty_like(s) for s in sources]
    for source, target in zip(sources, targets):
        numpy.copyto(target, source)  # faults the target pages in before anything is timed
    start = time.perf_counter()
    numpy.copyto(targets[0], sources[0])
    one_copy_s = max(time.perf_counter() - start, 1e-4)

    # Every pass copies the whole footprint, however many threads share the work, so a
    # single thread never runs inside a cache-sized slice.
    repeats = max(2, int(PASS_S / (one_copy_s * threads)))

    def timed_pass(active: int) -> float:
        """Bytes/s with `active` threads copying at once (they share the memory bus)."""
        barrier = threading.Barrier(active + 1)

        def copy(first: int) -> None:
            barrier.wait()
            for _ in range(repeats):
                for i in range(first, threads, active):
                    numpy.copyto(targets[i], sources[i])

        workers = [threading.Thread(target=copy, args=(k,)) for k in range(active)]
        for worker in workers:
            worker.start()
        barrier.wait()
        begin = time.perf_counter()
        for worker in workers:
            worker.join()
        return 2 * items * 8 * threads * repeats / (time.perf_counter() - begin)

    # All threads is what a multi-channel system needs; one thread wins on a busy small VM.
    return int(max(timed_pass(threads), timed_pass(1)))


def _memoryview_copy(footprint: int) -> tuple[int, str]:
    size = footprint // 2
    source, target = bytearray(b"\x01") * size, bytearray(size)
    view = memoryview(target)
    view[:] = source
    copies, start = 0, time.perf_counter()
    while time.perf_counter() - start < 2 * PASS_S:
        view[:] = source
        copies += 1
    elapsed = time.perf_counter() - start
    return int(2 * size * copies / elapsed), (
        f"single-thread copy of {footprint // MiB} MiB without numpy — below what"
        " several cores can draw from a multi-channel memory system"
    )
