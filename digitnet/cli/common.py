"""What every command shares: the Typer app, one-line errors, signals, the run options, progress.

Only the ``digitnet.cli`` package knows about Typer and only it prints. A
[DigitnetError][digitnet.errors.DigitnetError] becomes one line on stderr and exit code 2 (``--debug`` shows
the traceback instead); Ctrl-C and SIGTERM save what finished and exit 130 / 143.
"""

from __future__ import annotations

import functools
import inspect
import re
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, ParamSpec, TypeAlias, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Column
from typer._click import exceptions as click_errors  # Typer's own copy of click (since 0.29)
from typer.core import TyperArgument, TyperGroup

from digitnet import __version__
from digitnet.configs import PCA_FILTERS, widths_text
from digitnet.errors import ConfigError, DigitnetError
from digitnet.presets import PRESET_NAMES, preset_settings
from digitnet.settings import SETTINGS, parse_setting, without_others_first_layer

if TYPE_CHECKING:  # the sweep package imports torch: only for the annotation
    from digitnet.sweep import RunRecord


# Typer checks a number's type with pydantic, whose words are a programmer's.
_PLAIN_WORDS = {
    "Input should be a valid integer, unable to parse string as an integer": "expected a whole number",
    "Input should be a valid number, unable to parse string as a number": "expected a number",
}


class _PlainArgument(TyperArgument):
    """A positional argument shown as most command-line tools show one: ``RUN_DIR`` and ``[VALUES]...`` in
    the usage line (Typer writes a required one ``{RUN_DIR}``, the braces argparse uses for a set of
    choices), and ``IMAGES <path>...`` in the list of arguments rather than Python's ``<list[Path]>``."""

    def _usage_display_name(self) -> str:
        name = self.display_name_raw if self.required else f"[{self.display_name_raw}]"
        return name + ("..." if self.nargs != 1 else "")

    def display_type_rich(self, ctx: Any) -> str | None:
        shown = super().display_type_rich(ctx)
        if shown and shown.startswith("<list[") and shown.endswith("]>"):
            return f"<{shown[len('<list[') : -len(']>')].lower()}>..."
        return shown


def _plain_arguments(command: Any) -> None:
    """Show every positional argument of ``command`` and its subcommands as ``_PlainArgument`` does."""
    for param in command.params:
        if type(param) is TyperArgument:
            param.__class__ = _PlainArgument  # the same object and fields; only how it is shown changes
    for sub in getattr(command, "commands", {}).values():
        _plain_arguments(sub)


class OneLineErrors(TyperGroup):
    """The ``digitnet`` group, whose usage errors are one ``error:`` line like every other error.

    click prints a usage error (``--epochs 1.5``, a misspelt option) as three lines: the usage, a hint,
    then ``Error: …``. A student then reads two kinds of error from one tool, and a script that keeps the
    line starting ``error:`` misses these. Here click runs without its own exit handling, and whatever it
    would have shown becomes one line naming the command's ``--help``; the exit code stays click's (2).
    Its commands' positional arguments are shown plainly (``_PlainArgument``).
    """

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        _plain_arguments(self)

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        run = functools.partial(
            super().main, args, prog_name, complete_var, False, windows_expand_args, **extra
        )
        if not standalone_mode:
            return run()
        try:  # returns typer.Exit's code, if one was raised
            code = run()
        except click_errors.NoArgsIsHelpError as error:  # a bare group: its help is the answer
            error.show()
            sys.exit(error.exit_code)
        except click_errors.ClickException as error:
            context = getattr(error, "ctx", None)
            message = error.format_message()
            for typer_says, plainly in _PLAIN_WORDS.items():
                message = message.replace(typer_says, plainly)
            # "Invalid value for '--epochs': expected …" said as digitnet's own checks say it: "--epochs: …"
            message = re.sub(r"^Invalid value for '([^']+)': ", r"\1: ", message)
            hint = (
                f" (see '{context.command_path} --help')"
                if isinstance(error, click_errors.UsageError) and context
                else ""
            )
            if isinstance(error, click_errors.NoSuchOption) and error.option_name in ("--debug", "--version"):
                path = context.command_path.split() if context else ["digitnet"]
                where = " ".join([path[0], error.option_name, *path[1:]])
                hint = f" ({error.option_name} goes before the command: {where} …)"
            elif (
                isinstance(error, click_errors.NoSuchOption)
                and context is not None
                and error.option_name in NOT_OFFERED.get(context.info_name or "", ((), ""))[0]
            ):
                # 'lr-find --epochs 2': an option of train it leaves out on purpose, said as such rather
                # than with click's nearest spelling ("Possible options: --csv")
                reason = NOT_OFFERED[context.info_name or ""][1]
                message = f"{context.info_name} takes no {error.option_name}: {reason}"
                hint = ""
            elif (
                isinstance(error, click_errors.NoSuchOption)
                and error.option_name.lstrip("-").replace(".", "", 1).isdigit()  # -1, -0.1
            ):
                # 'compare lr -1': meant as a value, read as an option because it starts with '-' (click
                # names only its first two characters: -0.5 is "-0")
                message = "a negative number was read as an option; no value here can be < 0"
            err_console.print(
                f"[bold red]error:[/] {escape(message.rstrip('.') if hint else message)}{escape(hint)}",
                highlight=False,
                soft_wrap=True,
            )
            sys.exit(error.exit_code)
        except typer.Abort:
            err_console.print("[bold red]error:[/] aborted", highlight=False)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


