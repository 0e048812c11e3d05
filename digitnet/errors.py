"""The one exception type digitnet raises for things a user can fix.

Every bad input (a missing file, a malformed CSV, a flag out of range, a checkpoint from another model)
becomes a [DigitnetError][digitnet.errors.DigitnetError] with a one-line message naming the file or flag and
what was expected. The CLI turns it into that line on stderr and exit code 2; anything else is a bug and keeps
its traceback.

```python
try:
    load_split(DataConfig(dataset="csv", csv="test.csv"))
except DigitnetError as error:
    print(error)  # test.csv: 784 pixel columns and no label column: ...
```
"""


class DigitnetError(Exception):
    """A problem with the user's input or environment, explained in one line."""


class DataError(DigitnetError):
    """A data file or directory that cannot be read as MNIST digits."""


class ConfigError(DigitnetError):
    """A setting out of range, an unknown name, or a config file that does not validate."""


class CheckpointError(DigitnetError):
    """A run directory or checkpoint that cannot be loaded safely."""
