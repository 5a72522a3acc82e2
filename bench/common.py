"""What the benchmark scripts of bench/ share: describing the machine a result was measured on.

Imported by plain name (`from common import cpu_model`): the scripts run as
`python bench/<script>.py`, which puts bench/ first on sys.path.
"""

from __future__ import annotations

import platform
import sys


def cpu_model() -> str:
    """The CPU's model name. psutil has none to offer; on Linux platform.processor() is at best
    the architecture, so there (Linux only) the name is read from /proc/cpuinfo instead."""
    if sys.platform.startswith("linux"):
        try:
            with open("/proc/cpuinfo") as handle:
                for line in handle:
                    if line.startswith("model name"):
                        return line.split(":", 1)[1].strip()
        except OSError:
            pass
    return platform.processor() or "unknown CPU"