app = typer.Typer(
    cls=OneLineErrors,
    name="digitnet",
    help="Handwritten-digit recognition on MNIST, end to end: data, models, training, analysis.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Plain help, as wide as the terminal up to 120 columns: Typer's rich panels put each flag's --no-
    # form in a column of its own and left a description 17 characters wide in an 80-column terminal.
    rich_markup_mode=None,
    context_settings={"max_content_width": 120},
)
data_app = typer.Typer(
    help="Get, split, and look at the digits.", no_args_is_help=True, rich_markup_mode=None
)
app.add_typer(data_app, name="data")

# True in the digitnet command (digitnet.cli.main), which owns its process: there a command may start helper
# processes (digitnet.figure_helper). Tests call ``app`` in pytest's process, where they would only cost.
STANDALONE = False
# Piped to a file or a log, rich would assume 80 columns and wrap a table's headers; a terminal keeps
# its own width.
console = Console(width=None if sys.stdout.isatty() else 120)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 120)
_state = {"debug": False, "terminated": False}

P = ParamSpec("P")
R = TypeVar("R")

# Exit codes: 2 for input the user can fix (like click's usage errors), 1 for a run that diverged,
# 130 for Ctrl-C and 143 for SIGTERM (the shell's convention: 128 + the signal's number).
EXIT_USER_ERROR, EXIT_DIVERGED, EXIT_INTERRUPTED, EXIT_TERMINATED = 2, 1, 130, 143
FLAG = ""  # a flag's metavar: it takes no value, so --help shows none (Typer would show "<bool>")


def print_error(message: str) -> None:
    """Print ``error: message`` on stderr (one of several: the command goes on, and exits non-zero)."""
    # Escaped: a message naming an extra ("digitnet[onnx]") or a list is text, not rich markup.
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)


def fail(message: str, code: int = EXIT_USER_ERROR) -> NoReturn:
    """Print ``error: message`` on stderr and exit with ``code``."""
    print_error(message)
    raise typer.Exit(code)


def _terminated(signum: int, frame: object) -> None:
    """SIGTERM (``kill``, a scheduler, a closing laptop session) stops a run the way Ctrl-C does, so the
    finished epochs are saved. Further SIGTERMs are ignored while that saving runs."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _state["terminated"] = True
    raise KeyboardInterrupt


def friendly(command: Callable[P, R]) -> Callable[P, R]:
    """Turn a [DigitnetError][digitnet.errors.DigitnetError] raised by ``command`` into one line and exit
    code 2, and Ctrl-C or
    SIGTERM into one line and exit code 130 or 143 (click would print "Aborted!" and exit 1)."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        previous = signal.signal(signal.SIGTERM, _terminated)
        _state["terminated"] = False
        try:
            return command(*args, **kwargs)
        except DigitnetError as error:
            if _state["debug"]:
                raise
            fail(str(error))
        except KeyboardInterrupt:  # outside a training loop, which saves and reports its own epochs
            what = "stopped by SIGTERM" if _state["terminated"] else "interrupted"
            fail(
                f"{what}: finished epochs, if any, are saved, and the same command resumes from them",
                EXIT_TERMINATED if _state["terminated"] else EXIT_INTERRUPTED,
            )
        finally:
            signal.signal(signal.SIGTERM, previous)

    return wrapper


