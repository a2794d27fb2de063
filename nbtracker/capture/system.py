"""System metrics: CPU, memory, disk and network I/O (psutil) and GPUs (NVML), sampled in a thread.

Samples go to ``system.jsonl`` (``{"_time", "system/cpu_percent", ...}``), never into the
user's ``metrics.jsonl``, so they never interleave with the user's steps. psutil is an optional
extra (``pip install nbtracker[system]``); ``nvidia-ml-py`` (module ``pynvml``) adds GPUs when
installed and a GPU is present, and is a quiet no-op otherwise.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from ..core.errors import NbtrackerError
from ..core.files import AppendLog, dumps

SYSTEM_FILE = "system.jsonl"
DEFAULT_INTERVAL = 10.0


class Sampler:
    """Samples every ``interval`` seconds until ``stop()``."""

    def __init__(self, run: Any, interval: float = DEFAULT_INTERVAL) -> None:
        try:
            import psutil
        except ImportError:
            raise NbtrackerError("system_metrics=True needs psutil, which is not installed: "
                                 "pip install 'nbtracker[system]' (or pip install psutil)") from None
        self.psutil = psutil
        self.interval = float(interval)
        self.log = AppendLog(run.dir / SYSTEM_FILE)
        self.nvml = _nvml()
        self.samples = 0
        self._stop = threading.Event()
        self._last_io: tuple[float, Any, Any] | None = None
        self._proc = psutil.Process()
        psutil.cpu_percent(None)          # the first call only starts the measurement
        self._proc.cpu_percent(None)
        self.thread = threading.Thread(target=self._loop, name="nbtracker-system", daemon=True)

    def sample(self) -> dict[str, Any]:
        p = self.psutil
        now = time.time()
        vm = p.virtual_memory()
        row: dict[str, Any] = {
            "_time": now,
            "system/cpu_percent": p.cpu_percent(None),
            "system/memory_percent": vm.percent,
            "system/memory_used_gb": round(vm.used / 2**30, 4),
            "system/proc_cpu_percent": self._proc.cpu_percent(None),
            "system/proc_rss_gb": round(self._proc.memory_info().rss / 2**30, 4),
        }
        try:
            row["system/disk_percent"] = p.disk_usage("/").percent
        except OSError:
            pass
        disk, net = p.disk_io_counters(), p.net_io_counters()
        if self._last_io is not None:
            t0, d0, n0 = self._last_io
            dt = max(now - t0, 1e-6)
            if disk is not None and d0 is not None:
                row["system/disk_read_mb_s"] = round((disk.read_bytes - d0.read_bytes) / dt / 2**20, 4)
                row["system/disk_write_mb_s"] = round((disk.write_bytes - d0.write_bytes) / dt / 2**20, 4)
            if net is not None and n0 is not None:
                row["system/net_sent_mb_s"] = round((net.bytes_sent - n0.bytes_sent) / dt / 2**20, 4)
                row["system/net_recv_mb_s"] = round((net.bytes_recv - n0.bytes_recv) / dt / 2**20, 4)
        self._last_io = (now, disk, net)
        if self.nvml is not None:
            row.update(_gpu_sample(self.nvml))
        return row

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.record()

    def record(self) -> None:
        try:
            self.log.append(dumps(self.sample()))
            self.log.flush()
            self.samples += 1
        except Exception:  # noqa: BLE001 - a sampler never breaks the run; the next one tries again
            pass

    def start(self) -> None:
        self.record()
        self.thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.thread.join(timeout=5)
        self.record()
        self.log.flush(fsync=True)
        self.log.close()
        if self.nvml is not None:
            try:
                self.nvml.nvmlShutdown()
            except Exception:  # noqa: BLE001
                pass


def _nvml() -> Any:
    """The ``pynvml`` module, initialised, if it is installed and sees at least one GPU; else None."""
    try:
        import pynvml
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
        if pynvml.nvmlDeviceGetCount() < 1:
            pynvml.nvmlShutdown()
            return None
    except Exception:  # noqa: BLE001 - no driver, no GPU: quietly nothing
        return None
    return pynvml


def _gpu_sample(nvml: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    try:
        count = nvml.nvmlDeviceGetCount()
    except Exception:  # noqa: BLE001
        return out
    for i in range(count):
        try:
            h = nvml.nvmlDeviceGetHandleByIndex(i)
            util = nvml.nvmlDeviceGetUtilizationRates(h)
            mem = nvml.nvmlDeviceGetMemoryInfo(h)
            out[f"system/gpu.{i}.utilization_percent"] = util.gpu
            out[f"system/gpu.{i}.memory_used_gb"] = round(mem.used / 2**30, 4)
            out[f"system/gpu.{i}.memory_percent"] = round(100.0 * mem.used / mem.total, 2) if mem.total else None
            out[f"system/gpu.{i}.temperature_c"] = nvml.nvmlDeviceGetTemperature(h, nvml.NVML_TEMPERATURE_GPU)
            out[f"system/gpu.{i}.power_w"] = round(nvml.nvmlDeviceGetPowerUsage(h) / 1000.0, 3)
        except Exception:  # noqa: BLE001 - a GPU that does not answer one query keeps the others
            continue
    return out


def start(run: Any, interval: float = DEFAULT_INTERVAL) -> Sampler:
    if isinstance(interval, bool) or not isinstance(interval, (int, float)) or not interval > 0:
        raise NbtrackerError(f"system metrics interval must be a positive number of seconds, not {interval!r}")
    sampler = Sampler(run, interval)
    sampler.start()
    run._parts["system"] = sampler
    run._closers.append(sampler.stop)
    return sampler
