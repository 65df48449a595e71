"""A campaign's arguments on disk, so that a campaign resumes from its output alone.

A campaign records what it was asked in a campaign file beside its output: ``DIR/campaign.json``
for a lookup-table campaign (kind ``"layer"``, ``lat profile``), ``FILE.csv.campaign.json`` for an
end-to-end one (kind ``"network"``, ``lat measure``)::

    {"format": "latkit-campaign", "version": 1, "kind": "layer", "command": "lat profile ...",
     "cwd": "/where/it/ran", "created": "2026-12-01T09:30:00+0000",
     "args": {"device": "cpu", "space": "compofa-w1.0", "resolutions": "224", ...},
     "remeasure": false, "measured_after_id": null}

``args`` holds ``LAYER_KEYS`` or ``NETWORK_KEYS`` under the names of the commands' options
(``warmup_time``, ``min_runs``...), None for one not given. ``measured_after_id`` is a remeasure
campaign's mark: rows up to it do not count as done, so a resumed remeasure measures only what the
interrupted run had not.

A ``CampaignSpec`` is that record in memory. ``run_campaign(spec, out)`` measures it (and writes
its campaign file first); ``resume_campaign(out, kind, **given)`` reads the file back, fills in
every argument not given and refuses one that disagrees with it (a device's address may change:
``RESUME_MAY_CHANGE``), then runs it. The CLI only maps its namespace onto these::

    spec = CampaignSpec.new("layer", device="cpu", space="compofa-w1.0", resolutions="224")
    run_campaign(spec, "luts/cpu")                   # killed half-way? then:
    resume_layer_campaign("luts/cpu")                # -> CampaignResult, nothing measured twice
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from latkit.cli_args import protocol_overrides
from latkit.devices.base import DEFAULT_PASSES, ProtocolSettings
from latkit.devices.registry import LOCAL_DEVICES
from latkit.errors import ArchError, LatkitError, StoreError
from latkit.fileio import sha256_file, write_text
from latkit.profiler.campaign import run_layer_campaign
from latkit.profiler.e2e import run_e2e_campaign, sample_archs
from latkit.profiler.jobs import (
    LAYER_PROTOCOL,
    NETWORK_PROTOCOL,
    QUICK_PROTOCOL,
    CampaignResult,
    CampaignSettings,
    DeviceSpec,
    ProgressFn,
    device_specs,
    job_settings,
)
from latkit.profiler.store import MeasurementStore, default_store_path
from latkit.provenance import now_iso
from latkit.supernet.arch_files import read_archs
from latkit.supernet.resolutions import format_resolutions, parse_resolutions
from latkit.supernet.space import get_space

CAMPAIGN_FORMAT = "latkit-campaign"
CAMPAIGN_VERSION = 1
LAYER, NETWORK = "layer", "network"
#: the arguments a campaign file records, per kind; with --resume an explicit one must agree
LAYER_KEYS = ("device", "space", "resolutions", "store", "cache", "limit", "threads", "affinity",
              "delegate", "serial", "warmup_runs", "warmup_time", "min_runs", "min_time",
              "max_time", "quick", "realtime", "dynamic_hw", "seed", "lock_timeout", "passes",
              "precision", "calib_data")
NETWORK_KEYS = ("device", "space", "n", "seed", "archs", "resolutions", "store", "cache",
                "checkpoint", "threads", "affinity", "delegate", "serial", "warmup_runs",
                "warmup_time", "min_runs", "min_time", "max_time", "quick", "realtime", "batch",
                "lock_timeout", "passes", "precision", "calib_data")
KEYS = {LAYER: LAYER_KEYS, NETWORK: NETWORK_KEYS}
#: arguments that say where a device is, not what is measured: a resumed campaign may change them
#: (``passes`` too: a campaign resumed with more passes measures the missing ones)
RESUME_MAY_CHANGE = frozenset({"serial", "lock_timeout", "passes"})
#: what an argument left out means, so that giving that value explicitly agrees with leaving it out
_IMPLIED = {"seed": 0, "batch": 1, "quick": False, "dynamic_hw": True, "precision": "fp32"}
_PATHS = ("store", "cache", "archs", "checkpoint")
#: options whose flag is not ``--`` + the name with dashes
_FLAGS = {"n": "-n", "dynamic_hw": "--no-dynamic-hw"}


def _check_kind(kind: str) -> tuple[str, ...]:
    if kind not in KEYS:
        raise ValueError(f"campaign kind is {' or '.join(map(repr, KEYS))}, not {kind!r}")
    return KEYS[kind]


def campaign_path(out: str | Path, kind: str = LAYER) -> Path:
    """The campaign file of output ``out``: ``DIR/campaign.json`` or ``FILE.csv.campaign.json``."""
    _check_kind(kind)
    out = Path(out)
    return out / "campaign.json" if kind == LAYER else out.with_name(out.name + ".campaign.json")


# ---------------------------------------------------------------------------------------------
# The spec
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CampaignSpec:
    """What a campaign was asked: its kind, its arguments (``KEYS[kind]``), command and remeasure mark."""

    kind: str
    args: Mapping[str, Any] = field(default_factory=dict)
    command: str = ""
    remeasure: bool = False
    measured_after_id: int | None = None

    def __post_init__(self) -> None:
        keys = _check_kind(self.kind)
        unknown = sorted(set(self.args) - set(keys))
        if unknown:
            raise LatkitError(f"{self.kind} campaigns take no argument(s) {', '.join(unknown)}; "
                              f"they take {', '.join(keys)}")
        object.__setattr__(self, "args", {k: self.args.get(k) for k in keys})

    @classmethod
    def new(cls, kind: str, *, command: str = "", remeasure: bool = False,
            **args: Any) -> CampaignSpec:
        """A fresh campaign: ``CampaignSpec.new("layer", device="cpu", space="compofa-w1.0")``."""
        return cls(kind, args, command=command, remeasure=remeasure)

    def __getitem__(self, name: str) -> Any:
        return self.args[name]

    # ---- the file ----
    def to_record(self) -> dict[str, Any]:
        """The campaign file's JSON; ``cwd`` and ``created`` say where and when (for a person)."""
        return {"format": CAMPAIGN_FORMAT, "version": CAMPAIGN_VERSION, "kind": self.kind,
                "command": self.command, "cwd": os.getcwd(), "created": now_iso(),
                "args": dict(self.args), "remeasure": bool(self.remeasure),
                "measured_after_id": self.measured_after_id}

    @classmethod
    def from_record(cls, rec: Any, kind: str, path: str | Path = "the campaign file"
                    ) -> CampaignSpec:
        """The spec of a campaign file's JSON (``StoreError`` for another kind or format)."""
        keys = _check_kind(kind)
        if not isinstance(rec, dict) or rec.get("format") != CAMPAIGN_FORMAT or rec.get("kind") != kind:
            raise StoreError(f"{path} is not a latkit {kind} campaign file; start the campaign afresh")
        saved = dict(rec.get("args") or {})
        cwd = rec.get("cwd")
        for k in _PATHS:  # an older file's relative path meant one from where it ran
            if isinstance(saved.get(k), str) and isinstance(cwd, str) and not os.path.isabs(saved[k]):
                saved[k] = os.path.join(cwd, saved[k])
        return cls(kind, {k: saved.get(k) for k in keys}, command=rec.get("command") or "",
                   remeasure=bool(rec.get("remeasure")), measured_after_id=rec.get("measured_after_id"))

    # ---- resuming ----
    def resumed(self, given: Mapping[str, Any], *, remeasure: bool = False,
                command: str | None = None, path: str | Path = "the campaign file"
                ) -> CampaignSpec:
        """This campaign continued: ``given`` arguments (None = not given) must agree with it.

        An argument that agrees keeps its recorded form (``seed=0`` for a recorded None); one of
        ``RESUME_MAY_CHANGE`` (a device's address) takes the given value.

        A remeasure campaign stays one; ``remeasure=True`` turns a finished campaign into one.
        ``command`` (the resuming command) replaces the recorded one unless None.
        """
        _check_kind(self.kind)
        unknown = sorted(set(given) - set(self.args))
        if unknown:
            raise LatkitError(f"{self.kind} campaigns take no argument(s) {', '.join(unknown)}")
        args = dict(self.args)
        for k, v in given.items():
            if v is None:
                continue
            if k in RESUME_MAY_CHANGE:
                args[k] = v
                continue
            if not _same(k, v, args[k]):
                flag = _FLAGS.get(k, "--" + k.replace("_", "-"))
                raise LatkitError(
                    f"--resume: {k} = {v!r} disagrees with the campaign in {path} ({k} = "
                    f"{args[k]!r}); leave {flag} out to continue that campaign, or leave --resume "
                    "out to start one with the new arguments (what the store has is reused)")
        return dataclasses.replace(self, args=args, remeasure=self.remeasure or remeasure,
                                   command=self.command if command is None else command)

    # ---- what it measures ----
    def normalised(self) -> CampaignSpec:
        """Defaults made explicit as the campaign file records them (``dynamic_hw``, resolutions),
        paths (``store``, ``cache``, ``archs``, ``checkpoint``) made absolute."""
        args = dict(self.args)
        for k in _PATHS:  # recorded absolute: a resume from another directory finds the same files
            if args.get(k):
                args[k] = os.path.abspath(args[k])
        calib = args.get("calib_data")
        if calib and not str(calib).startswith("builtin:"):
            args["calib_data"] = os.path.abspath(calib)
        if isinstance(args.get("resolutions"), (list, tuple)):  # older files and library callers
            args["resolutions"] = format_resolutions(args["resolutions"])
        if self.kind == LAYER and args.get("dynamic_hw") is None:
            args["dynamic_hw"] = True
        return dataclasses.replace(self, args=args)

    def require(self, *names: str) -> None:
        for name in names:
            if not self.args.get(name):
                raise LatkitError(f"--{name} is required (or --resume with an existing --out)")

    def resolutions(self, space: Any = None) -> tuple[int, ...] | None:
        """The parsed ``resolutions`` argument (None: all of the space)."""
        text = self.args.get("resolutions")
        if isinstance(text, (list, tuple)):
            text = format_resolutions(text)
        return parse_resolutions(text, space)

    def protocol(self) -> ProtocolSettings:
        """The measurement protocol: the kind's preset (or ``--quick``'s) with the options given."""
        base = LAYER_PROTOCOL if self.kind == LAYER else NETWORK_PROTOCOL
        if self.args.get("quick"):
            base = QUICK_PROTOCOL
        fields = protocol_overrides(self.args)
        if "min_runs" in fields and fields["min_runs"] > base.max_runs:
            fields["max_runs"] = fields["min_runs"]
        return dataclasses.replace(base, **fields)

    def settings(self, weights_id: str | None = None) -> CampaignSettings:
        """The campaign's settings: the default protocol (``DEFAULT_PASSES`` interleaved passes, the
        reference model, realtime priority and pinning where available) unless ``--quick`` (one
        pass, no reference) or ``--passes`` says otherwise."""
        a = self.args
        quick = bool(a.get("quick"))
        passes = a.get("passes") or (1 if quick else DEFAULT_PASSES)
        common = dict(protocol=self.protocol(), realtime_priority=a["realtime"], passes=passes,
                      reference=not quick, precision=a.get("precision") or "fp32",
                      calib_data=a.get("calib_data"))
        if self.kind == LAYER:
            return CampaignSettings(dynamic_hw=bool(a["dynamic_hw"]), seed=a["seed"] or 0, **common)
        return CampaignSettings(batch=a["batch"] or 1, weights_id=weights_id, **common)

    def device_specs(self, settings: CampaignSettings) -> list[DeviceSpec]:
        """DeviceSpecs from ``device`` and the device options; an unknown device fails here, early."""
        a = self.args
        specs = []
        for d in device_specs(a["device"]):
            opts = {"threads": a["threads"], "affinity": a["affinity"], "delegate": a["delegate"]}
            if d.name not in LOCAL_DEVICES:
                opts["serial"] = a["serial"]
                opts["lock_timeout"] = a.get("lock_timeout")
            spec = DeviceSpec(d.name, {k: v for k, v in opts.items() if v is not None})
            job_settings(spec, settings, self.kind)  # raises DeviceError for an unknown name
            specs.append(spec)
        return specs

    def store_path(self, out: str | Path) -> Path:
        """``store`` if given, else ``store.sqlite`` in the output's directory."""
        if self.args.get("store"):
            return Path(self.args["store"])
        out = Path(out)
        return default_store_path(out) if self.kind == LAYER else out.parent / "store.sqlite"


