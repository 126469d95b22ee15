"""JAX's persistent compilation cache, offered as an opt-in helper.

Within a process every compiled program is kept and reused (:func:`jaxmix.fit_em` pads its
arrays to size classes so that fits of nearby sizes share them). Across processes (a script run
again, the workers of a cluster job, a test run) every program is compiled anew, about 1-3 s
each on a CPU, unless JAX's persistent compilation cache is on: then a compiled program is
written to a directory and read back by later processes. jaxmix never turns it on by itself (a
library does not change JAX's global settings); :func:`enable_compilation_cache` does, when you
call it, or set the environment variables before Python starts::

    JAX_COMPILATION_CACHE_DIR=~/.cache/jaxmix-xla JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS=0 \\
        python my_script.py
"""

from __future__ import annotations

import os
from typing import Any

__all__ = ["enable_compilation_cache"]


def enable_compilation_cache(path: Any, *, min_compile_time_secs: float = 0.0) -> str:
    """Turn on JAX's persistent compilation cache in directory ``path`` (global, opt-in).

    Sets JAX's options ``jax_compilation_cache_dir`` to ``path``,
    ``jax_persistent_cache_min_compile_time_secs`` to ``min_compile_time_secs`` (JAX's default
    of 1 s would leave out most of jaxmix's programs, which take 0.2 to 3 s to compile) and
    ``jax_persistent_cache_min_entry_size_bytes`` to ``-1`` (no size threshold). Call it before
    the first fit of the process: a program compiled earlier is not written. Programs with host
    callbacks (``progress=True``) are never cached (a JAX limitation).

    The directory is trusted code: whoever can write to it can make your process run anything,
    so never share it with users you do not trust. JAX does not evict entries; delete the
    directory to reclaim the space.

    Args:
        path: The cache directory (created if missing).
        min_compile_time_secs: Only programs that took at least this long to compile are
            written.

    Returns:
        The directory, as an absolute path.

    Example:
        >>> import tempfile, jaxmix
        >>> path = jaxmix.enable_compilation_cache(tempfile.mkdtemp())  # doctest: +SKIP
    """
    import jax

    path = os.path.abspath(os.path.expanduser(os.fspath(path)))
    os.makedirs(path, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", float(min_compile_time_secs))
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
    return path
