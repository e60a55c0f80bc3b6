"""``python -m aclip``: the same command line as ``aclip`` (see :mod:`aclip._cli`)."""

import sys

from aclip._cli import main

sys.exit(main())
