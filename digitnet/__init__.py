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

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("digitnet")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"
