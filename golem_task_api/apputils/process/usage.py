"""What a command used, measured over its whole process tree."""

import threading
from dataclasses import dataclass
from typing import Any

import psutil  # type: ignore[import-untyped, unused-ignore]


@dataclass
class Usage:
    """Peak memory (bytes), CPU time and wall time (seconds) of a command.

    `mem_peak` is the highest resident memory sampled: of the whole tree at
    one sample, or of one process over its life up to a sample (the kernel's
    high-water mark), whichever is larger. A peak reached after a process's
    last sample is missed; sampling starts every 10 ms and slows down to the
    interval asked for. It is 0 when the command ran without monitoring.
    `cpu_time` is user plus system time of the command and its descendants.
    While the command runs, the monitor updates the object it was given, so
    a caller can watch it live.
    """

    mem_peak: int = 0
    cpu_time: float = 0.0
    real_time: float = 0.0

    def add_rusage(self, rusage: Any) -> None:
        """Fold in the CPU time the kernel reports when the command is reaped.

        It is exact, and covers the descendants the command waited for.
        (Its ru_maxrss is not used: Linux carries the app's own resident size
        over from fork into it, so it would report at least the app's size.)
        """
        self.cpu_time = max(self.cpu_time, float(rusage.ru_utime + rusage.ru_stime))


def _peak_rss(pid: int) -> int:
    """The kernel's record of the process's highest resident memory (Linux; else 0)."""
    try:
        with open(f"/proc/{pid}/status", "rb") as status:
            for line in status:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


class TreeMonitor:
    """Samples a process and its descendants, in a thread of its own.

    A thread rather than the event loop, because finding descendants reads
    every process's /proc entry: milliseconds on a busy host, per sample.
    Sampling starts fast and slows down to `interval`, so short commands are
    seen too.
    """

    FIRST_INTERVAL = 0.01

    def __init__(self, root: Any, usage: Usage, interval: float) -> None:
        self._root = root
        self._usage = usage
        self._interval = max(interval, self.FIRST_INTERVAL)
        self._cpu: dict[Any, float] = {}  # every process seen -> its last CPU time
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"usage-monitor-{root.pid}", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Take a last sample and stop (blocks for at most one sample in progress)."""
        if self._stop.is_set():
            return
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        self.sample()

    def seen(self) -> list[Any]:
        """Every process of the tree sampled so far (some may have ended)."""
        with self._lock:
            return list(self._cpu)

    def sample(self) -> None:
        with self._lock:
            rss_total = 0
            peak = 0
            for proc in self._tree():
                try:
                    with proc.oneshot():
                        times = proc.cpu_times()
                        rss = int(proc.memory_info().rss)
                except psutil.Error:
                    continue
                self._cpu[proc] = float(times.user + times.system)
                rss_total += rss
                peak = max(peak, _peak_rss(proc.pid))
            usage = self._usage
            usage.mem_peak = max(usage.mem_peak, rss_total, peak)
            usage.cpu_time = max(usage.cpu_time, sum(self._cpu.values()))

    def _tree(self) -> list[Any]:
        try:
            return [self._root, *self._root.children(recursive=True)]
        except psutil.Error:
            return []

    def _run(self) -> None:
        delay = self.FIRST_INTERVAL
        while True:
            self.sample()
            if self._stop.wait(delay):
                return
            delay = min(delay * 2, self._interval)


__all__ = ["TreeMonitor", "Usage"]