def _same(name: str, given: Any, saved: Any) -> bool:
    """Whether an explicit argument agrees with the recorded one (None there: its default)."""
    if saved is None:
        saved = _IMPLIED.get(name)
    if given == saved:
        return True
    if saved is None:
        return False
    if name == "resolutions":
        try:
            texts = [format_resolutions(v) if isinstance(v, (list, tuple)) else v for v in (given, saved)]
            return parse_resolutions(texts[0]) == parse_resolutions(texts[1])
        except ArchError:
            return False
    if name in _PATHS:
        return os.path.abspath(given) == os.path.abspath(saved)
    return False


# ---------------------------------------------------------------------------------------------
# The file
# ---------------------------------------------------------------------------------------------


def load_campaign(out: str | Path, kind: str = LAYER) -> CampaignSpec:
    """The spec recorded beside output ``out`` (``StoreError`` if there is none or it is damaged)."""
    path = campaign_path(out, kind)
    if not path.is_file():
        raise StoreError(f"nothing to resume: {path} does not exist (start the campaign without "
                         "--resume first)")
    try:
        rec = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise StoreError(f"{path} is not valid JSON ({exc.msg}); start the campaign afresh") from None
    except UnicodeDecodeError:
        raise StoreError(f"{path} is not text; start the campaign afresh") from None
    return CampaignSpec.from_record(rec, kind, path)


