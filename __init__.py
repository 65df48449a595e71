"""latkit: hardware-aware deployment of weight-sharing supernets.

One trained once-for-all / CompOFA MobileNetV3 supernet, many targets: latkit measures layers and
subnets on each target (``devices``, ``profiler``), models what it measured (``predictors``), trains
the supernet (``supernet``) and picks the most accurate subnet under a measured latency budget
(``search``). See README.md for a tour, and its "Python" section for this API in a notebook::

    import latkit
    run = latkit.profile("lut/cpu", device="cpu", space="compofa-w1.0", resolutions=[160])
    e2e = latkit.measure("e2e.csv", device="cpu", space="compofa-w1.0", n=40, resolutions=[160])
    pred = latkit.fit_latency("compofa-w1.0", e2e.frame(), "lut", lut=run.table())
    pred.predict(e2e.frame())                  # archs, a Series of keys, or a frame with "arch"

Every command of the ``lat`` CLI calls one of the functions below and adds only argument parsing
and printing. Tables come and go as pandas DataFrames (``Store(path).frame()``,
``read_measurements(path)``, ``LookupTable.frame()``, ``SearchReport.frame()``); plots are
matplotlib Figures (``predictions_figure``, ``frontier_figure``).

The names are imported on first use (``import latkit`` stays fast and pulls in neither torch nor
pandas).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: public name -> "module:attribute" (imported when first used)
_API: dict[str, str] = {
    # errors
    "LatkitError": "latkit.errors:LatkitError",
    # spaces and archs
    "SearchSpace": "latkit.supernet.space:SearchSpace",
    "ArchConfig": "latkit.supernet.space:ArchConfig",
    "get_space": "latkit.supernet.space:get_space",
    "list_spaces": "latkit.supernet.space:list_spaces",
    "unique_layers": "latkit.supernet.space:unique_layers",
    "read_archs": "latkit.supernet.arch_files:read_archs",
    "parse_resolutions": "latkit.supernet.resolutions:parse_resolutions",
    # devices
    "get_device": "latkit.devices.registry:get_device",
    "list_devices": "latkit.devices.registry:list_devices",
    "describe_device": "latkit.devices.registry:describe_device",
    "ProtocolSettings": "latkit.devices.base:ProtocolSettings",
    "Measurement": "latkit.devices.base:Measurement",
    # the store and campaigns
    "Store": "latkit.profiler.store:MeasurementStore",
    "open_store": "latkit.profiler.store:open_store",
    "merge_stores": "latkit.profiler.store:merge_stores",
    "profile": "latkit.profiler.campaign_file:profile",
    "measure": "latkit.profiler.campaign_file:measure",
    "resume_campaign": "latkit.profiler.campaign_file:resume_campaign",
    "CampaignResult": "latkit.profiler.jobs:CampaignResult",
    "export_arch": "latkit.profiler.export:export_arch",
    # lookup tables
    "LookupTable": "latkit.profiler.lut:LookupTable",
    "load_lut": "latkit.profiler.lut:load_lut",
    "import_ofa_tables": "latkit.profiler.ofa_tables:import_ofa",
    # predictors
    "read_measurements": "latkit.predictors.api:measurements_frame",
    "fit_latency": "latkit.predictors.api:fit_latency",
    "fit_fewshot": "latkit.predictors.api:fit_fewshot",
    "fit_table": "latkit.predictors.api:fit_table",
    "fit_accuracy": "latkit.predictors.accuracy:fit_accuracy",
    "evaluate_predictor": "latkit.predictors.api:evaluate_frame",
    "load_predictor": "latkit.predictors.io:load_predictor",
    "save_predictor": "latkit.predictors.io:save_predictor",
    "regression_metrics": "latkit.predictors.metrics:regression_metrics",
    "predictions_figure": "latkit.predictors.metrics:predictions_figure",
    # training
    "TrainConfig": "latkit.supernet.train:TrainConfig",
    "train": "latkit.supernet.train:train",
    "accuracy_table": "latkit.supernet.accuracy:accuracy_table",
    "read_accuracy": "latkit.supernet.accuracy_csv:accuracy_frame",
    # search
    "search_subnets": "latkit.search.run:search",  # (latkit.search is the subpackage)
    "run_search": "latkit.search.run:run_search",
    "SearchRequest": "latkit.search.run:SearchRequest",
    "SearchReport": "latkit.search.run:SearchReport",
    "frontier_figure": "latkit.search.plot:frontier_figure",
    # tables
    "read_table": "latkit.tables:read_table",
    "write_table": "latkit.tables:write_table",
}

__all__ = [
    "__version__",
    "ArchConfig",
    "CampaignResult",
    "LatkitError",
    "LookupTable",
    "Measurement",
    "ProtocolSettings",
    "SearchReport",
    "SearchRequest",
    "SearchSpace",
    "Store",
    "TrainConfig",
    "accuracy_table",
    "describe_device",
    "evaluate_predictor",
    "export_arch",
    "fit_accuracy",
    "fit_fewshot",
    "fit_latency",
    "fit_table",
    "frontier_figure",
    "get_device",
    "get_space",
    "import_ofa_tables",
    "list_devices",
    "list_spaces",
    "load_lut",
    "load_predictor",
    "measure",
    "merge_stores",
    "open_store",
    "parse_resolutions",
    "predictions_figure",
    "profile",
    "read_accuracy",
    "read_archs",
    "read_measurements",
    "read_table",
    "regression_metrics",
    "resume_campaign",
    "run_search",
    "save_predictor",
    "search_subnets",
    "train",
    "unique_layers",
    "write_table",
]


def __getattr__(name: str) -> Any:
    target = _API.get(name)
    if target is None:
        raise AttributeError(f"module 'latkit' has no attribute {name!r}")
    module, attr = target.split(":")
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value  # the next access is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_API})


if TYPE_CHECKING:  # for editors and type checkers: the same names, imported eagerly
    from latkit.devices.base import Measurement, ProtocolSettings
    from latkit.devices.registry import describe_device, get_device, list_devices
    from latkit.errors import LatkitError
    from latkit.predictors.accuracy import fit_accuracy
    from latkit.predictors.api import evaluate_frame as evaluate_predictor
    from latkit.predictors.api import fit_fewshot, fit_latency, fit_table
    from latkit.predictors.api import measurements_frame as read_measurements
    from latkit.predictors.io import load_predictor, save_predictor
    from latkit.predictors.metrics import predictions_figure, regression_metrics
    from latkit.profiler.campaign_file import measure, profile, resume_campaign
    from latkit.profiler.export import export_arch
    from latkit.profiler.jobs import CampaignResult
    from latkit.profiler.lut import LookupTable, load_lut
    from latkit.profiler.ofa_tables import import_ofa as import_ofa_tables
    from latkit.profiler.store import MeasurementStore as Store
    from latkit.profiler.store import merge_stores, open_store
    from latkit.search.plot import frontier_figure
    from latkit.search.run import SearchReport, SearchRequest, run_search
    from latkit.search.run import search as search_subnets
    from latkit.supernet.accuracy import accuracy_table
    from latkit.supernet.accuracy_csv import accuracy_frame as read_accuracy
    from latkit.supernet.arch_files import read_archs
    from latkit.supernet.resolutions import parse_resolutions
    from latkit.supernet.space import ArchConfig, SearchSpace, get_space, list_spaces, unique_layers
    from latkit.supernet.train import TrainConfig, train
    from latkit.tables import read_table, write_table