def _version(value: bool) -> None:
    if value:
        console.print(f"digitnet {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit.", metavar=FLAG
        ),
    ] = False,
    debug: Annotated[
        bool,
        typer.Option(
            "--debug",
            help="Show full tracebacks instead of one-line errors; give it before the command: "
            "digitnet --debug train …",
            metavar=FLAG,
        ),
    ] = False,
) -> None:
    """digitnet: train, compare and explain digit classifiers from the command line."""
    _state["debug"] = debug


# ------------------------------------------------------------------------------------------ options
# Every run option is derived from digitnet.settings.SETTINGS: its type, help, choices and the default
# --help shows. An option left at its default counts as not given (see run_settings), so a preset's value,
# then the config's default, applies.


def choices_metavar(names: Sequence[str]) -> str:
    """``[a | b | c]``: how an option's choices show in ``--help`` (checked by the configs, not by click);
    spaced, so that a long list wraps between names."""
    return "[" + " | ".join(names) + "]"


# A run directory as a command's first argument, named as the defaults that derive from it name it
# (RUN_DIR/evaluation, RUN_DIR/inside, …).
RunDir: TypeAlias = Annotated[
    Path,
    typer.Argument(
        help="A run directory written by 'digitnet train'.", metavar="RUN_DIR", show_default=False
    ),
]

Preset = Annotated[
    str | None,
    typer.Option(
        help="A measured recipe (see README); options given beside it win.",
        metavar=choices_metavar(PRESET_NAMES),
    ),
]


def option_flags(name: str) -> tuple[str, ...]:
    """The flags of setting ``name`` on the command line: ``("--lr",)``, or for a switch its on and off
    forms, ``("--augment", "--no-augment")``."""
    return (f"--{name}", f"--no-{name}") if SETTINGS[name].kind is bool else (f"--{name}",)


def _option(name: str, help_text: str | None = None, choices: Sequence[str] = ()) -> Any:
    """``typer.Option`` for setting ``name``: ``--name``, its help, its choices as the metavar (checked by
    the config, so a wrong one is one ``error:`` line), and its default as ``--help`` shows it.
    ``choices`` narrows what a command offers (``data`` commands take no ``--split``)."""
    setting = SETTINGS[name]
    metavar: str | None
    declarations = ("/".join(option_flags(name)),)
    if setting.kind is bool:
        metavar = FLAG
    else:
        shown = choices or setting.choices
        metavar = choices_metavar(shown) if shown else None
    return typer.Option(
        *declarations,
        help=help_text or setting.help,
        show_default=setting.default_text or True,
        metavar=metavar,
    )


# Run options a command leaves out on purpose, and why, by command name: an error names the reason.
NOT_OFFERED: dict[str, tuple[tuple[str, ...], str]] = {}