def save_campaign(out: str | Path, spec: CampaignSpec) -> Path:
    """Write ``spec`` as the campaign file of output ``out`` (atomically); returns its path."""
    path = campaign_path(out, spec.kind)
    write_text(path, json.dumps(spec.to_record(), indent=2, sort_keys=True) + "\n")
    return path


# ---------------------------------------------------------------------------------------------
# Running and resuming
# ---------------------------------------------------------------------------------------------


def _start(spec: CampaignSpec, out: Path, store: MeasurementStore) -> CampaignSpec:
    """Take a remeasure campaign's mark (once: a resumed one keeps its own) and record the spec."""
    if spec.remeasure and spec.measured_after_id is None:
        spec = dataclasses.replace(spec, measured_after_id=store.max_id())
    save_campaign(out, spec)
    return spec


def _run_layer(spec: CampaignSpec, out: Path, progress: ProgressFn | None) -> CampaignResult:
    spec.require("device", "space")
    space = get_space(spec["space"])
    rs = spec.resolutions(space)
    settings = spec.settings()
    devices = spec.device_specs(settings)
    store = MeasurementStore(spec.store_path(out))
    try:
        spec = _start(spec, out, store)
        return run_layer_campaign(
            space, rs, devices, store, out, remeasure=spec.remeasure,
            measured_after_id=spec.measured_after_id, progress=progress, settings=settings,
            limit=spec["limit"], cache_dir=spec["cache"], command=spec.command)
    finally:
        store.close()


