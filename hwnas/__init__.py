"""hwnas: hardware-aware neural architecture search and on-device deployment."""

__version__ = "0.1.0"

from hwnas.errors import HwnasError

__all__ = ["HwnasError", "__version__"]
