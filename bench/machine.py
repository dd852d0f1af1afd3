"""Facts about the machine a benchmark ran on, printed with every benchmark's JSON.

The load average is read when this module is imported (the benchmark's start) and again when
:func:`machine_facts` is called (its end): a benchmark sharing the machine with other jobs shows
it, and its absolute figures are then noisy (same-run ratios much less so).
"""

from __future__ import annotations

import os
import platform
from typing import Any

#: 1, 5 and 15 minute load averages when the benchmark started (this module's import).
LOAD_AT_START = os.getloadavg()


def load_facts() -> dict[str, Any]:
    """Load averages (1, 5, 15 min) at the start and now, and the number of CPUs to read them by."""
    return {
        "load_average_at_start": [round(x, 2) for x in LOAD_AT_START],
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        "cpu_count": os.cpu_count(),
    }


def machine_facts() -> dict[str, Any]:
    """Platform, CPU, load, thread and library versions (torch/cv2/numpy when importable)."""
    facts: dict[str, Any] = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        **load_facts(),
    }
    try:
        import numpy

        facts["numpy"] = numpy.__version__
    except ImportError:
        pass
    try:
        import cv2

        facts["opencv"] = cv2.__version__
        facts["opencv_threads"] = cv2.getNumThreads()
    except ImportError:
        pass
    try:
        import torch

        facts["torch"] = torch.__version__
        facts["torch_threads"] = torch.get_num_threads()
        facts["cuda"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except ImportError:
        pass
    return facts
