import sys

from gridchain.cli import main

sys.exit(main())
