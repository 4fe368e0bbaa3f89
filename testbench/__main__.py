import sys

from testbench.cli import main

sys.exit(main())
