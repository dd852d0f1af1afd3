"""Facts about the machine a benchmark ran on, printed with every benchmark's JSON."""

from __future__ import annotations

import os
import platform
from typing import Any


def machine_facts() -> dict[str, Any]:
    """Platform, CPU, thread and library versions (torch/cv2/numpy when importable)."""
    facts: dict[str, Any] = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
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
