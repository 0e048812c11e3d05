"""Live training curves in a notebook: an ``on_epoch`` callback that redraws loss and accuracy in place.

Like d2l's ``Animator``, but built on the same figure functions as the run directory's ``loss.png`` and
``accuracy.png`` ([plot_loss][digitnet.plotting.plot_loss], [plot_accuracy][digitnet.plotting.plot_accuracy]):
after every epoch the two figures are drawn again from the epochs so far and replace the previous ones in
the cell's output, so a student watches the curves grow rather than waiting for the end.

```python
curves = LiveCurves("mlp · sgd lr 0.01")
history = fit(model, optimizer, tensors, TrainConfig(epochs=5), generator, on_epoch=curves)
# or: run_experiment(config, run_dir, on_epoch=curves)
```

Outside IPython (a script, a test) nothing is shown; ``curves.history`` still holds every epoch.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

from matplotlib.figure import Figure

from digitnet.history import EpochRecord, History
from digitnet.plotting import plot_accuracy, plot_loss

Show = Callable[[list[Figure], list[Any] | None], list[Any]]


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    return buffer.getvalue()


def show_in_notebook(figures: list[Figure], handles: list[Any] | None) -> list[Any]:
    """Show ``figures`` as PNGs, the first time as new outputs, then by updating those same outputs
    (IPython's display ids): the redraw happens in place. A no-op outside IPython."""
    try:
        from IPython import get_ipython
        from IPython.display import Image, display
    except ImportError:
        return []
    if get_ipython() is None:
        return []
    images = [Image(data=_png(figure)) for figure in figures]  # type: ignore[no-untyped-call]
    if not handles:
        return [display(image, display_id=True) for image in images]  # type: ignore[no-untyped-call]
    for handle, image in zip(handles, images, strict=True):
        handle.update(image)
    return handles


class LiveCurves:
    """An ``on_epoch`` callback for [fit][digitnet.trainer.fit] and
    [run_experiment][digitnet.run.run_experiment]: keeps the epochs in ``history`` and redraws the loss
    and accuracy figures after each one."""

    def __init__(self, title: str = "", show: Show = show_in_notebook) -> None:
        self.title = title
        self.history = History()
        self._show = show
        self._handles: list[Any] | None = None

    def figures(self) -> list[Figure]:
        """The loss and accuracy figures of the epochs so far (per-epoch points; the per-iteration loss
        is in the run's own ``loss.png``)."""
        return [plot_loss(self.history, self.title), plot_accuracy(self.history, self.title)]

    def __call__(self, record: EpochRecord) -> None:
        self.history.epochs.append(record)
        self._handles = self._show(self.figures(), self._handles)


__all__ = ["LiveCurves", "show_in_notebook"]
