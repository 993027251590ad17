"""`python -m local` is the `parley` command."""

from __future__ import annotations

import sys

from local.cli import main

sys.exit(main())
