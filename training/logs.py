"""Run logs: a CSV file (always), TensorBoard (when installed), and a progress line on stderr."""

from __future__ import annotations

import csv
import logging
import sys
import time
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


class RunLogger:
    """Appends rows to ``log.csv`` and, when available, TensorBoard scalars.

    On resume the CSV is kept up to ``resume_step``: rows a killed run wrote after its last
    checkpoint are dropped, so the file reads like one uninterrupted run.
    """

    def __init__(
        self, out_dir: Path, columns: list[str], tensorboard: bool, resume_step: int | None = None
    ) -> None:
        self.path = out_dir / "log.csv"
        self.columns = columns
        kept: list[list[str]] = []
        if resume_step is not None and self.path.is_file():
            with self.path.open(newline="") as f:
                rows = list(csv.reader(f))
            kept = [r for r in rows[1:] if r and r[0].isdigit() and int(r[0]) <= resume_step]
        self._file = self.path.open("w", newline="")
        self._csv = csv.writer(self._file)
        self._csv.writerow(columns)
        self._csv.writerows(kept)
        self._file.flush()
        self.tb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(out_dir / "tensorboard"))
            except ImportError:
                log.debug("tensorboard is not installed: logging to CSV only")

    def write(self, row: dict[str, Any]) -> None:
        self._csv.writerow([_fmt(row.get(c, "")) for c in self.columns])
        self._file.flush()
        if self.tb is not None:
            for k, v in row.items():
                if k != "step" and isinstance(v, (int, float)):
                    self.tb.add_scalar(k, v, int(row["step"]))

    def close(self) -> None:
        self._file.close()
        if self.tb is not None:
            self.tb.close()


def _fmt(v: Any) -> Any:
    return f"{v:.6g}" if isinstance(v, float) else v


class Progress:
    """A rate-limited progress line: rewritten in place on a terminal, a line every
    ``interval`` seconds otherwise (log files stay short)."""

    def __init__(self, total: int, start: int = 0, label: str = "step") -> None:
        self.total, self.done, self.label = total, start, label
        self.t0, self.start = time.perf_counter(), start
        self.tty = sys.stderr.isatty()
        self.interval = 0.5 if self.tty else 30.0
        self.last = 0.0

    def update(self, done: int, **info: float) -> None:
        self.done = done
        now = time.perf_counter()
        if now - self.last < self.interval and done < self.total:
            return
        self.last = now
        rate = (done - self.start) / max(now - self.t0, 1e-9)
        eta = (self.total - done) / rate if rate > 0 else float("inf")
        extra = " ".join(f"{k} {v:.4g}" for k, v in info.items())
        line = (
            f"{self.label} {done}/{self.total} [{100 * done / max(self.total, 1):3.0f}%] "
            f"{extra} {rate:.2f} {self.label}/s eta {_hms(eta)}"
        )
        if self.tty:
            sys.stderr.write("\r" + line + ("\n" if done >= self.total else ""))
        else:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()


def _hms(seconds: float) -> str:
    if seconds == float("inf"):
        return "?"
    s = int(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"
