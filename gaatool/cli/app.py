"""The gaatool command line: root app, --version, and the one error boundary.

Commands parse, call the library, and render. Library code raises
GaatoolError subclasses; this module turns them into one ``error: ...`` line on
stderr and exit code 1. Exit codes: 0 ok, 1 GaatoolError, 2 usage, 3 a bug
(traceback with --debug), 130 Ctrl-C or SIGTERM.
"""
from __future__ import annotations

import errno
import os
import signal
import sys
import threading
import traceback

import typer

from .._version import __version__
from ..errors import GaatoolError
from ..allocator import keep_freed_memory
from . import groups

app = typer.Typer(
    name="gaatool",
    help="Geometric algebra attention networks for crystals, molecules and proteins.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
groups.register(app)

_DEBUG = {"on": False}


def _version(value: bool) -> None:
    if value:
        typer.echo(f"gaatool {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show the version and exit."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks for unexpected errors."),
) -> None:
    """Geometric algebra attention networks for crystals, molecules and proteins."""
    _DEBUG["on"] = debug


def _error(message: str) -> None:
    sys.stderr.write(f"error: {message}\n")


def _is_usage_error(err: Exception) -> bool:
    # typer vendors click, so match click's exception protocol rather than a class
    return hasattr(err, "show") and isinstance(getattr(err, "exit_code", None), int)


def _raise_interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def _terminate_like_ctrl_c():
    """SIGTERM (batch schedulers' time limit, ``kill``) ends a command the way Ctrl-C does; returns the old handler.

    A training run then saves its state and exits with 130, and no partial output is left (atomic writes).
    """
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, _raise_interrupt)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``gaatool`` console script; always ends with SystemExit."""
    previous_handler = _terminate_like_ctrl_c()
    try:
        _run(argv)
    except SystemExit as exit_:
        if exit_.code == 130 and argv is None:
            _ignore_further_interrupts()
        raise
    finally:
        if previous_handler is not None and signal.getsignal(signal.SIGTERM) is _raise_interrupt:
            signal.signal(signal.SIGTERM, previous_handler)


def _ignore_further_interrupts() -> None:
    """After Ctrl-C the process is on its way out: a second Ctrl-C (``timeout -s INT`` signals the whole
    process group, impatient users press twice) would interrupt the interpreter's shutdown while worker
    threads still run, which printed a traceback and aborted (SIGABRT) instead of exiting with 130.
    Only for the console script (``argv`` None): an in-process caller keeps its handlers."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)


def _broken_pipe(exit_: SystemExit) -> bool:
    """Whether ``exit_`` is typer's exit on EPIPE (``gaatool ... | head``: the reader left, nothing is wrong).

    typer catches the OSError itself and calls ``sys.exit(1)`` inside its handler, so the OSError is the
    exit's context; exit code 1 would fail a ``set -o pipefail`` batch script that only wanted the first lines.
    """
    context = exit_.__context__
    return exit_.code == 1 and isinstance(context, OSError) and context.errno == errno.EPIPE


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so that the interpreter's final flush into a closed pipe stays quiet."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # an in-process caller's stdout may have no file descriptor
        pass


def _run(argv: list[str] | None) -> None:
    # OpenMP threads that spin while idle slow torch badly when cores are shared (HPC nodes, laptops
    # running other jobs); users can still override this in their environment.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    # the process is gaatool's: keep freed memory for the next batch instead of page-faulting it in again
    # (10-35% of a CPU training step; GAATOOL_MALLOC=default or the user's own MALLOC_* settings opt out)
    keep_freed_memory()
    args = sys.argv[1:] if argv is None else list(argv)
    _DEBUG["on"] = "--debug" in args
    try:
        try:
            result = app(args=args, prog_name="gaatool", standalone_mode=False)
        except SystemExit as exit_:
            if not _broken_pipe(exit_):
                raise
            result = 0  # typer's own answer to a reader that left: `sys.exit(1)`, silently
            _silence_stdout()
        code = result if isinstance(result, int) else 0
        if code == 130:
            # typer turns Ctrl-C (and SIGTERM, through _raise_interrupt) into Exit(130) and returns its code
            # when not standalone: without this line the command ended silently, as if it had finished
            _error("interrupted")
    except GaatoolError as err:
        _error(str(err).splitlines()[0] if str(err) else type(err).__name__)
        # an interrupted training run reports like Ctrl-C (130), after saving
        code = 130 if type(err).__name__ == "TrainingInterrupted" else 1
    except typer.Exit as err:
        code = err.exit_code
    except typer.Abort:
        _error("interrupted")
        code = 130
    except KeyboardInterrupt:
        _error("interrupted")
        code = 130
    except BrokenPipeError:
        code = 0  # e.g. `gaatool ... | head`: the reader left, nothing is wrong
        _silence_stdout()
    except Exception as err:  # noqa: BLE001
        if _is_usage_error(err):
            err.show()
            raise SystemExit(err.exit_code) from None
        # a bug: say so, keep the traceback for --debug
        if _DEBUG["on"]:
            traceback.print_exc()
        _error(f"unexpected {type(err).__name__}: {err} (this is a bug; rerun with --debug and report it)")
        code = 3
    raise SystemExit(code)
