"""Serve a directory: ``python -m aiohttp_conditional [DIR] [-b ADDRESS] [-p PORT]``."""

import sys

from ._cli import main

if __name__ == "__main__":
    sys.exit(main())
