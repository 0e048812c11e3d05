"""digitnet: handwritten-digit recognition on MNIST, end to end, in plain typed PyTorch.

The modules follow the order of an assignment: ``data`` → ``models`` → ``optim`` → ``trainer`` →
``plotting``; ``experiment`` wires them into one reproducible run directory, and ``cli`` maps the
command line onto those configs.

```pycon
>>> from digitnet.models import ModelConfig, build_model, count_parameters
>>> count_parameters(build_model(ModelConfig(name="mlp", hidden_sizes=(128, 64))))
109386

```
"""

import os
from importlib.metadata import PackageNotFoundError, version

# OpenMP's threads spin while they wait for work. On a machine where another program is busy (a browser, a
# second training), a spinning thread takes the core the working thread needs: one busy neighbour made a
# 2-thread training about 11 times slower. PASSIVE lets waiting threads sleep. It must be in the environment
# before torch loads its OpenMP runtime, so it is set here, when digitnet is first imported; a value the user
# set is kept. (Importing torch before digitnet, as a notebook may, leaves OpenMP's default in force.)
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

try:
    __version__ = version("digitnet")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"
