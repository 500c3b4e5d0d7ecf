import sys

from esper_migrate.cli import main

sys.exit(main())
