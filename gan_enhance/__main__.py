"""`python -m gan_enhance ...` is the same as the `gan-enhance` console script."""

import sys

from gan_enhance.cli import main

sys.exit(main())
