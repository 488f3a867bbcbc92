"""``python -m tod_cleanse.cli``: the same as the ``tod-cleanse`` command."""

import sys

from . import main

sys.exit(main())
