"""``lat space``: list spaces, describe, sample and enumerate subnets (pure Python, instant)."""

from __future__ import annotations

import argparse
import json
import random
import sys
from typing import Any

from latkit import cli_args
from latkit.errors import ArchError
from latkit.supernet.arch_files import read_archs
from latkit.supernet.resolutions import parse_resolutions
from latkit.supernet.space import ArchConfig, SearchSpace, get_space, list_spaces


def describe_arch(space: SearchSpace, arch: ArchConfig) -> dict[str, Any]:
    layers = space.layers(arch)
    return {
        "key": str(arch),
        "space": space.name,
        "resolution": arch.r,
        "d": list(arch.d),
        "ofa": arch.to_ofa_dict(space.max_depth),
        "params": sum(layer.params for layer in layers),
        "macs": sum(layer.macs for layer in layers),
        "layers": [{"key": layer.key, "macs": layer.macs, "params": layer.params} for layer in layers],
    }


def _print_arch_list(space: SearchSpace, archs: list[ArchConfig], as_json: bool) -> None:
    if as_json:
        json.dump([{"key": str(a), **a.to_ofa_dict(space.max_depth)} for a in archs], sys.stdout)
        sys.stdout.write("\n")
    else:
        for a in archs:
            print(a)


def _cmd_list(args: argparse.Namespace) -> int:
    rows = [get_space(n).describe() for n in list_spaces()]
    if args.json:
        print(json.dumps(rows))
        return 0
    print(f"{'space':<16} {'subnets/res':>12} {'resolutions':>12}  elastic dimensions")
    for r in rows:
        res = f"{r['resolutions'][0]}..{r['resolutions'][-1]}"
        if r["coupled"]:
            dims = f"(d,e) in {[tuple(p) for p in r['coupled']]}, ks per stage {[k[0] for k in r['ks']]}"
        else:
            dims = f"ks {r['ks'][0]}, e {r['e']} per block; d {r['d']} per stage"
        print(f"{r['name']:<16} {r['subnets_per_resolution']:>12.3g} {res:>12}  {dims}")
    return 0


def _cmd_describe(args: argparse.Namespace) -> int:
    space = get_space(args.space)
    if (args.arch is None) == (args.archs is None):
        raise ArchError("give exactly one of --arch ARCH or --archs FILE")
    archs = [space.parse(args.arch)] if args.arch else read_archs(args.archs, space)
    out = [describe_arch(space, a) for a in archs]
    if args.json:
        print(json.dumps(out[0] if args.arch else out))
        return 0
    for d in out:
        print(f"{d['key']}  ({d['space']}, {d['resolution']}x{d['resolution']}, depths {d['d']})")
        print(f"  params {d['params']:,}  MACs {d['macs'] / 1e6:.1f}M  layers {len(d['layers'])}")
        if args.arch:
            for layer in d["layers"]:
                print(f"    {layer['macs'] / 1e6:8.2f}M  {layer['key']}")
    return 0


def _cmd_sample(args: argparse.Namespace) -> int:
    space = get_space(args.space)
    if args.n < 1:
        raise ArchError(f"-n must be at least 1, got {args.n}")
    rng = random.Random(args.seed)
    res = parse_resolutions(args.resolutions, space)
    archs = [space.sample(rng, res) for _ in range(args.n)]
    _print_arch_list(space, archs, args.json)
    return 0


def _cmd_enumerate(args: argparse.Namespace) -> int:
    space = get_space(args.space)
    res = [args.resolution] if args.resolution is not None else None
    archs = [a for r in (res or space.resolutions) for a in space.enumerate(r)]
    _print_arch_list(space, archs, args.json)
    return 0


#: ``--json`` of the ``lat space`` actions: JSON instead of the text output
JSON_HELP = "machine-readable output (JSON)"


def register_space(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("space", help="search spaces: list, describe, sample, enumerate",
                       description="Search spaces and subnet configs. ARCH is a canonical key "
                       "(r224-k35.737.33.5733.35-e34.463.66.3466.44: per stage one digit per active "
                       "block) or the once-for-all JSON dict {\"ks\": [...], \"e\": [...], "
                       "\"d\": [...], \"r\": 224}.")
    ss = p.add_subparsers(dest="space_command", metavar="ACTION", parser_class=type(p))
    q = ss.add_parser("list", help="spaces with their elastic dimensions and subnet counts")
    cli_args.add_json(q, help=JSON_HELP)
    q.set_defaults(func=_cmd_list)

    q = ss.add_parser("describe", help="layers, parameters and MACs of a subnet")
    cli_args.add_space(q, required=True, help=f"search space: one of {', '.join(list_spaces())}")
    q.add_argument("--arch", help="canonical key or once-for-all JSON dict")
    q.add_argument("--archs", help="file of archs (one per line, or a CSV with an arch column)")
    cli_args.add_json(q, help=JSON_HELP)
    q.set_defaults(func=_cmd_describe)

    q = ss.add_parser("sample", help="random subnets (seeded)")
    cli_args.add_space(q, required=True)
    q.add_argument("-n", type=cli_args.POSITIVE, default=10)
    cli_args.add_seed(q, default=0, what="sampling seed")
    cli_args.add_resolutions(q, help="resolutions to draw from: a list and/or ranges such as 128,160 "
                             "or 128-224:8 (a range steps by 4 by default), or 'all' (default all)")
    cli_args.add_json(q, help=JSON_HELP)
    q.set_defaults(func=_cmd_sample)

    q = ss.add_parser("enumerate", help="every subnet of an enumerable space (CompOFA: 243 per resolution)")
    cli_args.add_space(q, required=True)
    q.add_argument("--resolution", type=cli_args.POSITIVE, help="one resolution (default: all)")
    cli_args.add_json(q, help=JSON_HELP)
    q.set_defaults(func=_cmd_enumerate)
    p.set_defaults(func=lambda a: (p.print_help(), 2)[1])
