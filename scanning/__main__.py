import sys

from scanning.cli import main

sys.exit(main())