def with_run_options(
    omit: tuple[str, ...] = (), **help_overrides: str
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Give a command one option per run setting (see [SETTINGS][digitnet.settings.SETTINGS]) after its
    own; their values arrive in its ``**options``. ``help_overrides`` rewords an option where the
    command reads it differently (compare's ``--seed`` is the first of several); ``omit`` leaves out
    settings the command does not read (lr-find sets the rate itself), so --help does not offer them."""

    def decorate(command: Callable[P, R]) -> Callable[P, R]:
        signature = inspect.signature(command, eval_str=True)
        own = [p for p in signature.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
        added = []
        for name, setting in SETTINGS.items():
            if name in omit:
                continue
            python_name = name.replace("-", "_")
            option = _option(name, help_overrides.get(python_name))
            annotation = Annotated[setting.kind | None, option]  # type: ignore[name-defined]
            added.append(
                inspect.Parameter(
                    python_name,
                    inspect.Parameter.KEYWORD_ONLY,
                    default=setting.default,
                    annotation=annotation,
                )
            )
        command.__signature__ = signature.replace(parameters=[*own, *added])  # type: ignore[attr-defined]
        return command

    return decorate


# The data commands read a source and split it themselves, so they offer every source but a saved split.
Dataset: TypeAlias = Annotated[
    str,
    _option(
        "dataset",
        "auto = --csv if given, else full MNIST if found, else the bundled sample.",
        choices=[name for name in SETTINGS["dataset"].choices if name != "split"],
    ),
]
DataDir: TypeAlias = Annotated[Path | None, _option("data-dir")]
CsvPath: TypeAlias = Annotated[Path | None, _option("csv")]
TestFraction: TypeAlias = Annotated[float | None, _option("test-fraction")]


def given_options(options: dict[str, Any], context: typer.Context | None) -> dict[str, Any]:
    """The options of ``options`` the user gave (Typer's names): not None, and not left at their default
    (the command's ``context`` records where each value came from; without one, every set value)."""
    given = {}
    for python_name, value in options.items():
        source = context.get_parameter_source(python_name) if context is not None else None
        if value is not None and getattr(source, "name", None) != "DEFAULT":
            given[python_name] = value
    return given


def run_settings(
    options: dict[str, Any], preset: str | None = None, context: typer.Context | None = None
) -> dict[str, Any]:
    """The run settings a command was given (Typer's names, ``batch_size``), over its ``preset``.

    An option left at its default was not given (the command's ``context`` records where each value
    came from), so the preset's value, then the config's default, applies. An option that is not a
    setting is a bug in the command, and fails loudly rather than being ignored.
    """
    settings: dict[str, Any] = preset_settings(preset)
    given: set[str] = set()
    for python_name in options:
        name = python_name.replace("_", "-")
        if name not in SETTINGS:
            raise ConfigError(f"--{name}: not a run setting; known: {', '.join(SETTINGS)}")
    for python_name, value in given_options(options, context).items():
        name = python_name.replace("_", "-")
        setting = SETTINGS[name]
        if setting.kind is str and setting.parse is not str:  # typed as text, read by the setting's parser
            value = parse_setting(name, value)
        elif isinstance(value, Path):
            value = str(value)
        settings[name] = value
        given.add(name)
    if "first-layer" not in given:
        settings = without_others_first_layer(settings)
    channels = settings.get("channels", ())
    if "first-layer" not in given and settings.get("first-layer") == "pca" and channels[:1] > (PCA_FILTERS,):
        raise ConfigError(
            f"--channels {widths_text(tuple(channels))}: --preset {preset} fixes the first layer to the "
            f"digits' {PCA_FILTERS} principal 5×5 patterns, so its first stage has at most {PCA_FILTERS} "
            "channels; add --first-layer learned to learn a wider one"
        )
    return settings


def progress_bar(unit: str) -> Progress:
    """A live bar on a terminal; when stderr is a file or pipe, rich draws nothing until the end, so
    ``log_line`` prints a plain line per step instead."""
    return Progress(
        TextColumn(f"[bold]{unit}"),
        MofNCompleteColumn(),
        BarColumn(),
        # In a narrow terminal the description gives way (cut with …), never the elapsed time.
        TextColumn("{task.description}", table_column=Column(ratio=1, no_wrap=True, overflow="ellipsis")),
        TimeElapsedColumn(table_column=Column(min_width=7, no_wrap=True)),
        console=err_console,
        disable=not err_console.is_terminal,
    )


def log_line(progress: Progress, text: str) -> None:
    if progress.disable:
        err_console.print(text, highlight=False, soft_wrap=True)


def show_run(
    progress: Progress, task: TaskID, record: RunRecord, done: int, total: int, where: str = ""
) -> None:
    """One finished (or cached) run of a sweep or report on the bar, or as a line when stderr is not a
    terminal; ``where``: the report's experiment the run belongs to."""
    status = "cached" if record.cached else record.summary.status
    text = f"{where}{': ' if where else ''}{record.cell.label} seed {record.seed}: {status}"
    progress.update(task, completed=done, total=total, description=text)
    log_line(progress, f"run {done}/{total} · {text}")


def print_notes(notes: tuple[str, ...]) -> None:
    for note in notes:
        err_console.print(f"[dim]note:[/] {note}", highlight=False, soft_wrap=True)


def percent(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.2f}%"


def terminated() -> bool:
    """Whether the command was stopped by SIGTERM (exit 143) rather than Ctrl-C (exit 130)."""
    return _state["terminated"]
