"""The version of jaxmix (read by ``pyproject.toml`` and the file format's metadata)."""

__version__ = "0.2.0.dev0"
