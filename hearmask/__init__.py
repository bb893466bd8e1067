"""hearmask: one causal network for hearing-aid noise reduction and compensation.

The areas import as ``hearmask.profiles``, ``hearmask.model``, ``hearmask.quantize``,
``hearmask.targets`` and ``hearmask.firmware_bridge``; the repository keeps them as
top-level folders (see ``pyproject.toml``, ``[tool.setuptools.package-dir]``).
"""

__version__ = "0.1.0"
