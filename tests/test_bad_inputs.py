"""A table of bad inputs through every ``lat`` subcommand: exit 2, one line, no traceback, nothing lost.

Each case is a command line a user could type by mistake (an impossible number, a malformed or
hostile file, an output that is a device node, FIFO or symlink, a resume that contradicts its
campaign). Every case runs as its own process (``tests/bad_inputs_runner.py`` forks one per case
from a process that imported latkit once, so the table costs seconds, not minutes) and must:

- exit with status 2;
- print exactly one line on stderr, with one ``error:`` (no doubled prefix, no library warning
  before it) and no traceback;
- leave every file that existed before it byte-for-byte unchanged (hashes before and after).

``FRESH`` runs a few cases in fresh interpreters (``python -m latkit``), where an import-time
library warning would show. The bugs of issue 17 each have a case or a test here; ``BUGS`` maps them.
"""

from __future__ import annotations

import csv
import json
import os
import shlex
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from latkit.supernet.space import get_space

REPO = Path(__file__).resolve().parents[1]
RUNNER = Path(__file__).with_name("bad_inputs_runner.py")
SPACE = get_space("compofa-w1.0")
A128 = "r128-k33.55.33.33.555-e33.33.33.33.444"
A224 = "r224-k33.55.33.33.555-e33.33.33.33.444"
OFA_DICT = json.dumps({"ks": [3] * 20, "e": [3] * 20, "d": [2] * 5, "r": 176.5})


# ---------------------------------------------------------------------------------------------
# The workspace: valid inputs, hostile files, and existing outputs that must survive
# ---------------------------------------------------------------------------------------------