def _run_network(spec: CampaignSpec, out: Path, progress: ProgressFn | None) -> CampaignResult:
    spec.require("device", "space")
    if (spec["n"] is None) == (spec["archs"] is None):
        raise LatkitError("give either -n N (random subnets, with --seed) or --archs FILE")
    space = get_space(spec["space"])
    if spec["archs"]:
        archs = read_archs(spec["archs"], space)
        if not archs:
            raise LatkitError(f"{spec['archs']} holds no archs")
    else:
        archs = sample_archs(space, spec["n"], spec["seed"] or 0, spec.resolutions(space))
    supernet, weights_id = None, None
    if spec["checkpoint"]:
        from latkit.supernet.model import load_supernet  # noqa: PLC0415 -- torch: only with a checkpoint

        supernet, _ = load_supernet(spec["checkpoint"], space=space.name)
        weights_id = sha256_file(spec["checkpoint"])
    settings = spec.settings(weights_id)
    devices = spec.device_specs(settings)
    store = MeasurementStore(spec.store_path(out))
    try:
        spec = _start(spec, out, store)
        return run_e2e_campaign(
            space, archs, devices, store, out, remeasure=spec.remeasure,
            measured_after_id=spec.measured_after_id, progress=progress, settings=settings,
            supernet=supernet, cache_dir=spec["cache"], command=spec.command)
    finally:
        store.close()


def run_campaign(spec: CampaignSpec, out: str | Path, *,
                 progress: ProgressFn | None = None) -> CampaignResult:
    """Measure ``spec`` into ``out`` (a table directory, or the CSV of a network campaign).

    The campaign file is written first, so a campaign killed at any point resumes with
    ``resume_campaign(out, spec.kind)``.
    """
    spec = spec.normalised()
    _check_same_space(spec, Path(out))
    run = _run_layer if spec.kind == LAYER else _run_network
    return run(spec, Path(out), progress)


