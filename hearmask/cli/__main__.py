import sys

from hearmask.cli import main

sys.exit(main())
