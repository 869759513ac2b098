import sys

from scrubber.cli import main

sys.exit(main())
