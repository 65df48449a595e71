"""`lat train` and its eval / fit-accuracy / export-checkpoint forms."""

import csv
import random

import numpy as np
import pytest
import torch

from latkit.cli import main
from latkit.supernet.model import load_supernet
from latkit.supernet.resolutions import parse_resolutions
from latkit.supernet.space import get_space

SPACE = get_space("compofa-w1.0")


@pytest.fixture
def ckpt(folder_checkpoint):
    return folder_checkpoint(SPACE, resolutions=[128, 132])[0]


def test_help_explains_all_forms(capsys):
    with pytest.raises(SystemExit) as e:
        main(["train", "--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    for word in ("lat train eval", "fit-accuracy", "export-checkpoint", "--epochs-scale",
                 "--resume", "builtin:gratings", "torchrun"):
        assert word in text
    with pytest.raises(SystemExit):
        main(["train", "eval", "--help"])
    assert "--checkpoint" in capsys.readouterr().out


def test_user_errors_are_one_line(tmp_path, capsys):
    assert main(["train", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "does not exist" in err
    assert main(["train"]) == 2
    assert "--out" in capsys.readouterr().err
    assert main(["train", "--space", "compofa-w1.0", "--schedule", "ofa", "--out",
                 str(tmp_path / "o")]) == 2
    assert "couples" in capsys.readouterr().err
    assert main(["train", "--resolutions", "96", "--out", str(tmp_path / "o"),
                 "--max-train-images", "8"]) == 2
    assert "not in compofa-w1.0" in capsys.readouterr().err
    assert parse_resolutions("128-140,160") == (128, 132, 136, 140, 160)


def test_eval_writes_accuracy_table(ckpt, tmp_path, capsys):
    archs = tmp_path / "archs.txt"
    rng = random.Random(0)
    chosen = [SPACE.sample(rng, 128) for _ in range(3)]
    archs.write_text("\n".join(map(str, chosen)) + "\n")
    out = tmp_path / "acc.csv"
    assert main(["train", "eval", "--checkpoint", str(ckpt), "--archs", str(archs),
                 "--calib-images", "4", "--eval-images", "4", "--out", str(out), "-q"]) == 0
    assert "3 subnets evaluated" in capsys.readouterr().out
    rows = list(csv.DictReader(out.open()))
    assert [r["arch"] for r in rows] == [str(a) for a in chosen]
    assert {r["checkpoint"] for r in rows} == {str(ckpt)} and {r["space"] for r in rows} == {SPACE.name}
    out2 = tmp_path / "acc2.csv"
    assert main(["train", "eval", "--checkpoint", str(ckpt), "-n", "4", "--resolutions", "132",
                 "--calib-images", "4", "--eval-images", "4", "--out", str(out2), "-q"]) == 0
    rows = list(csv.DictReader(out2.open()))
    assert len(rows) == 4 and all(r["resolution"] == "132" for r in rows)


def test_fit_accuracy_reports_heldout_spearman(tmp_path, capsys):
    from latkit.predictors.io import load_predictor

    archs = list(SPACE.enumerate(128))
    acc = tmp_path / "acc.csv"
    with acc.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["arch", "top1"])
        for a in archs:
            w.writerow([str(a), f"{40 + SPACE.macs(a) / 1e7:.3f}"])
    out = tmp_path / "acc_pred.json"
    assert main(["train", "fit-accuracy", "--space", SPACE.name, "--accuracy", str(acc), "-o",
                 str(out), "--model", "ridge"]) == 0
    text = capsys.readouterr().out
    assert "held-out Spearman" in text
    rho = float(text.split("Spearman ")[1].split(",")[0])
    assert rho > 0.9
    pred = load_predictor(out)
    assert pred.predict(archs[:2]).shape == (2,)
    assert pred.meta_["target"] == "top1"


def test_export_checkpoint_half(ckpt, tmp_path, capsys):
    small = tmp_path / "small.pt"
    assert main(["train", "export-checkpoint", "--checkpoint", str(ckpt), "--out", str(small),
                 "--half"]) == 0
    assert small.stat().st_size < 0.6 * ckpt.stat().st_size
    m32, _ = load_supernet(ckpt)
    m16, ck = load_supernet(small)
    assert ck["weights_dtype"] == "float16"
    x = torch.randn(2, 3, 128, 128)
    arch = SPACE.max_arch(128)
    with torch.no_grad():
        a, b = m32(x, arch), m16(x, arch)
    assert next(m16.parameters()).dtype == torch.float32
    assert torch.allclose(a, b, atol=5e-2 * a.abs().max().item())


def test_train_on_a_family_with_latency_sampling_records_why(tmp_path, capsys):
    import hashlib
    import json

    from latkit.predictors.io import save_predictor
    from latkit.predictors.models import make_predictor
    from latkit.supernet.family import save_family

    rng = random.Random(0)
    members = list(dict.fromkeys(SPACE.sample(rng, 128) for _ in range(5)))
    fam = save_family(tmp_path / "fam.json", SPACE, members, {"how": "test"})
    archs = [SPACE.sample(rng) for _ in range(40)]
    pred = make_predictor("ridge", SPACE, target="latency_ms").fit(
        archs, np.array([SPACE.macs(a) / 2e7 for a in archs]))  # synthetic latency: tests only
    pred.meta_["device"] = "cpu"
    pred_path = save_predictor(pred, tmp_path / "cpu.json")
    out = tmp_path / "run"
    common = ["train", "--space", str(fam), "--epochs-scale", "0.002", "--max-train-images", "16",
              "--batch-size", "8", "--max-steps", "1", "--no-final-eval", "-q"]
    assert main([*common, "--sampling", "latency", "--out", str(out)]) == 2
    assert "--sampling latency needs --latency" in capsys.readouterr().err
    assert main([*common, "--latency", "cpu", "--out", str(out)]) == 2
    assert "--latency takes DEV=PRED.json" in capsys.readouterr().err
    assert main([*common, "--latency", f"cpu={pred_path}", "--sampling", "latency",
                 "--out", str(out)]) == 0
    rec = json.loads((out / "config.json").read_text())
    assert rec["config"]["space"] == str(fam) and rec["config"]["sampling"] == "latency"
    s = rec["subnet_sampling"]
    assert s["sampling"] == "latency" and s["space"] == "compofa-w1.0"
    assert s["family"]["sha256"] == hashlib.sha256(fam.read_bytes()).hexdigest()
    assert s["family"]["members"] == len(members) and s["family"]["derivation"] == {"how": "test"}
    assert s["latency"] == [{"device": "cpu", "spec": str(pred_path),
                             "sha256": hashlib.sha256(pred_path.read_bytes()).hexdigest()}]
    ck = torch.load(out / "last.pt", weights_only=True)
    assert ck["subnet_sampling"] == s and ck["space"] == "compofa-w1.0"
