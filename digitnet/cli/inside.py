"""``digitnet inspect`` and ``digitnet lr-find``: look inside a trained run; choose a learning rate."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any

import typer

from digitnet.cli.common import (
    NOT_OFFERED,
    Preset,
    RunDir,
    app,
    console,
    friendly,
    given_options,
    option_flags,
    print_notes,
    run_settings,
    with_run_options,
)

FEW_STEPS = 500  # fewer steps than this over the range make the suggestion a rough one
BARELY_LEARNT = 0.75  # a pass whose smoothed loss never fell below this share of its start learnt ~nothing


@app.command(short_help="Draw what a trained model learned, and its mistakes.")
@friendly
def inspect(
    run_dir: RunDir,
    *,
    out: Annotated[
        Path | None, typer.Option(help="Figures directory.", show_default="RUN_DIR/inside")
    ] = None,
    sample: Annotated[
        int, typer.Option(help="Test digits in the embedding view (stratified; t-SNE slows with more).")
    ] = 2000,
) -> None:
    """Draw what a trained model learned: first-layer weights, feature maps (CNNs), the hidden layer in
    2-D (PCA, t-SNE), which pixels drove its most confident mistakes, and their nearest training digits."""
    from digitnet.errors import ConfigError
    from digitnet.inside import InspectConfig, inspect_run

    if sample < 10:
        raise ConfigError(f"--sample: expected at least 10 digits, got {sample}")
    written = inspect_run(run_dir, out, InspectConfig(sample=sample))
    for path in written:
        console.print(f"wrote {path}", highlight=False, soft_wrap=True)


# One pass at a rising rate, nothing measured after it: no rate, epochs or schedule to set, no evaluation.
NOT_READ_BY_LR_FIND = ("lr", "epochs", "schedule", "eval-batch-size", "eval-train", "diagnostics")
NOT_OFFERED["lr-find"] = (
    tuple(flag for name in NOT_READ_BY_LR_FIND for flag in option_flags(name)),
    "it trains one pass with the rate rising from --start-lr to --end-lr and measures nothing after it; "
    "the 'digitnet compare lr' it suggests takes --epochs, --schedule and the evaluation options",
)


@app.command("lr-find", short_help="The learning-rate range test: the loss as the rate rises.")
@with_run_options(
    omit=NOT_READ_BY_LR_FIND,
    first_layer="The first convolution of --model cnn: learned = trained like every other layer; pca = "
    "fixed to the training digits' principal 5×5 patterns and not trained (the range test sets the same "
    "filters a run would). A preset that fixes it (fast) fixes it only for --model cnn; another model "
    "learns its own.",
)
@friendly
def lr_find(
    context: typer.Context,
    *,
    preset: Preset = None,
    start_lr: Annotated[float, typer.Option(help="The first step's learning rate.")] = 1e-5,
    end_lr: Annotated[
        float, typer.Option(help="The last step's, if the loss has not blown up first.")
    ] = 10.0,
    out: Annotated[
        Path | None,
        typer.Option(help="Figure directory.", show_default="runs/lr-find-<config hash>[-START-END]"),
    ] = None,
    **options: Any,
) -> None:
    """The learning-rate range test: one pass with the rate rising exponentially, the loss at every step.

    Writes lr_find.png/.svg and lr_find.json and prints a suggested rate and range: a starting point
    for 'digitnet compare lr', not a measured result. It sets the rate itself, over one pass: it takes
    no --lr or --epochs.
    """
    import shlex
    from dataclasses import asdict

    from digitnet.data import describe_split, load_split
    from digitnet.inside import (
        RangeTestConfig,
        check_range_steps,
        lr_range_test,
        rates_to_compare,
        spans_a_decade,
    )
    from digitnet.models import describe_model
    from digitnet.plotting import plot_lr_find, save_figure
    from digitnet.runtime import atomic_directory, atomic_write_json, claim_output
    from digitnet.settings import make_run_config, resolve_run_config

    settings = run_settings(options, preset, context)
    config = resolve_run_config(make_run_config(settings))
    test_config = RangeTestConfig(start_lr=start_lr, end_lr=end_lr)
    # one folder per network and range: a test over other rates must not replace this one's curve
    default_range = (start_lr, end_lr) == (RangeTestConfig.start_lr, RangeTestConfig.end_lr)
    suffix = "" if default_range else f"-{start_lr:g}-{end_lr:g}"
    out_dir = out or Path("runs") / f"lr-find-{config.key()}{suffix}"
    claim_output(out_dir, "figures")
    unused = ", ".join(f"--{name}" for name in NOT_READ_BY_LR_FIND if name in settings)  # from a preset
    if unused:
        print_notes(
            (f"--preset {preset}'s {unused} are not used: the range test sets the rate, over one pass",)
        )
    split = load_split(config.data)
    check_range_steps(len(split.train), config.train.batch_size)  # before the notes: an error is one line
    print_notes(split.notes)
    console.print(f"data: {describe_split(split)}", highlight=False, soft_wrap=True)
    result = lr_range_test(config, test_config, split)
    with atomic_directory(out_dir, "figures") as staging:
        title = f"{describe_model(config.model)} · {config.optim.name} · batch {config.train.batch_size}"
        save_figure(plot_lr_find(result, title), staging / "lr_find")
        recorded = asdict(config)
        # the test sets the rate itself, over one pass: the rate and epochs a run would use mean nothing here
        del recorded["optim"]["lr"], recorded["train"]["epochs"]
        atomic_write_json(
            staging / "lr_find.json", {"config": recorded, "test": asdict(test_config)} | asdict(result)
        )
    low, high = result.suggested_range
    if len(result.rates) < FEW_STEPS:
        more = (
            "a smaller --batch-size gives more steps (a suggestion holds for the batch size it was found "
            "at: compare at that size)"
            if config.data.dataset == "mnist"
            else "more training digits (full MNIST: --data-dir or 'digitnet data download') or a smaller "
            "--batch-size give more steps"
        )
        decades = math.log10(end_lr / start_lr)
        print_notes(
            (
                f"only {len(result.rates)} steps for {decades:.2g} decade{'s' if decades >= 1.05 else ''} of "
                f"rate: the curve is coarse and the suggestion rough; {more}",
            )
        )
    start, lowest = result.smoothed[0], min(result.smoothed[: result.used])
    centre = result.suggested_lr  # of the compare to run next
    if lowest > BARELY_LEARNT * start:
        from digitnet.configs import CONVENTIONAL_LR

        usual = CONVENTIONAL_LR.get(config.optim.name)
        instead = f": start a compare around {config.optim.name}'s conventional {usual:g}" if usual else ""
        centre = usual or centre
        why = (
            "the network had barely begun to learn when the rate grew too large"
            if result.used < len(result.losses)
            else f"the rate only reached {end_lr:g} and the loss never turned up: a higher --end-lr would "
            "show where it does"
        )
        print_notes(
            (
                f"the loss only fell from {start:.2f} to {lowest:.2f} in this pass: {why}, so the suggestion "
                f"below is read from noise and may not train at all{instead}",
            )
        )
    rates = rates_to_compare(result, centre)
    if centre != result.suggested_lr:
        advice = f"this pass learnt too little to trust (note above); compare around {centre:g} instead: "
    elif not spans_a_decade(result):
        advice = (
            "a starting point, not a result; the range is narrower than a decade, too close together for a "
            "compare to tell its rates apart, so confirm from a third to three times the suggestion: "
        )
    else:
        advice = "a starting point, not a result: confirm with "
    # the settings the test ran with, so that the compare trains the same network the same way
    words = ["digitnet", "compare", "lr", *rates.split(), *(["--preset", preset] if preset else [])]
    for python_name, value in given_options(options, context).items():
        flags = option_flags(python_name.replace("_", "-"))
        words += [flags[0] if value else flags[1]] if isinstance(value, bool) else [flags[0], str(value)]
    command = shlex.join(words)
    reading = "where the loss fell fastest" + (
        "; read from noise, see the note: not the rate to use" if centre != result.suggested_lr else ""
    )
    console.print(
        f"suggested learning rate: {result.suggested_lr:.2g} ({reading})\n"
        f"suggested range: {low:.2g} – {high:.2g}; the loss was lowest at {result.min_loss_lr:.2g}\n"
        f"{advice}'{command}'\n"
        f"written to {out_dir}",
        highlight=False,
        soft_wrap=True,
    )
