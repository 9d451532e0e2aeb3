"""``python -m dicomguard.gateway --config FILE``: the same as ``dicomguard gateway``."""

import sys

from ..cli.gateway import main

sys.exit(main(sys.argv[1:]))
