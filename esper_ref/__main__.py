import sys

from esper_ref.cli import main

sys.exit(main())
