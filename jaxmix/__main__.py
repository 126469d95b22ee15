"""``python -m jaxmix``: the command line (see :mod:`jaxmix.cli`)."""

from jaxmix.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
