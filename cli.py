"""The ``lat`` command and its ``lat-<subcommand>`` aliases.

Thin by design (STYLE 12): this module only builds the argument parser from the subcommand modules
and turns a ``LatkitError`` into one line on stderr and exit status 2. Each subcommand lives next to
the code it drives, in a module that defines ``register_<name>(subparsers)``; the registered parser
sets ``func`` to a function taking the parsed namespace and returning an exit status.

Subcommand modules must stay cheap to import (no torch or onnxruntime at module level) so that
``lat --help`` and ``lat space ...`` start instantly.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from typing import Any

from latkit import __version__
from latkit.errors import LatkitError
from latkit.predictors.cli import register_fit_accuracy
from latkit.provenance import command_line
from latkit.search.derive_cli import register_derive

# name -> module that defines register_<name>(subparsers). Order is the order in `lat --help`.
COMMANDS: dict[str, str] = {
    "space": "latkit.supernet.cli",
    "export": "latkit.profiler.cli_export",
    "bench": "latkit.devices.cli",
    "device": "latkit.devices.cli",
    "profile": "latkit.profiler.cli",
    "measure": "latkit.profiler.cli",
    "lut": "latkit.profiler.cli",
    "store": "latkit.profiler.cli",
    "fit": "latkit.predictors.cli",
    "predict": "latkit.predictors.cli",
    "train": "latkit.supernet.train_cli",
    "search": "latkit.search.cli",
    "demo": "latkit.demo",
}


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line (plus exit status 2), not a usage dump."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser(prog: str = "lat") -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog=prog,
        description="latkit: measure, predict, train and search weight-sharing supernets "
        "for the devices you deploy on.",
    )
    parser.add_argument("--version", action="version", version=f"latkit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)
    for name, module_name in COMMANDS.items():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.startswith("latkit"):
                continue  # subcommand not built yet
            raise
        register = getattr(module, f"register_{name}", None)
        if register is not None:
            register(sub)
    _register_aliases(sub)
    return parser


def _register_aliases(sub: argparse._SubParsersAction) -> None:
    """Forms kept under an older name in a package that may not import the one that runs them.

    ``lat train fit-accuracy`` is ``lat fit --target top1`` (the predictors package's), listed
    among ``lat train``'s forms: the supernet package sits below predictors and cannot register it.
    ``lat space derive`` (search's) is listed among ``lat space``'s actions for the same reason,
    and ``lat train --latency`` gets its predictor loader here.
    """
    space = sub.choices.get("space")
    actions = [a for a in space._actions if isinstance(a, argparse._SubParsersAction)] if space else []
    if actions and "derive" not in actions[0].choices:
        register_derive(actions[0])
    train = sub.choices.get("train")
    if train is None:
        return
    train.set_defaults(latency_loader=_train_latency)
    forms = [a for a in train._actions if isinstance(a, argparse._SubParsersAction)]
    if forms and "fit-accuracy" not in forms[0].choices:
        register_fit_accuracy(forms[0])
    if forms and "eval" in forms[0].choices:  # --precision int8 scores the int8 export
        forms[0].choices["eval"].set_defaults(export_scorer=_score_int8)


def _score_int8(*args: Any, **kwargs: Any) -> float:
    """``lat train eval --precision int8``'s scorer: the exporter's, which supernet cannot import."""
    from latkit.profiler.quantize import score_int8  # noqa: PLC0415 -- torch: keeps lat --help fast

    return score_int8(*args, **kwargs)


def _train_latency(space: str, targets: Sequence[tuple[str, str]]) -> dict[str, Callable]:
    """``lat train --latency``: each device's predicted milliseconds (search's latency sources)."""
    from latkit.search.protocols import latency_source  # noqa: PLC0415 -- numpy, xgboost: only for lat train --latency

    return {d: latency_source(d, spec, space).predict_ms for d, spec in targets}


def main(argv: Sequence[str] | None = None, prog: str = "lat",
         typed: Sequence[str] | None = None) -> int:
    """Run ``prog argv`` (``argv`` defaults to ``sys.argv[1:]``); returns the exit status.

    ``typed`` is the command as the user typed it, program name first (an alias such as
    ``lat-fit`` passes its own); it defaults to ``[prog, *argv]``. Commands get it, quoted and
    re-runnable, as ``args.command_line`` and record it in what they write.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    typed = list(typed) if typed is not None else [prog, *argv]
    args.command_line = command_line(typed[0], typed[1:])
    func: Callable[[argparse.Namespace], int] | None = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    try:
        return int(func(args) or 0)
    except LatkitError as exc:
        print(f"{prog} {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"{prog} {args.command}: interrupted; everything measured so far is kept", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


def _alias(name: str) -> Callable[[], int]:
    def run() -> int:
        return main([name, *sys.argv[1:]], typed=[f"lat-{name}", *sys.argv[1:]])

    run.__name__ = f"{name}_main"
    return run


space_main = _alias("space")
export_main = _alias("export")
bench_main = _alias("bench")
device_main = _alias("device")
profile_main = _alias("profile")
measure_main = _alias("measure")
lut_main = _alias("lut")
fit_main = _alias("fit")
predict_main = _alias("predict")
train_main = _alias("train")
search_main = _alias("search")
demo_main = _alias("demo")


def _entry() -> None:
    sys.exit(main())


if __name__ == "__main__":
    _entry()
