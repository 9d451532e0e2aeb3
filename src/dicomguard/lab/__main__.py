"""``python -m dicomguard.lab``: the same as ``dicomguard lab``."""

from __future__ import annotations

import sys

from ..cli.lab import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
