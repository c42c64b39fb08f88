"""``python -m cnnlab ...`` (and ``torchrun ... -m cnnlab train ...``): the ``cnnlab`` command."""

import sys

from cnnlab.cli.main import main

sys.exit(main())
