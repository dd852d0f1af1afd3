"""endobench: benchmark self-supervised backbones on endoscopic segmentation and video tracking."""

from endobench.plugins import load_plugins

__version__ = "0.1.0"

# Plugins register their names on import (entry points "endobench.plugins"); doing it here means
# every process that imports endobench, papermill kernels included, sees the same names.
load_plugins()
