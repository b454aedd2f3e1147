"""What the package's command lines share, so each behaves like the others.

A bad argument ends in exit status 2 and one line naming it, never in a
traceback or a server that starts and then fails every request; MODEL may
name a model shipped in the package; a reader that goes away (``| head``)
ends the command quietly; ``--help`` and ``--version`` answer everywhere.
"""
import argparse
import functools
import math
import os
import sys

from . import models


def number(kind, minimum, strict=False, maximum=None):
    """An argparse type: ``kind`` values from ``minimum`` (above it when ``strict``) up to
    ``maximum``."""
    def convert(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not a{'n integer' if kind is int else ' number'}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
        if value < minimum or (strict and value == minimum):
            raise argparse.ArgumentTypeError(
                f"{text} must be {'greater than' if strict else 'at least'} {minimum:g}")
        if maximum is not None and value > maximum:
            raise argparse.ArgumentTypeError(f"{text} must be at most {maximum:g}")
        return value
    convert.__name__ = kind.__name__
    return convert


POSITIVE_INT = number(int, 0, strict=True)
COUNT = number(int, 0)
POSITIVE = number(float, 0.0, strict=True)
NON_NEGATIVE = number(float, 0.0)
PERCENT = number(float, 0.0, maximum=100.0)
PORT = number(int, 0, maximum=65535)


def model_path(text):
    """MODEL as given: a file's path, or the name of a model shipped in the package."""
    return models.resolve(text)


def program(module):
    """The name a usage line shows: the console script's, or ``python -m module``."""
    name = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    return f"python -m {module}" if name in ("", "-c") or name.endswith(".py") else name


def command_parser(module, description, **options):
    """The argument parser of the command ``python -m module`` (or its console script),
    with ``--version`` as every command of the package has it."""
    from . import __version__
    parser = argparse.ArgumentParser(prog=program(module), description=description, **options)
    parser.add_argument("--version", action="version", version=f"%(prog)s (edgebnn {__version__})")
    return parser


def quiet_on_closed_pipe(main):
    """``main``, ending with status 1 and no traceback when stdout's reader has gone."""
    @functools.wraps(main)
    def run(argv=None):
        try:
            try:
                return main(argv)
            finally:                    # also after argparse's exit, which --help takes
                sys.stdout.flush()
        except BrokenPipeError:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no flush error at exit
            return 1
    return run
