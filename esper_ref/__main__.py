import os
import sys

from esper_ref.cli import main

code = main()
if int(os.environ.get("WORLD_SIZE", "1")) > 1:
    # A rank of a torch.distributed job (torchrun and --nproc start ranks as `-m esper_ref`)
    # ends here, its files written and closed: skip the interpreter's finalisation, where
    # gloo's threads can meet C++ static destructors and abort the process ("terminate
    # called without an active exception", about 1 run in 10 under load on this project's
    # CI machine), which the launcher would report as a failed rank after a good run.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
sys.exit(code)