def _check_same_space(spec: CampaignSpec, out: Path) -> None:
    """Refuse to replace the output of a campaign of another space (its table would be lost)."""
    path = campaign_path(out, spec.kind)
    if not path.is_file():
        return
    try:
        recorded = load_campaign(out, spec.kind)["space"]
    except StoreError:
        return  # a damaged campaign file is replaced: the store keeps what was measured
    if recorded and spec["space"] and recorded != spec["space"]:
        raise LatkitError(f"{out} holds a campaign of space {recorded} ({path}), not "
                          f"{spec['space']}; give another --out, or --resume to continue that one")


def resume_campaign(out: str | Path, kind: str = LAYER, *, progress: ProgressFn | None = None,
                    remeasure: bool = False, command: str | None = None,
                    **given: Any) -> CampaignResult:
    """Continue the campaign recorded beside ``out``; ``given`` arguments must agree with it.

    ``command`` (what the caller ran) replaces the recorded command unless None.
    """
    path = campaign_path(out, kind)
    spec = load_campaign(out, kind).resumed(given, remeasure=remeasure, command=command, path=path)
    return run_campaign(spec, out, progress=progress)


def resume_layer_campaign(out_dir: str | Path, **kw: Any) -> CampaignResult:
    """``resume_campaign(out_dir, "layer", ...)``: continue a lookup-table campaign."""
    return resume_campaign(out_dir, LAYER, **kw)


def resume_e2e_campaign(out_csv: str | Path, **kw: Any) -> CampaignResult:
    """``resume_campaign(out_csv, "network", ...)``: continue an end-to-end campaign."""
    return resume_campaign(out_csv, NETWORK, **kw)


# ---------------------------------------------------------------------------------------------
# The commands as calls (what ``lat profile`` and ``lat measure`` run; ``latkit.profile``)
# ---------------------------------------------------------------------------------------------


def _campaign(kind: str, out: str | Path, args: dict[str, Any], *, resume: bool, remeasure: bool,
              progress: ProgressFn | None, command: str) -> CampaignResult:
    keys = _check_kind(kind)
    unknown = sorted(set(args) - set(keys))
    if unknown:
        raise LatkitError(f"{'profile' if kind == LAYER else 'measure'}() takes no argument(s) "
                          f"{', '.join(unknown)}; it takes out and {', '.join(keys)}")
    if isinstance(args.get("resolutions"), (list, tuple, range)):
        args["resolutions"] = format_resolutions(list(args["resolutions"]))
    if isinstance(args.get("device"), (list, tuple)):
        args["device"] = ",".join(args["device"])
    for k in _PATHS:
        if args.get(k) is not None:
            args[k] = str(args[k])
    if resume:
        return resume_campaign(out, kind, progress=progress, remeasure=remeasure, command=command,
                               **args)
    spec = CampaignSpec(kind, args, command=command, remeasure=remeasure)
    return run_campaign(spec, out, progress=progress)


def profile(out: str | Path, *, resume: bool = False, remeasure: bool = False,
            progress: ProgressFn | None = None, command: str = "", **args: Any) -> CampaignResult:
    """A lookup-table campaign (``lat profile``): every unique layer of ``space`` measured on
    ``device`` into the table directory ``out``, resumable.

    ``args`` are ``LAYER_KEYS`` named as the command's options (``device="cpu"``,
    ``space="compofa-w1.0"``, ``resolutions=[160, 224]`` or ``"160,224"``, ``store``, ``threads``,
    ``quick``...). ``resume`` continues the campaign recorded in ``out``. The result's ``table()``
    is the lookup table it wrote.
    """
    return _campaign(LAYER, out, dict(args), resume=resume, remeasure=remeasure,
                     progress=progress, command=command)


def measure(out: str | Path, *, resume: bool = False, remeasure: bool = False,
            progress: ProgressFn | None = None, command: str = "", **args: Any) -> CampaignResult:
    """An end-to-end campaign (``lat measure``): whole subnets measured on ``device`` into the CSV
    (or Parquet) file ``out``, resumable.

    ``args`` are ``NETWORK_KEYS`` named as the command's options (``device``, ``space``, ``n`` and
    ``seed`` or ``archs`` (a file), ``resolutions``, ``store``, ``checkpoint``...). The result's
    ``frame()`` is what it wrote, as a DataFrame.
    """
    return _campaign(NETWORK, out, dict(args), resume=resume, remeasure=remeasure,
                     progress=progress, command=command)

