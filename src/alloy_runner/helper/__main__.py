"""`python -m alloy_runner.helper ...`: run inside every build; keep its imports small."""

import sys

from alloy_runner.helper.archive import main

sys.exit(main())
