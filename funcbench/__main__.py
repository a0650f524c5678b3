import sys

from funcbench.commands import main

sys.exit(main())
