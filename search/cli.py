"""``lat search`` (``lat-search``): the most accurate subnet per device and latency budget.

Thin (STYLE 12): the handler parses, builds a ``SearchRequest`` and calls ``run_search``, which it
imports when it runs, so that ``lat --help`` stays fast.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

from latkit import cli_args
from latkit.errors import BudgetError, LatkitError
from latkit.supernet.resolutions import parse_resolutions
from latkit.supernet.space import get_space


def _cmd_search(args: argparse.Namespace) -> int:
    # the search library imports numpy, the profiler and the devices: lat --help need not
    from latkit.search.evolution import FAST  # noqa: PLC0415 -- numpy: keeps lat --help fast
    from latkit.search.protocols import parse_latency_specs  # noqa: PLC0415 -- numpy: lat --help
    from latkit.search.run import SearchRequest, run_search  # noqa: PLC0415 -- numpy
    from latkit.search.verify import format_choices  # noqa: PLC0415 -- numpy: keeps lat --help fast

    evo = FAST
    if args.population is not None:
        evo = replace(evo, population=args.population)
    if args.generations is not None:
        evo = replace(evo, generations=args.generations)
    if args.restarts is not None:
        if args.restarts < 1:
            raise LatkitError(f"--restarts must be at least 1, got {args.restarts}")
        evo = replace(evo, restarts=args.restarts)
    latency = parse_latency_specs(args.latency)
    try:
        budgets = cli_args.resolve_budgets(args.budget_ms, [d for d, _ in latency])
    except ValueError as exc:
        raise LatkitError(str(exc)) from None
    req = SearchRequest(
        space=args.space,
        latency=latency,
        accuracy=args.accuracy,
        budgets_ms=budgets,
        out=Path(args.out),
        verify=args.verify,
        checkpoint=Path(args.checkpoint) if args.checkpoint else None,
        method=args.method,
        resolutions=parse_resolutions(args.resolutions, get_space(args.space)),
        seed=args.seed,
        evolution=evo,
        max_tries=args.max_tries,
        export=not args.no_export,
        command=args.command_line,
        precision=args.precision or "fp32",
    )
    log = None if args.json else (lambda m: print(f"  {m}", flush=True))
    report = run_search(req, log=log)
    s = report.summary
    if args.json:
        print(json.dumps(s))
    else:
        print(format_choices(s["choices"]))
        for w in s["precision_winners"]:
            print(f"{w['device']} at {w['budget_ms']:g} ms: "
                  + (f"{w['winner']} wins ({w['top1']:.2f}% top-1 in {w['latency_ms']:.2f} ms; "
                     if w["winner"] else "no precision fits (")
                  + ", ".join(f"{p}: {v['top1']:.2f}% in {v['latency_ms']:.2f} ms"
                              for p, v in sorted(w["by_precision"].items())) + ")")
        print(f"search: {s['search_seconds']:.3f} s ({s['method']}, "
              f"{s.get('candidates') or 'evolution'} candidates); frontiers "
              + ", ".join(f"{d}: {n}" for d, n in s["frontier_sizes"].items()))
        print(f"wrote {s['out']['pareto_csv']}, {s['out']['choices_json']}, "
              f"{s['out']['pareto_png']}" + (f" and {len(s['out']['models'])} model(s) in "
                                           f"{Path(s['out']['dir']) / 'models'}"
                                           if s["out"]["models"] else ""))
    if s["infeasible"]:
        import sys  # noqa: PLC0415 -- only when a budget is infeasible

        for note in s["infeasible"]:
            print(f"lat search: {note}", file=sys.stderr)
        if not s["failed"]:
            return cli_args.INFEASIBLE_EXIT
    if s["failed"]:
        raise BudgetError(s["failed"][0] + (f" (and {len(s['failed']) - 1} more; see "
                                            f"{s['out']['choices_json']})" if len(s["failed"]) > 1 else ""))
    return 0


def register_search(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "search", help="most accurate subnet per device and latency budget (optionally verified)",
        description="Pick, for every device and latency budget, the most accurate subnet whose "
        "predicted latency fits; with --verify, export and measure each choice on its device and "
        "walk down the frontier until the measured median fits. Enumerable spaces (CompOFA) are "
        "searched exhaustively, the once-for-all space by evolution.")
    cli_args.add_space(p, required=True)
    p.add_argument("--latency", required=True, metavar="DEV=PRED[,DEV=PRED...]",
                   help="per device: a latency predictor JSON (lat fit), lut:DIR (a lookup table) "
                   "or measure (live measurement); DEV is a registered device (lat device list), "
                   "or DEV:PRECISION (pixel4:int8) to search a device in several precisions "
                   "together: the output says which precision wins at each budget")
    p.add_argument("--accuracy", required=True, metavar="ACC.csv|ACC.json",
                   help="accuracy table (arch,top1 CSV from lat train eval) or accuracy predictor "
                   "JSON (lat train fit-accuracy)")
    cli_args.add_budgets(p, help=cli_args.BUDGET_HELP + "; with evolution, a device's budgets are "
                         "searched together (shared samples and predictions, one batch for all)")
    p.add_argument("--verify", action="store_true",
                   help="export and measure every choice on its device; walk down the frontier "
                   "until one fits")
    p.add_argument("--checkpoint", help="supernet checkpoint: ship the choices with its weights")
    cli_args.add_out(p)
    cli_args.add_json(p, help="print one JSON object")
    p.add_argument("--method", default="auto", choices=("auto", "pareto", "evolution"),
                   help="auto: exhaustive for enumerable spaces or accuracy tables, else evolution")
    cli_args.add_resolutions(p, help="resolutions to search: a list and/or ranges such as 128,160 "
                             "or 128-224:8 (a range steps by 4 by default), or 'all' (default all)")
    cli_args.add_seed(p, default=0, what="evolution seed")
    cli_args.add_precision(p, help="precision of a --latency target named without one (its "
                           "predictor or table must hold that precision; shipped models are "
                           "exported in it)")
    p.add_argument("--population", type=cli_args.integer(2), help="evolution population (default 100)")
    p.add_argument("--generations", type=cli_args.POSITIVE,
                   help="evolution generations per population (default 34; 4 populations, one "
                   "per quarter of the resolutions, then 16 generations of their best together)")
    p.add_argument("--restarts", type=cli_args.POSITIVE,
                   help="evolution populations per budget (default 4, one per band of the "
                   "resolutions, then their best together); 1: once-for-all's single population")
    p.add_argument("--max-tries", type=cli_args.POSITIVE, default=10,
                   help="verification: subnets measured per choice at most (default 10)")
    p.add_argument("--no-export", action="store_true", help="do not write models/")
    p.set_defaults(func=_cmd_search)
