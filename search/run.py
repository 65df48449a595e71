"""One search run, as ``lat-search`` and ``lat demo`` do it: load, search, verify, ship, write.

``run_search(request)`` is the single library entry point behind the CLI. It writes, under
``request.out``:

- ``pareto.csv``: every device's frontier (device, pos, arch, resolution, predicted_latency_ms, top1);
- ``choices.json``: a list, one object per (device, budget): device, budget_ms, arch, resolution,
  predicted_latency_ms, accuracy (top-1 %), measured_latency_ms / within_budget / tried when
  verified, model (the shipped file);
- ``pareto.png``: the frontiers with budgets and choices;
- ``models/<device>-<budget>ms.<fmt>``: the chosen subnets, ready to ship (trained weights when a
  checkpoint is given, else seeded random weights: the latency is the same, the accuracy is not);
- ``search.json``: provenance (command, versions, sources, settings, timings).

``search_seconds`` is the time spent searching, every predictor call included; loading predictor
files, checkpoints and devices is start-up and is not counted.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from latkit.devices.registry import get_device, list_devices
from latkit.errors import DeviceError, LatkitError, OutputError
from latkit.fileio import sha256_file, write_text
from latkit.predictors.ranges import outside_fit
from latkit.profiler.campaign import SINGLE_NETWORK_PROTOCOL
from latkit.provenance import record
from latkit.search.evolution import FAST, EvolutionSettings, evolution_search
from latkit.search.pareto import SearchResult, all_budgets, pareto_search
from latkit.search.plot import frontier_figure, plot_frontiers
from latkit.search.protocols import accuracy_source, latency_source, parse_latency_specs, split_target
from latkit.search.verify import Choice, Exporter, ship, verify_picks
from latkit.supernet.family import FamilySpace
from latkit.supernet.space import get_space
from latkit.tables import write_table

#: above this many candidates (subnets per resolution x resolutions), "auto" uses evolution
ENUMERABLE_MAX = 200_000
METHODS = ("auto", "pareto", "evolution")
PARETO_COLUMNS = ("device", "pos", "arch", "resolution", "predicted_latency_ms", "top1")


@dataclass(frozen=True)
class SearchRequest:
    space: str
    latency: Sequence[tuple[str, str]]  # (device, spec) pairs: spec = PRED.json | lut:DIR | measure
    accuracy: str  # arch,top1 CSV or accuracy predictor JSON
    budgets_ms: Sequence[float] | Mapping[str, Sequence[float]]  # every device's, or per device
    out: Path
    verify: bool = False
    checkpoint: Path | None = None
    method: str = "auto"
    resolutions: Sequence[int] | None = None
    seed: int = 0
    evolution: EvolutionSettings = FAST
    max_tries: int = 10
    export: bool = True
    command: str = ""
    device_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    protocol: Any = None  # ProtocolSettings for verification; None: the end-to-end campaign's
    #: the precision of a target named without one (``pixel4``); ``pixel4:int8`` names its own
    precision: str = "fp32"


@dataclass
class SearchReport:
    """What a run produced: the search result, the (verified) choices and the JSON summary."""

    result: SearchResult
    choices: list[Choice]
    summary: dict[str, Any]

    def frame(self) -> Any:
        """The choices as a pandas DataFrame, one row per (device, budget), the columns of
        ``choices.json`` (lists and measurements left out)."""
        import pandas as pd  # noqa: PLC0415 -- only DataFrame readers pay for pandas

        rows = [{k: v for k, v in c.to_dict(self.result.space).items()
                 if not isinstance(v, (list, dict))} for c in self.choices]
        return pd.DataFrame(rows)

    def figure(self, title: str | None = None) -> Any:
        """The frontier figure (``pareto.png``) as a matplotlib Figure."""
        return frontier_figure(self.result, self.choices, title)


def parse_budgets(text: str) -> list[float]:
    try:
        budgets = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise LatkitError(f"--budget-ms takes comma-separated milliseconds, got {text!r}") from None
    if not budgets or any(not math.isfinite(b) or b <= 0 for b in budgets):
        raise LatkitError(f"--budget-ms needs positive latencies in ms, got {text!r}")
    return budgets


#: what a target that is not a registered device ships (its latency came from a file, not a device)
UNREGISTERED_FORMAT = "onnx"


def check_devices(names: Sequence[str], why: str | None = None) -> dict[str, str]:
    """Each target name -> the artifact format it ships.

    A latency source may carry any target name (a downloaded ``note10`` table needs no device);
    only measuring needs the name to be a registered device. ``why`` says what measures (``--verify``,
    ``DEV=measure``): then an unknown name is a DeviceError listing the known devices. Without it an
    unregistered target ships ``UNREGISTERED_FORMAT``.
    """
    known = {row["name"]: row["formats"][0] for row in list_devices()}
    base = {n: split_target(n)[0] for n in names}
    if why is not None:
        for n in names:
            if base[n] not in known:
                raise DeviceError(f"unknown device {base[n]!r} in --latency {n}=...: {why} measures "
                                  f"on a device; known devices: {', '.join(known)} (lat device list)")
    return {n: known.get(base[n], UNREGISTERED_FORMAT) for n in names}


def precision_winners(choices: Sequence[Choice], precisions: Mapping[str, tuple[str, str]]
                      ) -> list[dict[str, Any]]:
    """Per device held in several precisions and per budget, which precision's choice wins: the
    most accurate one within budget (measured when verified, else predicted); ties go to the
    faster. ``precisions``: target -> (device, precision)."""
    groups: dict[tuple[str, float], list[Choice]] = {}
    for c in choices:
        groups.setdefault((precisions[c.device][0], c.budget_ms), []).append(c)
    out = []
    for (dev, budget), cs in sorted(groups.items()):
        if len({precisions[c.device][1] for c in cs}) < 2:
            continue
        ok = [c for c in cs if c.within_budget is not False]

        def lat(c: Choice) -> float:
            return c.measured_latency_ms if c.measured_latency_ms is not None else c.predicted_latency_ms

        best = max(ok, key=lambda c: (c.top1, -lat(c))) if ok else None
        out.append({"device": dev, "budget_ms": budget,
                    "winner": precisions[best.device][1] if best else None,
                    "target": best.device if best else None,
                    "top1": best.top1 if best else None,
                    "latency_ms": lat(best) if best else None,
                    "by_precision": {precisions[c.device][1]: {"arch": str(c.arch), "top1": c.top1,
                                                              "latency_ms": lat(c)} for c in cs}})
    return out


def _method(req: SearchRequest, acc_has_candidates: bool) -> str:
    if req.method not in METHODS:
        raise LatkitError(f"--method must be one of {', '.join(METHODS)}, got {req.method!r}")
    if req.method != "auto":
        return req.method
    sp = get_space(req.space)
    if isinstance(sp, FamilySpace):
        if req.method == "evolution":
            raise LatkitError(f"{sp.label} is searched exhaustively (its members are listed): drop "
                              "--method evolution")
        return "pareto"
    n = sp.num_subnets() * len(req.resolutions or sp.resolutions)
    return "pareto" if acc_has_candidates or n <= ENUMERABLE_MAX else "evolution"


def outside_fit_notes(sp: Any, lat: Sequence[Any], acc: Any, choice: Choice) -> list[str]:
    """Why ``choice.arch`` lies outside the range its device's latency predictor or the accuracy
    predictor was fitted on (``predictors.ranges``); empty when it is inside, or for tables."""
    notes = []
    sources = [("latency", s) for s in lat if s.device == choice.device] + [("accuracy", acc)]
    for what, src in sources:
        why = outside_fit(getattr(getattr(src, "predictor", None), "meta_", None), sp, choice.arch)
        if why:
            notes.append(f"{what} {getattr(src, 'source', 'predictor')}: {why}")
    return notes


def write_pareto_csv(result: SearchResult, path: Path) -> None:
    write_table(result.frontier_rows(), path, columns=PARETO_COLUMNS)


def search(space: str, latency: Mapping[str, str] | Sequence[tuple[str, str]] | str,
           accuracy: str | Path, budgets_ms: Sequence[float] | Mapping[str, Sequence[float]] | float | str,
           out: str | Path, *,
           log: Callable[[str], None] | None = None, **options: Any) -> SearchReport:
    """``lat search`` as one call: ``run_search(SearchRequest(...))`` with plain arguments.

    ``latency``: ``{"cpu": "cpu.json", "pixel4": "lut:luts/pixel4"}``, a list of such pairs, or the
    CLI's ``"cpu=cpu.json,pixel4=lut:DIR"``; ``budgets_ms``: numbers or ``"5,10"`` for every device,
    or ``{"cpu": [3, 5], "pixel4": [20, 30]}``; ``options``: the
    other ``SearchRequest`` fields (``verify``, ``checkpoint``, ``method``, ``resolutions``, ...).
    """
    if isinstance(latency, str):
        pairs = parse_latency_specs(latency)
    elif isinstance(latency, Mapping):
        pairs = [(str(k), str(v)) for k, v in latency.items()]
    else:
        pairs = [(str(k), str(v)) for k, v in latency]
    if isinstance(budgets_ms, Mapping):
        budgets: Any = {str(d): parse_budgets(",".join(str(float(b)) for b in v))
                        for d, v in budgets_ms.items()}
    elif isinstance(budgets_ms, str):
        budgets = parse_budgets(budgets_ms)
    elif isinstance(budgets_ms, (int, float)):
        budgets = parse_budgets(str(budgets_ms))
    else:
        budgets = parse_budgets(",".join(str(float(b)) for b in budgets_ms))
    if options.get("checkpoint") is not None:
        options["checkpoint"] = Path(options["checkpoint"])
    req = SearchRequest(space=space, latency=pairs, accuracy=str(accuracy), budgets_ms=budgets,
                        out=Path(out), **options)
    return run_search(req, log)


def run_search(req: SearchRequest, log: Callable[[str], None] | None = None, *,
               supernet: Any = None, weights_id: str | None = None) -> SearchReport:
    """Search, optionally verify on the devices, ship the choices and write every output.

    ``supernet`` (anything with ``extract(arch)``) and ``weights_id`` replace loading
    ``req.checkpoint``: the demo passes its supernet with per-subnet BatchNorm recalibration.
    """
    sp = get_space(req.space)
    flat = all_budgets(req.budgets_ms)
    if not flat or any(not math.isfinite(b) or b <= 0 for b in flat):
        raise LatkitError(f"budgets must be positive latencies in ms, got {req.budgets_ms}")
    if req.resolutions:
        bad = [r for r in req.resolutions if r not in sp.resolutions]
        if bad:
            raise LatkitError(f"resolutions {bad} are not in {sp.name} {list(sp.resolutions)}")
    live = [d for d, spec in req.latency if spec == "measure"]
    targets = {d: split_target(d, req.precision) for d, _ in req.latency}  # -> (device, precision)
    formats = check_devices([d for d, _ in req.latency],
                            "--verify" if req.verify else f"{live[0]}=measure" if live else None)
    out = Path(req.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot make the output directory {out}: {exc.strerror} (a file of "
                          "that name?); give another --out") from None

    # ---- start-up: checkpoint, sources, devices ----
    if supernet is None and req.checkpoint is not None:
        from latkit.supernet.model import load_supernet  # noqa: PLC0415 -- torch: only with a checkpoint

        supernet, _ = load_supernet(req.checkpoint, sp.name)
        weights_id = sha256_file(req.checkpoint)
    if supernet is not None and weights_id is None:
        raise LatkitError("a supernet given to run_search needs its weights_id")
    acc = accuracy_source(req.accuracy, sp)
    devices: dict[str, Any] = {}
    try:
        if req.verify or any(spec == "measure" for _, spec in req.latency):
            for d, _ in req.latency:
                opts = {"protocol": req.protocol or SINGLE_NETWORK_PROTOCOL,
                        **req.device_options.get(d, {})}
                devices[d] = get_device(targets[d][0], **opts)
        lat = [latency_source(d, spec, sp, cache_dir=out / "cache", device_obj=devices.get(d),
                              supernet=supernet, weights_id=weights_id, precision=targets[d][1])
               for d, spec in req.latency]
        method = _method(req, acc.candidates() is not None)
        if method == "evolution" and any(spec == "measure" for _, spec in req.latency):
            raise LatkitError("live measurement (DEV=measure) needs a finite candidate set: give "
                              "an accuracy table (arch,top1 CSV), or fit a latency predictor (lat fit)")

        # ---- search ----
        if log:
            log(f"searching {getattr(sp, 'label', sp.name)} by {method} for {len(lat)} device(s) x "
                f"{len(flat)} budget(s)")
        if method == "pareto":
            result = pareto_search(sp, lat, acc, req.budgets_ms, resolutions=req.resolutions, log=log,
                                   strict=False)
        else:
            settings = req.evolution
            if req.resolutions:
                settings = replace(settings, resolutions=tuple(req.resolutions))
            result = evolution_search(sp, lat, acc, req.budgets_ms, random.Random(req.seed),
                                      settings, log=log, strict=False)

        # ---- verify and ship ----
        exporter = {d: Exporter(sp.name, out / "cache" / "exports", supernet, weights_id, p)
                    for d, (_, p) in targets.items()}
        t_verify = time.perf_counter()
        if req.verify:
            choices = verify_picks(result, devices, exporter, max_tries=req.max_tries, log=log)
        else:
            choices = [Choice.from_pick(p) for p in result.picks]
        verify_seconds = time.perf_counter() - t_verify if req.verify else None
        if req.export:
            ship(choices, out, exporter, formats)
    finally:
        for d in devices.values():
            close = getattr(d, "close", None)
            if close is not None:
                close()

    # ---- write ----
    rows = [c.to_dict(sp.name) for c in choices]
    for c, row in zip(choices, rows, strict=True):
        notes = outside_fit_notes(sp, lat, acc, c)
        if notes:
            row["outside_fit"] = notes
            if log:
                log(f"{c.device} {c.budget_ms:g} ms: {c.arch} is outside what a predictor was fitted "
                    f"on ({'; '.join(notes)}): its figures are extrapolated, measure it (--verify)")
    scope = "" if acc.candidates() is None else " in the accuracy table"
    infeasible = [{"device": i.device, "budget_ms": i.budget_ms, "feasible": False,
                   "fastest_ms": i.fastest_ms, "fastest_arch": str(i.fastest_arch),
                   "note": i.message(sp.name, scope)} for i in result.infeasible]
    rows += infeasible
    if log:
        for i in infeasible:
            log(i["note"])
    write_pareto_csv(result, out / "pareto.csv")
    write_text(out / "choices.json", json.dumps(rows, indent=1) + "\n")
    plot_frontiers(result, choices, out / "pareto.png",
                   title=f"{sp.name}: most accurate subnet per budget "
                         f"({'verified by measurement' if req.verify else 'predicted'})")
    prov = {
        "format": "latkit-search", "version": 1, "space": sp.name, "method": result.method,
        **record(req.command),  # command, cwd, created, host, versions
        "budgets_ms": result.budgets_by_device or list(req.budgets_ms), "seed": req.seed,
        "family": sp.provenance() if isinstance(sp, FamilySpace) else None,
        "latency_sources": {s.device: s.describe() for s in lat},
        "accuracy_source": acc.describe(),
        "checkpoint": ({"path": str(req.checkpoint), "weights_id": weights_id}
                       if req.checkpoint else None),
        "search_seconds": result.search_seconds, "verify_seconds": verify_seconds,
        "info": result.info, "frontier_sizes": {d: len(f) for d, f in result.frontiers.items()},
    }
    write_text(out / "search.json", json.dumps(prov, indent=1, default=str) + "\n")
    summary = {
        "space": sp.name,
        "method": result.method,
        "search_seconds": round(result.search_seconds, 4),
        "verify_seconds": round(verify_seconds, 2) if verify_seconds is not None else None,
        "candidates": result.info.get("candidates"),
        "frontier_sizes": prov["frontier_sizes"],
        "choices": rows,
        "out": {"dir": str(out), "pareto_csv": str(out / "pareto.csv"),
                "choices_json": str(out / "choices.json"), "pareto_png": str(out / "pareto.png"),
                "search_json": str(out / "search.json"),
                "models": [c.model_path for c in choices if c.model_path]},
        "failed": [c.note for c in choices if c.within_budget is False],
        "infeasible": [i["note"] for i in infeasible],
        "outside_fit": {f"{r['device']} {r['budget_ms']:g} ms": r["outside_fit"]
                        for r in rows if r.get("outside_fit")},
        "precisions": {d: p for d, (_, p) in targets.items()},
        "precision_winners": precision_winners(choices, targets),
    }
    return SearchReport(result, choices, summary)
