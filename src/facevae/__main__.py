"""`python -m facevae ...` (also what `torchrun -m facevae train ...` runs)."""

import sys

from .cli.main import main

sys.exit(main())