def _write_csv(path: Path, header: list[str], rows: list[list]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


def _build(w: Path) -> None:
    import torch

    from latkit.predictors.accuracy import fit_accuracy
    from latkit.predictors.api import fit_latency
    from latkit.predictors.io import save_predictor
    from latkit.profiler.campaign_file import CampaignSpec, save_campaign
    from latkit.profiler.lut import LookupTable, LutEntry
    from latkit.supernet.model import ElasticMobileNetV3

    archs = list(SPACE.enumerate(128))[:60]
    ms = [SPACE.macs(a) / 5e7 + 0.3 for a in archs]
    lat_rows = [[str(a), f"{v:.4f}", SPACE.name, "cpu"] for a, v in zip(archs, ms, strict=True)]
    hdr = ["arch", "latency_ms", "space", "device"]
    _write_csv(w / "m.csv", hdr, lat_rows)
    _write_csv(w / "m_huge.csv", hdr, [*lat_rows[:20], [str(archs[20]), "1e308", SPACE.name, "cpu"]])
    _write_csv(w / "m_zero.csv", hdr, [*lat_rows[:20], [str(archs[20]), "0", SPACE.name, "cpu"]])
    _write_csv(w / "m_neg.csv", hdr, [*lat_rows[:20], [str(archs[20]), "-3", SPACE.name, "cpu"]])
    _write_csv(w / "m_nan.csv", hdr, [*lat_rows[:20], [str(archs[20]), "nan", SPACE.name, "cpu"]])
    _write_csv(w / "m_text.csv", hdr, [*lat_rows[:20], [str(archs[20]), "fast", SPACE.name, "cpu"]])
    _write_csv(w / "m_dup.csv", hdr, [*lat_rows[:20], [lat_rows[3][0], "9.0", SPACE.name, "cpu"]])
    _write_csv(w / "m_other.csv", hdr, [*lat_rows[:20], [lat_rows[21][0], "2.0", "ofa-mbv3-w1.0",
                                                         "cpu"]])
    _write_csv(w / "m_badarch.csv", hdr, [*lat_rows[:20], ["r128-zz", "2.0", SPACE.name, "cpu"]])
    _write_csv(w / "m_noarch.csv", ["latency_ms"], [["1.0"]])
    (w / "m_short.csv").write_text("arch,latency_ms\n" + lat_rows[0][0] + "\n")
    (w / "header_only.csv").write_text("arch,latency_ms,space\n")
    (w / "empty.csv").write_text("")
    (w / "latin1.csv").write_bytes("arch,latency_ms\nr128-\xe9,1.0\n".encode("latin-1"))
    (w / "binary.bin").write_bytes(bytes(range(256)) * 8)

    acc_hdr = ["arch", "top1", "space", "resolution", "checkpoint"]
    acc = [[str(a), f"{(0.0 if i < 3 else 40 + i / 2):.3f}", SPACE.name, 128, "/nowhere/c.pt"]
           for i, a in enumerate(archs[:40])]
    _write_csv(w / "acc.csv", acc_hdr, acc)
    for name, bad in (("acc_150", "150"), ("acc_neg", "-1"), ("acc_nan", "nan"), ("acc_text", "x")):
        _write_csv(w / f"{name}.csv", acc_hdr, [*acc[:20], [acc[20][0], bad, SPACE.name, 128, "c"]])
    _write_csv(w / "acc_dup.csv", acc_hdr, [*acc[:20], [acc[5][0], "12.5", SPACE.name, 128, "c"]])
    _write_csv(w / "acc_other.csv", acc_hdr, [[acc[0][0], "50", "ofa-mbv3-w1.0", 128, "c"]])
    _write_csv(w / "acc_few.csv", acc_hdr, acc[:4])
    (w / "acc_nocol.csv").write_text("arch,accuracy\n" + acc[0][0] + ",50\n")
    (w / "table.csv").write_text("a,b,y\n1,2,3\n2,3,5\n3,4,7\n4,5,9\n")
    (w / "table_text.csv").write_text("a,b,y\n1,2,3\n2,3,fast\n")

    # a lookup table, predictors (latency, accuracy, lut-based) and hostile predictor files
    lut = w / "lut"
    entries = [LutEntry(s.key, s.kind, 0.01 + s.macs / 1e9, 0.01, 0.02, 0.015, 0.001, 0.05, 20)
               for s in SPACE.unique_layers([128])]
    LookupTable.from_entries(entries, {"space": SPACE.name, "device": "cpu",
                                       "resolutions": [128]}).save(lut)
    save_predictor(fit_latency(SPACE.name, w / "m.csv", "ridge"), w / "p.json")
    save_predictor(fit_latency(SPACE.name, w / "m.csv", "lut", lut=lut), w / "p_lut.json")
    save_predictor(fit_accuracy(w / "acc.csv", SPACE.name, model="ridge").predictor, w / "ap.json")
    d = json.loads((w / "p_lut.json").read_text())
    d["state"]["scale"] = -1.0
    (w / "p_negscale.json").write_text(json.dumps(d))
    d = json.loads((w / "p.json").read_text())
    d["meta"]["space"] = "ofa-mbv3-w1.0"
    (w / "p_otherspace.json").write_text(json.dumps(d))
    (w / "p_trunc.json").write_text((w / "p.json").read_text()[:200])
    (w / "p_list.json").write_text("[1, 2, 3]\n")
    import pickle

    (w / "p_pickle.json").write_bytes(pickle.dumps({"kind": "ridge"}))
    (w / "pickle.pt").write_bytes(pickle.dumps({"state_dict": {}}))
    (w / "garbage.onnx").write_text("not a model\n")
    (w / "garbage.pt").write_bytes(b"PK\x03\x04 not a zip")
    (w / "archs_bad.txt").write_text(A128 + "\nr128-k9\n")
    (w / "archs_other.txt").write_text("r224-k777.7777.7777.7777.7777-e666.6666.6666.6666.6666\n")

    # once-for-all YAML: one complete and one truncated (5 of its layers)
    import yaml

    keys = [s.key for s in SPACE.unique_layers([224])]
    full = {k: {"count": 10, "mean": 0.5, "std": 0.01} for k in keys}
    (w / "ofa_full").mkdir()
    (w / "ofa_full" / "224_lookup_table.yaml").write_text(yaml.safe_dump(full))
    (w / "ofa_trunc").mkdir()
    (w / "ofa_trunc" / "224_lookup_table.yaml").write_text(yaml.safe_dump(dict(list(full.items())[:5])))
    (w / "ofa_nan").mkdir()
    (w / "ofa_nan" / "224_lookup_table.yaml").write_text(
        yaml.safe_dump({**full, keys[0]: {"count": 1, "mean": float("nan"), "std": 0.0}}))
    (w / "ofa_latin1").mkdir()
    (w / "ofa_latin1" / "224_lookup_table.yaml").write_bytes("k\xe9: 1\n".encode("latin-1"))
    (w / "ofa_res").mkdir()
    (w / "ofa_res" / "96_lookup_table.yaml").write_text(yaml.safe_dump(full))
    (w / "ofa_empty").mkdir()

    # a (random-weight) checkpoint with a small image folder as its data set
    from PIL import Image

    rng = np.random.default_rng(0)
    for c in ("a", "b"):
        (w / "ro" / "ds" / c).mkdir(parents=True)
        for i in range(4):
            Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(
                w / "ro" / "ds" / c / f"{i}.png")
    torch.manual_seed(0)
    m = ElasticMobileNetV3(SPACE, n_classes=2, kernel_transform=False)
    torch.save(m.checkpoint_dict(kernel_transform=False, config={
        "data": str(w / "ro" / "ds"), "resolutions": [128]}), w / "ro" / "c.pt")
    ck = torch.load(w / "ro" / "c.pt", weights_only=True)  # a diverged run's weights
    name = next(k for k, v in ck["model"].items() if v.is_floating_point())
    ck["model"][name] = torch.full_like(ck["model"][name], float("nan"))
    torch.save(ck, w / "ro" / "nan.pt")

    # outputs that exist already: a table of another checkpoint, a campaign of another space
    _write_csv(w / "acc_other_ckpt.csv", acc_hdr,
               [[r[0], r[1], r[2], r[3], "/elsewhere/other.pt"] for r in acc[:19]])
    (w / "camp").mkdir()
    save_campaign(w / "camp", CampaignSpec.new("layer", device="cpu", space="ofa-mbv3-w1.0",
                                               resolutions="160"))
    (w / "camp" / "lut.csv").write_text("key,kind\n")  # stands for the campaign's table
    save_campaign_net = w / "net.csv"
    save_campaign_net.write_text("arch,latency_ms\n")
    save_campaign(save_campaign_net, CampaignSpec.new("network", device="cpu", space=SPACE.name,
                                                      n=3))
    (w / "existing.json").write_text('{"keep": true}\n')
    (w / "store_garbage.sqlite").write_text("this is not sqlite\n")
    (w / "adir.json").mkdir()
    (w / "adir.onnx").mkdir()
    (w / "afile").write_text("a file, not a directory\n")
    os.mkfifo(w / "fifo.json")
    os.mkfifo(w / "fifo.csv")
    os.mkfifo(w / "fifo.onnx")
    os.mkfifo(w / "fifo.sqlite")
    (w / "link.json").symlink_to(w / "existing.json")
    (w / "link.onnx").symlink_to(w / "existing.json")
    (w / "link.csv").symlink_to(w / "acc.csv")


# ---------------------------------------------------------------------------------------------
# The table: (id, command line after `lat`); {W} is the workspace. Grouped by subcommand.
# ---------------------------------------------------------------------------------------------

NUMBERS = [
    # lat bench: threads, protocol times and counts, batch
    ("bench-threads-10000", "bench {W}/garbage.onnx --threads 10000"),
    ("bench-threads-0", "bench {W}/garbage.onnx --threads 0"),
    ("bench-threads-neg", "bench {W}/garbage.onnx --threads -2"),
    ("bench-threads-frac", "bench {W}/garbage.onnx --threads 1.5"),
    ("bench-threads-text", "bench {W}/garbage.onnx --threads many"),
    ("bench-min-time-nan", "bench {W}/garbage.onnx --min-time nan"),
    ("bench-min-time-inf", "bench {W}/garbage.onnx --min-time inf"),
    ("bench-min-time-neg", "bench {W}/garbage.onnx --min-time -1"),
    ("bench-min-time-zero", "bench {W}/garbage.onnx --min-time 0"),
    ("bench-min-runs-0", "bench {W}/garbage.onnx --min-runs 0"),
    ("bench-min-runs-frac", "bench {W}/garbage.onnx --min-runs 2.5"),
    ("bench-warmup-neg", "bench {W}/garbage.onnx --warmup-runs -1"),
    ("bench-batch-0", "bench {W}/garbage.onnx --batch 0"),
    ("bench-batch-frac", "bench {W}/garbage.onnx --batch 1.5"),
    ("bench-lock-timeout-nan", "bench {W}/garbage.onnx --lock-timeout nan"),
    ("bench-delegate", "bench {W}/garbage.onnx --delegate tpu"),
    ("bench-graph-opt", "bench {W}/garbage.onnx --graph-opt-level max"),
    # lat profile / measure: the same options on campaigns
    ("profile-threads-10000", "profile --device cpu --space compofa-w1.0 --out {W}/o1 --threads 10000"),
    ("profile-max-time-neg", "profile --device cpu --space compofa-w1.0 --out {W}/o1 --max-time -1"),
    ("profile-warmup-time-inf", "profile --device cpu --space compofa-w1.0 --out {W}/o1 --warmup-time inf"),
    ("profile-min-time-nan", "profile --device cpu --space compofa-w1.0 --out {W}/o1 --min-time nan"),
    ("profile-limit-0", "profile --device cpu --space compofa-w1.0 --out {W}/o1 --limit 0"),
    ("profile-realtime-0", "profile --device cpu --space compofa-w1.0 --out {W}/o1 --realtime 0"),
    ("profile-realtime-100", "profile --device cpu --space compofa-w1.0 --out {W}/o1 --realtime 100"),
    ("profile-seed-neg", "profile --device cpu --space compofa-w1.0 --out {W}/o1 --seed -1"),
    ("profile-seed-huge", "profile --device cpu --space compofa-w1.0 --out {W}/o1 --seed 99999999999"),
    ("profile-lock-timeout-0", "profile --device cpu --space compofa-w1.0 --out {W}/o1 --lock-timeout 0"),
    ("measure-n-0", "measure --device cpu --space compofa-w1.0 -n 0 --out {W}/o2.csv"),
    ("measure-n-neg", "measure --device cpu --space compofa-w1.0 -n -3 --out {W}/o2.csv"),
    ("measure-n-frac", "measure --device cpu --space compofa-w1.0 -n 2.5 --out {W}/o2.csv"),
    ("measure-batch-0", "measure --device cpu --space compofa-w1.0 -n 2 --batch 0 --out {W}/o2.csv"),
    ("measure-seed-nan", "measure --device cpu --space compofa-w1.0 -n 2 --seed nan --out {W}/o2.csv"),
    ("measure-min-runs-0", "measure --device cpu --space compofa-w1.0 -n 2 --min-runs 0 --out {W}/o2.csv"),
    # lat space
    ("space-sample-n-0", "space sample --space compofa-w1.0 -n 0"),
    ("space-sample-n-text", "space sample --space compofa-w1.0 -n ten"),
    ("space-sample-seed-neg", "space sample --space compofa-w1.0 --seed -5"),
    ("space-enumerate-res-0", "space enumerate --space compofa-w1.0 --resolution 0"),
    ("space-enumerate-res-frac", "space enumerate --space compofa-w1.0 --resolution 176.5"),
    # lat fit / predict
    ("fit-train-n-0", "fit --space compofa-w1.0 --measurements {W}/m.csv --train-n 0 -o {W}/o3.json"),
    ("fit-train-n-1", "fit --space compofa-w1.0 --measurements {W}/m.csv --train-n 1 -o {W}/o3.json"),
    ("fit-test-fraction-0", "fit --target top1 --measurements {W}/acc.csv --test-fraction 0 -o {W}/o3.json"),
    ("fit-test-fraction-1", "fit --target top1 --measurements {W}/acc.csv --test-fraction 1 -o {W}/o3.json"),
    ("fit-test-fraction-nan", "fit --target top1 --measurements {W}/acc.csv --test-fraction nan -o {W}/o3.json"),
    ("fit-seed-text", "fit --space compofa-w1.0 --measurements {W}/m.csv --seed x -o {W}/o3.json"),
    ("fit-model-unknown", "fit --space compofa-w1.0 --measurements {W}/m.csv --model gpt -o {W}/o3.json"),
    # lat train
    ("train-epochs-0", "train --epochs-scale 0 --out {W}/o4"),
    ("train-epochs-nan", "train --epochs-scale nan --out {W}/o4"),
    ("train-batch-0", "train --batch-size 0 --out {W}/o4"),
    ("train-lr-inf", "train --lr-scale inf --out {W}/o4"),
    ("train-lr-0", "train --lr-scale 0 --out {W}/o4"),
    ("train-dropout-1.5", "train --dropout 1.5 --out {W}/o4"),
    ("train-smoothing-neg", "train --label-smoothing -0.1 --out {W}/o4"),
    ("train-kd-temp-0", "train --kd-temperature 0 --out {W}/o4"),
    ("train-wd-neg", "train --weight-decay -1 --out {W}/o4"),
    ("train-threads-10000", "train --threads 10000 --out {W}/o4"),
    ("train-max-steps-0", "train --max-steps 0 --out {W}/o4"),
    ("train-ckpt-minutes-0", "train --checkpoint-minutes 0 --out {W}/o4"),
    ("train-ckpt-every-neg", "train --checkpoint-every -1 --out {W}/o4"),
    ("train-max-images-0", "train --max-train-images 0 --out {W}/o4"),
    ("eval-n-0", "train eval --checkpoint {W}/ro/c.pt -n 0 --out {W}/o5.csv"),
    ("eval-calib-0", "train eval --checkpoint {W}/ro/c.pt --calib-images 0 --out {W}/o5.csv"),
    ("eval-images-neg", "train eval --checkpoint {W}/ro/c.pt --eval-images -1 --out {W}/o5.csv"),
    ("eval-batch-0", "train eval --checkpoint {W}/ro/c.pt --batch-size 0 --out {W}/o5.csv"),
    ("eval-workers-10000", "train eval --checkpoint {W}/ro/c.pt --workers 10000 --out {W}/o5.csv"),
    ("fit-accuracy-fraction-2", "train fit-accuracy --space compofa-w1.0 --accuracy {W}/acc.csv "
     "--test-fraction 2 -o {W}/o6.json"),
    # lat search
    ("search-budget-nan", "search --space compofa-w1.0 --latency cpu={W}/p.json --accuracy {W}/acc.csv "
     "--budget-ms nan --out {W}/s1"),
    ("search-budget-inf", "search --space compofa-w1.0 --latency cpu={W}/p.json --accuracy {W}/acc.csv "
     "--budget-ms inf --out {W}/s1"),
    ("search-budget-neg", "search --space compofa-w1.0 --latency cpu={W}/p.json --accuracy {W}/acc.csv "
     "--budget-ms -2 --out {W}/s1"),
    ("search-budget-0", "search --space compofa-w1.0 --latency cpu={W}/p.json --accuracy {W}/acc.csv "
     "--budget-ms 0 --out {W}/s1"),
    ("search-budget-text", "search --space compofa-w1.0 --latency cpu={W}/p.json --accuracy {W}/acc.csv "
     "--budget-ms fast --out {W}/s1"),
    ("search-budget-empty", "search --space compofa-w1.0 --latency cpu={W}/p.json --accuracy {W}/acc.csv "
     "--budget-ms , --out {W}/s1"),
    ("search-population-1", "search --space compofa-w1.0 --latency cpu={W}/p.json --accuracy {W}/acc.csv "
     "--budget-ms 3 --population 1 --out {W}/s1"),
    ("search-generations-0", "search --space compofa-w1.0 --latency cpu={W}/p.json --accuracy {W}/acc.csv "
     "--budget-ms 3 --generations 0 --out {W}/s1"),
    ("search-max-tries-0", "search --space compofa-w1.0 --latency cpu={W}/p.json --accuracy {W}/acc.csv "
     "--budget-ms 3 --max-tries 0 --out {W}/s1"),
    # lat demo, lat device, lat lut
    ("demo-epochs-0", "demo --epochs-scale 0 --out {W}/d1"),
    ("demo-n-e2e-1", "demo --n-e2e 1 --out {W}/d1"),
    ("demo-steps-0", "demo --max-train-steps 0 --out {W}/d1"),
    ("emulate-port-70000", "device emulate --port 70000"),
    ("emulate-port-neg", "device emulate --port -1"),
    ("device-add-auth-nan", "device add phone --serial 127.0.0.1:1 --auth-timeout nan"),
    ("lut-show-top-neg", "lut show {W}/lut --top -1"),
]

ARCHS = [
    ("describe-malformed", "space describe --space compofa-w1.0 --arch r128-k3"),
    ("describe-fractional-r", "space describe --space compofa-w1.0 --arch '" + OFA_DICT + "'"),
    ("describe-r-huge", "space describe --space compofa-w1.0 --arch '"
     + OFA_DICT.replace("176.5", "1e400") + "'"),
    ("describe-r-bool", "space describe --space compofa-w1.0 --arch '"
     + OFA_DICT.replace("176.5", "true") + "'"),
    ("describe-d-out", "space describe --space compofa-w1.0 --arch '"
     + OFA_DICT.replace('"d": [2, 2, 2, 2, 2]', '"d": [2, 2, 9, 2, 2]').replace("176.5", "128") + "'"),
    ("describe-json-list", "space describe --space compofa-w1.0 --arch '[1, 2]'"),
    ("describe-json-bad", "space describe --space compofa-w1.0 --arch '{\"ks\": '"),
    ("describe-not-in-space", "space describe --space compofa-w1.0 "
     "--arch r224-k777.7777.7777.7777.7777-e666.6666.6666.6666.6666"),
    ("describe-r-off-grid", "space describe --space compofa-w1.0 --arch r130-k33.55.33.33.555-e33.33.33.33.444"),
    ("describe-space-unknown", "space describe --space mbv9 --arch " + A128),
    ("describe-archs-missing", "space describe --space compofa-w1.0 --archs {W}/nope.txt"),
    ("describe-archs-latin1", "space describe --space compofa-w1.0 --archs {W}/latin1.csv"),
    ("describe-archs-binary", "space describe --space compofa-w1.0 --archs {W}/binary.bin"),
    ("describe-archs-bad-line", "space describe --space compofa-w1.0 --archs {W}/archs_bad.txt"),
    ("sample-resolutions-96", "space sample --space compofa-w1.0 --resolutions 96"),
    ("sample-resolutions-range", "space sample --space compofa-w1.0 --resolutions 128-abc"),
    ("sample-resolutions-empty", "space sample --space compofa-w1.0 --resolutions ,"),
    ("sample-resolutions-neg", "space sample --space compofa-w1.0 --resolutions=-128"),
    ("enumerate-ofa-too-big", "space enumerate --space ofa-mbv3-w1.0"),
]

EXPORT_BENCH_DEVICE = [
    ("export-format-mismatch", "export --space compofa-w1.0 --arch " + A128 + " --format tflite -o {W}/x.onnx"),
    ("export-no-format", "export --space compofa-w1.0 --arch " + A128 + " -o {W}/x.bin"),
    ("export-dev-full", "export --space compofa-w1.0 --arch " + A128 + " --format onnx -o /dev/full"),
    ("export-fifo", "export --space compofa-w1.0 --arch " + A128 + " -o {W}/fifo.onnx"),
    ("export-symlink", "export --space compofa-w1.0 --arch " + A128 + " -o {W}/link.onnx"),
    ("export-directory", "export --space compofa-w1.0 --arch " + A128 + " -o {W}/adir.onnx"),
    ("export-bad-arch", "export --space compofa-w1.0 --arch r128 -o {W}/x.onnx"),
    ("export-arch-other-space", "export --space compofa-w1.0 --arch "
     "r224-k777.7777.7777.7777.7777-e666.6666.6666.6666.6666 -o {W}/x.onnx"),
    ("export-ckpt-missing", "export --space compofa-w1.0 --arch " + A128 + " --checkpoint {W}/no.pt -o {W}/x.onnx"),
    ("export-ckpt-garbage", "export --space compofa-w1.0 --arch " + A128 + " --checkpoint {W}/garbage.pt -o {W}/x.onnx"),
    ("export-ckpt-pickle", "export --space compofa-w1.0 --arch " + A128 + " --checkpoint {W}/pickle.pt -o {W}/x.onnx"),
    ("export-batch-0", "export --space compofa-w1.0 --arch " + A128 + " --batch 0 -o {W}/x.onnx"),
    ("bench-missing", "bench {W}/nope.onnx"),
    ("bench-directory", "bench {W}/adir.onnx"),
    ("bench-garbage", "bench {W}/garbage.onnx --quick" if False else "bench {W}/garbage.onnx"),
    ("bench-unknown-device", "bench {W}/garbage.onnx --device quantum"),
    ("bench-affinity-bad", "bench {W}/garbage.onnx --affinity zz"),
    ("device-show-unknown", "device show nosuch"),
    ("device-no-subcommand", "device frobnicate"),
]

CAMPAIGNS = [
    ("profile-no-device", "profile --space compofa-w1.0 --out {W}/o7"),
    ("profile-unknown-device", "profile --device quantum --space compofa-w1.0 --out {W}/o7"),
    ("profile-unknown-space", "profile --device cpu --space mbv9 --out {W}/o7"),
    ("profile-resolutions-96", "profile --device cpu --space compofa-w1.0 --resolutions 96 --out {W}/o7"),
    ("profile-out-is-file", "profile --device cpu --space compofa-w1.0 --resolutions 128 --out {W}/afile"),
    ("profile-store-dir", "profile --device cpu --space compofa-w1.0 --store {W}/adir.json --out {W}/o7"),
    ("profile-store-fifo", "profile --device cpu --space compofa-w1.0 --store {W}/fifo.sqlite --out {W}/o7"),
    ("profile-store-garbage", "profile --device cpu --space compofa-w1.0 --resolutions 128 "
     "--store {W}/store_garbage.sqlite --out {W}/o7"),
    ("profile-resume-nothing", "profile --resume --out {W}/o8"),
    ("profile-resume-other-space", "profile --resume --space compofa-w1.0 --out {W}/camp"),
    ("profile-fresh-over-other-space", "profile --device cpu --space compofa-w1.0 --resolutions 128 "
     "--out {W}/camp"),
    ("profile-resume-other-resolutions", "profile --resume --resolutions 224 --out {W}/camp"),
    ("measure-neither-n-nor-archs", "measure --device cpu --space compofa-w1.0 --out {W}/o9.csv"),
    ("measure-both-n-and-archs", "measure --device cpu --space compofa-w1.0 -n 2 --archs {W}/archs_bad.txt "
     "--out {W}/o9.csv"),
    ("measure-archs-missing", "measure --device cpu --space compofa-w1.0 --archs {W}/nope.txt --out {W}/o9.csv"),
    ("measure-archs-bad-line", "measure --device cpu --space compofa-w1.0 --archs {W}/archs_bad.txt "
     "--out {W}/o9.csv"),
    ("measure-archs-latin1", "measure --device cpu --space compofa-w1.0 --archs {W}/latin1.csv --out {W}/o9.csv"),
    ("measure-archs-other-space", "measure --device cpu --space compofa-w1.0 --archs {W}/archs_other.txt "
     "--out {W}/o9.csv"),
    ("measure-ckpt-garbage", "measure --device cpu --space compofa-w1.0 -n 2 --checkpoint {W}/garbage.pt "
     "--out {W}/o9.csv"),
    ("measure-out-fifo", "measure --device cpu --space compofa-w1.0 -n 2 --out {W}/fifo.csv"),
    ("measure-out-symlink", "measure --device cpu --space compofa-w1.0 -n 2 --out {W}/link.csv"),
    ("measure-resume-other-space", "measure --resume --space ofa-mbv3-w1.0 --out {W}/net.csv"),
    ("measure-resume-other-n", "measure --resume -n 5 --out {W}/net.csv"),
    ("measure-fresh-over-other-space", "measure --device cpu --space ofa-mbv3-w1.0 -n 2 --out {W}/net.csv"),
    ("lut-show-missing", "lut show {W}/nope"),
    ("lut-show-not-a-table", "lut show {W}/ofa_empty"),
    ("lut-show-file", "lut show {W}/afile"),
    ("import-ofa-missing", "lut import-ofa {W}/nope --space compofa-w1.0 --out {W}/o10"),
    ("import-ofa-empty", "lut import-ofa {W}/ofa_empty --space compofa-w1.0 --out {W}/o10"),
    ("import-ofa-truncated", "lut import-ofa {W}/ofa_trunc --space compofa-w1.0 --out {W}/o10"),
    ("import-ofa-nan", "lut import-ofa {W}/ofa_nan --space compofa-w1.0 --out {W}/o10"),
    ("import-ofa-latin1", "lut import-ofa {W}/ofa_latin1 --space compofa-w1.0 --out {W}/o10"),
    ("import-ofa-resolution", "lut import-ofa {W}/ofa_res --space compofa-w1.0 --out {W}/o10"),
    ("import-ofa-out-is-file", "lut import-ofa {W}/ofa_full --space compofa-w1.0 --out {W}/afile"),
    ("import-ofa-out-under-file", "lut import-ofa {W}/ofa_full --space compofa-w1.0 --out {W}/afile/t"),
    ("import-ofa-no-space", "lut import-ofa {W}/ofa_trunc --out {W}/o10"),
    ("export-ofa-missing", "lut export-ofa {W}/nope --out {W}/o11"),
    ("export-ofa-statistic", "lut export-ofa {W}/lut --out {W}/o11 --statistic max"),
    ("export-ofa-resolutions", "lut export-ofa {W}/lut --out {W}/o11 --resolutions 96"),
    ("export-ofa-out-file", "lut export-ofa {W}/lut --out {W}/afile"),
    ("store-merge-missing", "store merge {W}/nope.sqlite -o {W}/o12.sqlite"),
    ("store-merge-garbage", "store merge {W}/store_garbage.sqlite -o {W}/o12.sqlite"),
    ("store-merge-into-source", "store merge {W}/store_garbage.sqlite -o {W}/store_garbage.sqlite"),
    ("store-merge-out-fifo", "store merge {W}/store_garbage.sqlite -o {W}/fifo.sqlite"),
    ("store-merge-out-dir", "store merge {W}/store_garbage.sqlite -o {W}/adir.json"),
]

PREDICTORS = [
    ("fit-missing", "fit --space compofa-w1.0 --measurements {W}/nope.csv -o {W}/o13.json"),
    ("fit-latin1", "fit --space compofa-w1.0 --measurements {W}/latin1.csv -o {W}/o13.json"),
    ("fit-binary", "fit --space compofa-w1.0 --measurements {W}/binary.bin -o {W}/o13.json"),
    ("fit-empty", "fit --space compofa-w1.0 --measurements {W}/empty.csv -o {W}/o13.json"),
    ("fit-header-only", "fit --space compofa-w1.0 --measurements {W}/header_only.csv -o {W}/o13.json"),
    ("fit-no-arch-column", "fit --space compofa-w1.0 --measurements {W}/m_noarch.csv -o {W}/o13.json"),
    ("fit-short-row", "fit --space compofa-w1.0 --measurements {W}/m_short.csv -o {W}/o13.json"),
    ("fit-1e308", "fit --space compofa-w1.0 --measurements {W}/m_huge.csv -o {W}/o13.json"),
    ("fit-zero-ms", "fit --space compofa-w1.0 --measurements {W}/m_zero.csv -o {W}/o13.json"),
    ("fit-negative-ms", "fit --space compofa-w1.0 --measurements {W}/m_neg.csv -o {W}/o13.json"),
    ("fit-nan-ms", "fit --space compofa-w1.0 --measurements {W}/m_nan.csv -o {W}/o13.json"),
    ("fit-text-ms", "fit --space compofa-w1.0 --measurements {W}/m_text.csv -o {W}/o13.json"),
    ("fit-conflicting-duplicate", "fit --space compofa-w1.0 --measurements {W}/m_dup.csv -o {W}/o13.json"),
    ("fit-other-space-rows", "fit --space compofa-w1.0 --measurements {W}/m_other.csv -o {W}/o13.json"),
    ("fit-bad-arch-row", "fit --space compofa-w1.0 --measurements {W}/m_badarch.csv -o {W}/o13.json"),
    ("fit-lut-without-table", "fit --space compofa-w1.0 --measurements {W}/m.csv --model lut -o {W}/o13.json"),
    ("fit-lut-missing", "fit --space compofa-w1.0 --measurements {W}/m.csv --model lut --lut {W}/nope "
     "-o {W}/o13.json"),
    ("fit-no-output", "fit --space compofa-w1.0 --measurements {W}/m.csv"),
    ("fit-out-dev-full", "fit --space compofa-w1.0 --measurements {W}/m.csv --model ridge -o /dev/full"),
    ("fit-out-fifo", "fit --space compofa-w1.0 --measurements {W}/m.csv --model ridge -o {W}/fifo.json"),
    ("fit-out-symlink", "fit --space compofa-w1.0 --measurements {W}/m.csv --model ridge -o {W}/link.json"),
    ("fit-out-dir", "fit --space compofa-w1.0 --measurements {W}/m.csv --model ridge -o {W}/adir.json"),
    ("fit-out-under-file", "fit --space compofa-w1.0 --measurements {W}/m.csv --model ridge "
     "-o {W}/afile/p.json"),
    ("fit-top1-150", "fit --target top1 --measurements {W}/acc_150.csv -o {W}/o13.json"),
    ("fit-top1-negative", "fit --target top1 --measurements {W}/acc_neg.csv -o {W}/o13.json"),
    ("fit-top1-nan", "fit --target top1 --measurements {W}/acc_nan.csv -o {W}/o13.json"),
    ("fit-top1-text", "fit --target top1 --measurements {W}/acc_text.csv -o {W}/o13.json"),
    ("fit-top1-duplicate", "fit --target top1 --measurements {W}/acc_dup.csv -o {W}/o13.json"),
    ("fit-top1-too-few", "fit --target top1 --measurements {W}/acc_few.csv -o {W}/o13.json"),
    ("fit-top1-no-column", "fit --target top1 --measurements {W}/acc_nocol.csv --space compofa-w1.0 "
     "-o {W}/o13.json"),
    ("fit-top1-other-space", "fit --target top1 --measurements {W}/acc_other.csv --space compofa-w1.0 "
     "-o {W}/o13.json"),
    ("fit-top1-latin1", "fit --target top1 --measurements {W}/latin1.csv --space compofa-w1.0 -o {W}/o13.json"),
    ("fit-top1-model-lut", "fit --target top1 --measurements {W}/acc.csv --model lut -o {W}/o13.json"),
    ("fit-target-unknown", "fit --target top5 --measurements {W}/acc.csv -o {W}/o13.json"),
    ("fit-table-missing", "fit --table {W}/nope.csv --target y -o {W}/o13.json"),
    ("fit-table-text", "fit --table {W}/table_text.csv --target y -o {W}/o13.json"),
    ("fit-table-no-target", "fit --table {W}/table.csv --target z -o {W}/o13.json"),
    ("fit-base-missing", "fit --space compofa-w1.0 --measurements {W}/m.csv --base {W}/nope.json "
     "-o {W}/o13.json"),
    ("fit-base-truncated", "fit --space compofa-w1.0 --measurements {W}/m.csv --base {W}/p_trunc.json "
     "-o {W}/o13.json"),
    ("evaluate-no-predictor", "fit evaluate --measurements {W}/m.csv"),
    ("evaluate-pickle", "fit evaluate --predictor {W}/p_pickle.json --measurements {W}/m.csv"),
    ("evaluate-other-space-rows", "fit evaluate --predictor {W}/p.json --measurements {W}/m_other.csv"),
    ("evaluate-plot-fifo", "fit evaluate --predictor {W}/p.json --measurements {W}/m.csv --plot {W}/fifo.json"),
    ("evaluate-negscale", "fit evaluate --predictor {W}/p_negscale.json --measurements {W}/m.csv"),
    ("predict-missing", "predict --predictor {W}/nope.json --arch " + A128),
    ("predict-truncated", "predict --predictor {W}/p_trunc.json --arch " + A128),
    ("predict-list-json", "predict --predictor {W}/p_list.json --arch " + A128),
    ("predict-pickle", "predict --predictor {W}/p_pickle.json --arch " + A128),
    ("predict-latin1", "predict --predictor {W}/latin1.csv --arch " + A128),
    ("predict-negative-scale", "predict --predictor {W}/p_negscale.json --arch " + A128),
    ("predict-bad-arch", "predict --predictor {W}/p.json --arch r128-k"),
    ("predict-fractional-r", "predict --predictor {W}/p.json --arch '" + OFA_DICT + "'"),
    ("predict-arch-not-in-space", "predict --predictor {W}/p.json --arch "
     "r224-k777.7777.7777.7777.7777-e666.6666.6666.6666.6666"),
    ("predict-archs-missing", "predict --predictor {W}/p.json --archs {W}/nope.txt"),
    ("predict-table-for-arch-predictor", "predict --predictor {W}/p.json --table {W}/table.csv"),
    ("predict-no-input", "predict --predictor {W}/p.json"),
]

TRAIN = [
    ("train-no-out", "train --epochs-scale 0.01"),
    ("train-data-missing", "train --data {W}/nope --out {W}/o14"),
    ("train-data-builtin-unknown", "train --data builtin:cats --out {W}/o14"),
    ("train-resolutions-96", "train --resolutions 96 --out {W}/o14"),
    ("train-schedule-mismatch", "train --space compofa-w1.0 --schedule ofa --out {W}/o14"),
    ("train-from-full-missing", "train --from-full {W}/nope.pt --out {W}/o14"),
    ("train-out-is-file", "train --out {W}/afile --max-train-images 8 --batch-size 2 --max-steps 1"),
    ("eval-ckpt-missing", "train eval --checkpoint {W}/nope.pt --out {W}/o16.csv"),
    ("eval-ckpt-garbage", "train eval --checkpoint {W}/garbage.pt --out {W}/o16.csv"),
    ("eval-ckpt-pickle", "train eval --checkpoint {W}/pickle.pt --out {W}/o16.csv"),
    ("eval-ckpt-text", "train eval --checkpoint {W}/acc.csv --out {W}/o16.csv"),
    ("eval-out-fifo", "train eval --checkpoint {W}/ro/c.pt --out {W}/fifo.csv"),
    ("eval-out-symlink", "train eval --checkpoint {W}/ro/c.pt --out {W}/link.csv"),
    ("eval-out-dev-full", "train eval --checkpoint {W}/ro/c.pt --out /dev/full"),
    ("eval-other-checkpoints-table", "train eval --checkpoint {W}/ro/c.pt --out {W}/acc_other_ckpt.csv "
     "--calib-images 2 --eval-images 2"),
    ("eval-nan-weights", "train eval --checkpoint {W}/ro/nan.pt --out {W}/o16.csv"),
    ("eval-out-under-file", "train eval --checkpoint {W}/ro/c.pt --out {W}/afile/acc.csv"),
    ("export-under-file", "export --space compofa-w1.0 --arch " + A128 + " -o {W}/afile/m.onnx"),
    ("eval-n-and-archs", "train eval --checkpoint {W}/ro/c.pt -n 2 --archs {W}/archs_bad.txt --out {W}/o16.csv"),
    ("eval-resolutions-96", "train eval --checkpoint {W}/ro/c.pt --resolutions 96 --out {W}/o16.csv"),
    ("eval-archs-bad-line", "train eval --checkpoint {W}/ro/c.pt --archs {W}/archs_bad.txt --out {W}/o16.csv"),
    ("eval-space-unknown", "train eval --checkpoint {W}/ro/c.pt --space mbv9 --out {W}/o16.csv"),
    ("eval-data-missing", "train eval --checkpoint {W}/ro/c.pt --data {W}/nope --out {W}/o16.csv"),
    ("fit-accuracy-150", "train fit-accuracy --space compofa-w1.0 --accuracy {W}/acc_150.csv -o {W}/o17.json"),
    ("fit-accuracy-negative", "train fit-accuracy --space compofa-w1.0 --accuracy {W}/acc_neg.csv "
     "-o {W}/o17.json"),
    ("fit-accuracy-duplicate", "train fit-accuracy --space compofa-w1.0 --accuracy {W}/acc_dup.csv "
     "-o {W}/o17.json"),
    ("fit-accuracy-nan", "train fit-accuracy --space compofa-w1.0 --accuracy {W}/acc_nan.csv -o {W}/o17.json"),
    ("fit-accuracy-missing", "train fit-accuracy --space compofa-w1.0 --accuracy {W}/nope.csv -o {W}/o17.json"),
    ("fit-accuracy-out-fifo", "train fit-accuracy --space compofa-w1.0 --accuracy {W}/acc.csv --model ridge "
     "-o {W}/fifo.json"),
    ("fit-accuracy-out-existing-symlink", "train fit-accuracy --space compofa-w1.0 --accuracy {W}/acc.csv "
     "--model ridge -o {W}/link.json"),
    ("export-checkpoint-missing", "train export-checkpoint --checkpoint {W}/nope.pt --out {W}/o18.pt"),
    ("export-checkpoint-dev-full", "train export-checkpoint --checkpoint {W}/ro/c.pt --out /dev/full"),
    ("export-checkpoint-fifo", "train export-checkpoint --checkpoint {W}/ro/c.pt --out {W}/fifo.json"),
    ("import-missing", "train import {W}/nope.pth --space compofa-w1.0 -o {W}/o19.pt"),
    ("import-garbage", "train import {W}/garbage.pt --space compofa-w1.0 -o {W}/o19.pt"),
    ("import-pickle", "train import {W}/pickle.pt --space compofa-w1.0 -o {W}/o19.pt"),
    ("import-latkit-checkpoint", "train import {W}/ro/c.pt --space compofa-w1.0 -o {W}/o19.pt"),
    ("export-ofa-ckpt-garbage", "train export-ofa {W}/garbage.pt -o {W}/o20.pth"),
    ("export-ofa-out-symlink", "train export-ofa {W}/ro/c.pt -o {W}/link.json"),
]

SEARCH = [
    ("search-latency-no-equals", "search --space compofa-w1.0 --latency {W}/p.json --accuracy {W}/acc.csv "
     "--budget-ms 3 --out {W}/s2"),
    ("search-latency-duplicate-device", "search --space compofa-w1.0 --latency cpu={W}/p.json,cpu={W}/p.json "
     "--accuracy {W}/acc.csv --budget-ms 3 --out {W}/s2"),
    ("search-latency-missing", "search --space compofa-w1.0 --latency cpu={W}/nope.json --accuracy {W}/acc.csv "
     "--budget-ms 3 --out {W}/s2"),
    ("search-latency-lut-missing", "search --space compofa-w1.0 --latency cpu=lut:{W}/nope "
     "--accuracy {W}/acc.csv --budget-ms 3 --out {W}/s2"),
    ("search-latency-negative-scale", "search --space compofa-w1.0 --latency cpu={W}/p_negscale.json "
     "--accuracy {W}/acc.csv --budget-ms 3 --out {W}/s2"),
    ("search-latency-other-space", "search --space compofa-w1.0 --latency cpu={W}/p_otherspace.json "
     "--accuracy {W}/acc.csv --budget-ms 3 --out {W}/s2"),
    ("search-latency-is-accuracy", "search --space compofa-w1.0 --latency cpu={W}/ap.json "
     "--accuracy {W}/acc.csv --budget-ms 3 --out {W}/s2"),
    ("search-latency-pickle", "search --space compofa-w1.0 --latency cpu={W}/p_pickle.json "
     "--accuracy {W}/acc.csv --budget-ms 3 --out {W}/s2"),
    ("search-accuracy-missing", "search --space compofa-w1.0 --latency cpu={W}/p.json --accuracy {W}/nope.csv "
     "--budget-ms 3 --out {W}/s2"),
    ("search-accuracy-150", "search --space compofa-w1.0 --latency cpu={W}/p.json --accuracy {W}/acc_150.csv "
     "--budget-ms 3 --out {W}/s2"),
    ("search-accuracy-duplicate", "search --space compofa-w1.0 --latency cpu={W}/p.json "
     "--accuracy {W}/acc_dup.csv --budget-ms 3 --out {W}/s2"),
    ("search-accuracy-negative", "search --space compofa-w1.0 --latency cpu={W}/p.json "
     "--accuracy {W}/acc_neg.csv --budget-ms 3 --out {W}/s2"),
    ("search-accuracy-latin1", "search --space compofa-w1.0 --latency cpu={W}/p.json "
     "--accuracy {W}/latin1.csv --budget-ms 3 --out {W}/s2"),
    ("search-accuracy-txt", "search --space compofa-w1.0 --latency cpu={W}/p.json --accuracy {W}/afile "
     "--budget-ms 3 --out {W}/s2"),
    ("search-accuracy-is-latency", "search --space compofa-w1.0 --latency cpu={W}/p.json --accuracy {W}/p.json "
     "--budget-ms 3 --out {W}/s2"),
    ("search-resolutions-96", "search --space compofa-w1.0 --latency cpu={W}/p.json --accuracy {W}/acc.csv "
     "--budget-ms 3 --resolutions 96 --out {W}/s2"),
    ("search-method-unknown", "search --space compofa-w1.0 --latency cpu={W}/p.json --accuracy {W}/acc.csv "
     "--budget-ms 3 --method magic --out {W}/s2"),
    # an impossible budget is not bad input: it is answered (exit 3), test_search_cli.py
    ("search-out-is-file", "search --space compofa-w1.0 --latency cpu={W}/p.json --accuracy {W}/acc.csv "
     "--budget-ms 3 --out {W}/afile"),
    ("search-verify-unknown-device", "search --space compofa-w1.0 --latency note10={W}/p.json "
     "--accuracy {W}/acc.csv --budget-ms 3 --verify --out {W}/s2"),
    ("search-space-unknown", "search --space mbv9 --latency cpu={W}/p.json --accuracy {W}/acc.csv "
     "--budget-ms 3 --out {W}/s2"),
    ("demo-unknown-device", "demo --device quantum --out {W}/d2"),
    ("demo-resolutions-96", "demo --resolutions 96 --out {W}/d2"),
    ("demo-checkpoint-missing", "demo --checkpoint {W}/nope.pt --out {W}/d2"),
    ("demo-out-is-file", "demo --out {W}/afile"),
    ("demo-budget-text", "demo --budget-ms fast --out {W}/d2"),
    ("no-command-option", "--frobnicate"),
    ("unknown-command", "frobnicate"),
]

CASES = NUMBERS + ARCHS + EXPORT_BENCH_DEVICE + CAMPAIGNS + PREDICTORS + TRAIN + SEARCH
#: cases also run in a fresh interpreter (import-time warnings would show there), one per command
FRESH = ["bench-threads-10000", "space-sample-n-0", "describe-fractional-r", "export-format-mismatch",
         "export-dev-full", "profile-resume-other-space", "measure-resume-other-space",
         "import-ofa-truncated", "store-merge-garbage", "fit-1e308", "fit-top1-150",
         "predict-negative-scale", "eval-other-checkpoints-table", "fit-accuracy-150",
         "search-accuracy-duplicate", "demo-unknown-device", "device-show-unknown", "lut-show-missing"]

#: issue 17's bugs -> the case or test that covers each
BUGS = {
    "train eval rewrote another checkpoint's 19-row table as 1 row": [
        "eval-other-checkpoints-table", "test_eval_resumes_the_same_checkpoint_named_another_way"],
    "--resume from another directory made a new relative --store": [
        "test_campaign_paths_are_recorded_absolute"],
    "--resume with another --space overwrote the table": [
        "profile-resume-other-space", "measure-resume-other-space", "profile-fresh-over-other-space",
        "measure-fresh-over-other-space"],
    "search picked an r224 subnet from r128-only predictors without a word": [
        "test_search_reports_choices_outside_the_fit"],
    "NaN loss exited 0 with NaN weights": ["test_non_finite_loss_stops_training", "eval-nan-weights",
                                           "test_diverging_run_stops_with_one_line"],
    "fit-accuracy rejected a 0% subnet and accepted 150/negative/duplicates": [
        "test_fit_accuracy_takes_a_zero_percent_subnet", "fit-accuracy-150", "fit-accuracy-negative",
        "fit-accuracy-duplicate", "fit-top1-150", "fit-top1-negative", "fit-top1-duplicate"],
    "outputs replaced a device node, FIFO or symlink": [
        "export-dev-full", "export-fifo", "export-symlink", "fit-out-dev-full", "fit-out-fifo",
        "fit-out-symlink", "eval-out-fifo", "eval-out-symlink", "eval-out-dev-full",
        "store-merge-out-fifo", "profile-store-fifo", "export-checkpoint-dev-full"],
    "bench --threads 10000 hung; nan/inf/negative protocol times accepted": [
        "bench-threads-10000", "bench-min-time-nan", "bench-min-time-inf", "bench-min-time-neg",
        "profile-max-time-neg", "profile-warmup-time-inf", "test_protocol_times_checked_in_the_library"],
    "fractional resolution 176.5 became 176": ["describe-fractional-r", "predict-fractional-r",
                                               "space-enumerate-res-frac"],
    "--batch 0 accepted": ["bench-batch-0", "measure-batch-0", "export-batch-0"],
    "--format tflite -o x.onnx accepted": ["export-format-mismatch"],
    "-n 0 accepted": ["measure-n-0", "space-sample-n-0", "eval-n-0"],
    "a predictor file with a negative stored scale predicted -8 ms": [
        "predict-negative-scale", "search-latency-negative-scale", "evaluate-negscale"],
    "a 1e308 ms measurement was accepted": ["fit-1e308"],
    "conflicting duplicate measurements were accepted": ["fit-conflicting-duplicate"],
    "a measurements file of another space dropped rows silently": [
        "fit-other-space-rows", "evaluate-other-space-rows"],
    "a truncated once-for-all YAML imported 5 of 36 layers silently": ["import-ofa-truncated"],
    "non-UTF-8 files": ["fit-latin1", "fit-top1-latin1", "describe-archs-latin1",
                        "import-ofa-latin1", "search-accuracy-latin1", "predict-latin1"],
    "adb key pair under umask 000": [
        "tests/devices/android/test_agent.py::test_key_pair_is_owner_only_under_umask_000"],
}


# ---------------------------------------------------------------------------------------------
# Running the table
# ---------------------------------------------------------------------------------------------


def _argv(template: str, w: Path) -> list[str]:
    return shlex.split(template.replace("{W}", shlex.quote(str(w))))


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    w = tmp_path_factory.mktemp("bad-inputs")
    _build(w)
    return w


def _env(w: Path) -> dict[str, str]:
    env = {**os.environ, "LATKIT_HOME": str(w / "home"), "PYTHONPATH": str(REPO.parent),
           "TF_CPP_MIN_LOG_LEVEL": "2", "OMP_NUM_THREADS": "1"}
    return env


@pytest.fixture(scope="module")
def results(workspace) -> dict[str, dict]:
    """Every case, run once each by the forking runner (in its table order, one at a time)."""
    lines = [json.dumps({"id": cid, "argv": _argv(cmd, workspace), "cwd": str(workspace),
                         "watch": str(workspace)}) for cid, cmd in CASES]
    proc = subprocess.run([sys.executable, str(RUNNER)], input="\n".join(lines) + "\n",
                          capture_output=True, text=True, env=_env(workspace), timeout=1200,
                          cwd=workspace)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = {}
    for line in proc.stdout.splitlines():
        r = json.loads(line)
        out[r["id"]] = r
    return out


def _check(r: dict, cid: str) -> None:
    err = r["stderr"].strip()
    where = f"{cid}: rc {r['rc']}, stderr:\n{r['stderr'][-2000:]}"
    assert r["rc"] == 2, where
    assert "Traceback" not in err, where
    assert err and "\n" not in err, where  # exactly one line
    assert err.count("error:") == 1, where  # no doubled prefix
    assert not r.get("changed"), f"{cid} changed {r.get('changed')}"


def test_table_is_large_and_covers_every_subcommand():
    from latkit.cli import COMMANDS

    ids = [c for c, _ in CASES]
    assert len(ids) == len(set(ids)) and len(ids) >= 150, len(ids)
    used = {_argv(cmd, Path("/w"))[0] for _, cmd in CASES}
    assert set(COMMANDS) <= used, set(COMMANDS) - used
    covered = {x for v in BUGS.values() for x in v}
    tests = {n for n in globals() if n.startswith("test_")}
    for name in covered:
        assert name in ids or name in tests or "::" in name, name


@pytest.mark.parametrize("cid", [c for c, _ in CASES])
def test_bad_input(results, cid):
    _check(results[cid], cid)


def test_fresh_interpreters_print_one_line_too(workspace):
    """A few cases in ``python -m latkit`` itself: no import-time warning may precede the error."""
    cmds = dict(CASES)

    def one(cid: str) -> tuple[str, dict]:
        p = subprocess.run([sys.executable, "-m", "latkit", *_argv(cmds[cid], workspace)],
                           capture_output=True, text=True, env=_env(workspace), timeout=300,
                           cwd=workspace)
        return cid, {"rc": p.returncode, "stderr": p.stderr}

    with ThreadPoolExecutor(2) as pool:
        for cid, r in pool.map(one, FRESH):
            _check(r, cid)


# ---------------------------------------------------------------------------------------------
# The bugs whose fix is a right answer, not an error
# ---------------------------------------------------------------------------------------------


def test_fit_accuracy_takes_a_zero_percent_subnet(workspace, tmp_path):
    """A real table may hold a 0% subnet: it fits (relative metrics are skipped for top-1)."""
    from latkit.cli import main

    out = tmp_path / "a.json"
    assert main(["train", "fit-accuracy", "--space", SPACE.name, "--accuracy",
                 str(workspace / "acc.csv"), "--model", "ridge", "-o", str(out)]) == 0
    meta = json.loads(out.read_text())["meta"]
    assert meta["metrics"]["train"]["mape"] is None and meta["metrics"]["train"]["rmse_ms"] >= 0
    assert main(["fit", "--target", "top1", "--measurements", str(workspace / "acc.csv"),
                 "--model", "ridge", "-o", str(out)]) == 0


def test_search_reports_choices_outside_the_fit(workspace, tmp_path):
    """Predictors fitted on r128 only: a pick at another resolution is reported as extrapolated."""
    from latkit.search.run import SearchRequest, run_search

    req = SearchRequest(space=SPACE.name, latency=[("cpu", str(workspace / "p.json"))],
                        accuracy=str(workspace / "ap.json"), budgets_ms=[3.0], out=tmp_path / "s",
                        resolutions=[128, 224], export=False)
    logged: list[str] = []
    s = run_search(req, log=logged.append).summary
    picks = {c["resolution"] for c in s["choices"]}
    notes = [c.get("outside_fit") for c in s["choices"]]
    if 224 in picks:
        assert all(notes) and "resolution 224 outside the fitted 128..128" in notes[0][0]
        assert s["outside_fit"] and any("outside what a predictor was fitted on" in m for m in logged)
    req128 = SearchRequest(space=SPACE.name, latency=[("cpu", str(workspace / "p.json"))],
                           accuracy=str(workspace / "acc.csv"), budgets_ms=[3.0],
                           out=tmp_path / "s128", resolutions=[128], export=False)
    inside = run_search(req128).summary
    assert not inside["outside_fit"] or all("MACs" in n for v in inside["outside_fit"].values()
                                            for n in v)
    from latkit.predictors.io import load_predictor
    from latkit.predictors.ranges import outside_fit

    meta = load_predictor(workspace / "p.json").meta_
    assert meta["fit_range"]["resolutions"] == [128, 128]
    assert outside_fit(meta, SPACE, SPACE.parse(A224)).startswith("resolution 224 outside")
    assert outside_fit(meta, SPACE, SPACE.parse(A128)) is None


def test_campaign_paths_are_recorded_absolute(tmp_path, monkeypatch):
    """A relative --store is recorded absolute, and an older file's relative one is read against
    the directory it ran in: a resume from elsewhere finds the campaign's own store."""
    from latkit.profiler.campaign_file import CampaignSpec, campaign_path, load_campaign, save_campaign

    (tmp_path / "a").mkdir()
    monkeypatch.chdir(tmp_path / "a")
    spec = CampaignSpec.new("layer", device="cpu", space=SPACE.name, store="s.sqlite",
                            cache="c").normalised()
    assert spec["store"] == str(tmp_path / "a" / "s.sqlite") and spec["cache"] == str(tmp_path / "a" / "c")
    save_campaign(tmp_path / "out", spec)
    rec = json.loads(campaign_path(tmp_path / "out").read_text())
    rec["args"]["store"] = "old.sqlite"  # as an older latkit wrote it
    campaign_path(tmp_path / "out").write_text(json.dumps(rec))
    monkeypatch.chdir(tmp_path)
    back = load_campaign(tmp_path / "out")
    assert back["store"] == str(tmp_path / "a" / "old.sqlite")
    assert back.store_path(tmp_path / "out") == tmp_path / "a" / "old.sqlite"
    # the same store given relative to the new directory agrees with the recorded one
    back.resumed({"store": "a/old.sqlite"})


def test_eval_resumes_the_same_checkpoint_named_another_way(workspace, tmp_path, monkeypatch):
    """The table of a checkpoint is kept when the checkpoint is named by another relative path
    (resolved path or same bytes), and refused, untouched, for another checkpoint."""
    import shutil

    from latkit.errors import TrainError
    from latkit.supernet.accuracy import accuracy_table
    from latkit.supernet.accuracy_csv import read_accuracy_csv

    ck = tmp_path / "run" / "c.pt"
    ck.parent.mkdir()
    shutil.copy(workspace / "ro" / "c.pt", ck)
    archs = list(SPACE.enumerate(128))[:3]
    out = tmp_path / "acc.csv"
    monkeypatch.chdir(tmp_path)
    accuracy_table("run/c.pt", SPACE, archs[:2], out, n_calib=2, n_eval=2, batch_size=2)
    monkeypatch.chdir(tmp_path / "run")
    t = accuracy_table("./c.pt", SPACE, archs, out, n_calib=2, n_eval=2, batch_size=2)
    assert t.n_kept == 2 and t.n_evaluated == 1 and len(read_accuracy_csv(out)) == 3
    copy = tmp_path / "copy.pt"  # the same bytes elsewhere: the same checkpoint
    shutil.copy(ck, copy)
    assert accuracy_table(copy, SPACE, archs, out, n_calib=2, n_eval=2).n_kept == 3
    before = out.read_bytes()
    other = tmp_path / "other.pt"
    other.write_bytes(ck.read_bytes()[:-8] + b"\0" * 8)
    with pytest.raises(TrainError, match="another --out, or --overwrite"):
        accuracy_table(other, SPACE, archs, out, n_calib=2, n_eval=2)
    assert out.read_bytes() == before


def test_non_finite_loss_stops_training(monkeypatch):
    """A NaN loss (or gradient) stops the step before the optimizer takes it, with one clear line."""
    import torch

    from latkit.supernet import train as train_mod

    model = torch.nn.Linear(2, 1)
    model(torch.ones(1, 2)).sum().backward()
    pp = type("PP", (), {"phase": type("Ph", (), {"name": "full"})()})()
    train_mod._check_finite(model, [0.5, 0.4], 3, pp, 128)  # finite: nothing to say
    with pytest.raises(train_mod.NonFiniteLoss, match=r"not finite \(nan\) at step 4"):
        train_mod._check_finite(model, [0.5, float("nan")], 3, pp, 128)
    model.weight.grad[0, 0] = float("inf")
    with pytest.raises(train_mod.NonFiniteLoss, match="non-finite gradients"):
        train_mod._check_finite(model, [0.5], 3, pp, 128)


def test_protocol_times_checked_in_the_library():
    from latkit.devices.base import ProtocolSettings
    from latkit.devices.onnx_cpu import OnnxCpuDevice
    from latkit.errors import DeviceError

    for bad in ({"min_time_s": float("nan")}, {"warmup_s": -1.0}, {"max_time_s": float("inf")},
                {"min_sample_ms": -1.0}):
        with pytest.raises(DeviceError):
            ProtocolSettings(**bad)
    with pytest.raises(DeviceError, match="threads must be in 1.."):
        OnnxCpuDevice(threads=10_000)


@pytest.mark.slow  # a real (tiny) training run: ~10 s of CPU
def test_diverging_run_stops_with_one_line(tmp_path):
    """An absurd learning rate: the second step's loss is NaN; the run stops with exit 2 and one
    line, and writes no checkpoint of the diverged state."""
    p = subprocess.run([sys.executable, "-m", "latkit", "train", "--lr-scale", "1e30",
                        "--max-train-images", "8", "--batch-size", "2", "--max-steps", "4",
                        "--epochs-scale", "0.01", "--resolutions", "128", "--out",
                        str(tmp_path / "run"), "--no-final-eval", "-q"],
                       capture_output=True, text=True, env=_env(tmp_path), timeout=600)
    assert p.returncode == 2 and p.stderr.strip().count("\n") == 0, p.stderr
    assert "training loss is not finite" in p.stderr
    assert not (tmp_path / "run" / "last.pt").exists()  # no save was due before the NaN step
