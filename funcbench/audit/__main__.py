"""python -m funcbench.audit: the audit's command line (funcbench.audit.cli)."""
import sys

from funcbench.audit.cli import main

sys.exit(main())
