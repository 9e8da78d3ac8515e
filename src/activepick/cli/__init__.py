"""The ``activepick`` command line: one entry point, one module per subcommand.

Each subcommand module defines ``register(subparsers)``, which adds its parser and
sets ``func`` to a function taking the parsed arguments and returning an exit code.
The modules stay thin: they parse, call the core, and print. Errors of the core
reach the user as one ``activepick COMMAND: error: ...`` line, and its warnings as
one ``activepick COMMAND: warning: ...`` line each (:func:`warning_printer`), not as
Python's ``file.py:12: SomeWarning: ...`` with a source line.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings

from ..errors import ActivePickError

#: Subcommand modules, in the order ``activepick --help`` lists them.
SUBCOMMANDS = (
    "simulate",
    "train",
    "predict",
    "evaluate",
    "benchmark",
    "convert",
    "round",
    "session",
    "gui",
)


class _VersionAction(argparse.Action):
    """``--version``: reads the installed version only when asked (it costs an import)."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, **kwargs):
        kwargs.setdefault("help", "show the version and exit")
        super().__init__(option_strings, dest=dest, nargs=0, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        from .. import __version__

        print(f"{parser.prog} {__version__}")  # stdout, as argparse's own version action
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="activepick",
        description="Human-in-the-loop cryo-EM particle picking with active learning.",
    )
    parser.add_argument("--version", action=_VersionAction)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in SUBCOMMANDS:
        importlib.import_module(f"{__name__}.{name}").register(sub)
    return parser


def warning_printer(command: str):
    """A ``warnings.showwarning`` that prints ``activepick COMMAND: warning: MESSAGE`` to
    stderr, once per message (a warning repeated for every micrograph is one line)."""
    seen: set[str] = set()

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        text = f"activepick {command}: warning: {message}"
        if text not in seen:
            seen.add(text)
            print(text, file=sys.stderr, flush=True)

    return show


def main(argv: list[str] | None = None) -> int:
    """Run the ``activepick`` command; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    with warnings.catch_warnings():  # the hook is this command's only
        warnings.showwarning = warning_printer(args.command)
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    try:
        return int(args.func(args) or 0)
    except ActivePickError as exc:
        print(f"activepick {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # unwritable folder, disk full, a file where a folder should be
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"activepick {args.command}: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"activepick {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
