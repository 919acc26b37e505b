import sys

from netobs.cli import main

sys.exit(main())
