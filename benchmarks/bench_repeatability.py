"""How repeatable is `lat bench --device cpu`? Five back-to-back runs of the same mid-size CNN.

Exports a mid-size subnet of ``ofa-mbv3-w1.0`` (kernel 5, expand 4, depth 3 at resolution 160) with
``latkit.profiler.export`` when that is available, else a small MobileNet-like CNN defined below, then
runs ``lat bench --device cpu FILE --json`` REPEATS times as separate processes (each loads the model
afresh, as a user would) and prints each run's median, the median of medians, the largest deviation
of a run's median from it in percent (target: within +-3%), and the CV of single runs.

    .venv/bin/python benchmarks/bench_repeatability.py [--repeats 5] [--out DIR] [--affinity 1]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path


def _fallback_cnn():
    """A MobileNetV2-like CNN (inverted residuals, depthwise 3x3, ~60M MACs at 160x160)."""
    import torch
    from torch import nn

    def conv_bn(i, o, k, s, groups=1, act=True):
        layers = [nn.Conv2d(i, o, k, s, k // 2, groups=groups, bias=False), nn.BatchNorm2d(o)]
        return layers + ([nn.ReLU6()] if act else [])

    class Block(nn.Module):
        def __init__(self, i, o, s, e):
            super().__init__()
            m = i * e
            self.skip = s == 1 and i == o
            self.body = nn.Sequential(*conv_bn(i, m, 1, 1), *conv_bn(m, m, 3, s, groups=m),
                                      *conv_bn(m, o, 1, 1, act=False))

        def forward(self, x):
            y = self.body(x)
            return x + y if self.skip else y

    # (out channels, stride, expand, repeats)
    table = [(16, 1, 1, 1), (24, 2, 6, 2), (32, 2, 6, 3), (64, 2, 6, 3), (96, 1, 6, 2), (160, 2, 6, 2)]
    layers, c = conv_bn(3, 32, 3, 2), 32
    for o, s, e, n in table:
        for j in range(n):
            layers.append(Block(c, o, s if j == 0 else 1, e))
            c = o
    layers += [*conv_bn(c, 640, 1, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(640, 1000)]
    torch.manual_seed(0)
    return nn.Sequential(*layers).eval()


def export_model(out: Path, resolution: int) -> tuple[Path, str]:
    """The model to measure and a description of it."""
    try:
        from latkit.profiler.export import export_arch, export_onnx  # noqa: F401
        from latkit.supernet.space import get_space
    except ImportError:
        export_arch = None
    if export_arch is not None:
        space = get_space("ofa-mbv3-w1.0")
        n = space.n_stages
        arch = space.parse({"ks": [5] * (n * space.max_depth), "e": [4] * (n * space.max_depth),
                            "d": [3] * n, "r": resolution})
        path = export_arch(space, arch, "onnx", out / "ofa_mid.onnx")
        return path, f"ofa-mbv3-w1.0 subnet {arch} ({space.macs(arch) / 1e6:.1f}M MACs)"
    import torch

    path = out / "mobilenet_like.onnx"
    torch.onnx.export(_fallback_cnn(), (torch.zeros(1, 3, resolution, resolution),), str(path),
                      dynamo=False, input_names=["input"], output_names=["output"])
    return path, f"fallback MobileNet-like CNN at {resolution}x{resolution}"


def bench_once(path: Path, extra: list[str]) -> dict:
    cmd = [sys.executable, "-m", "latkit", "bench", "--device", "cpu", str(path), "--json", *extra]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise SystemExit(f"lat bench failed ({proc.returncode}): {proc.stderr.strip()}")
    return json.loads(proc.stdout)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--resolution", type=int, default=160)
    ap.add_argument("--out", type=Path, help="where to write the model (default: a temporary folder)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--affinity", help="hex CPU mask passed to lat bench")
    ap.add_argument("--min-time", type=float, help="lat bench --min-time (default: the protocol's)")
    ap.add_argument("--target-pct", type=float, default=3.0)
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        out.mkdir(parents=True, exist_ok=True)
        path, what = export_model(out, args.resolution)
        extra = ["--threads", str(args.threads)]
        extra += ["--affinity", args.affinity] if args.affinity else []
        extra += ["--min-time", str(args.min_time)] if args.min_time else []
        print(f"model: {what}")
        print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())} on {os.cpu_count()} CPUs")
        print(f"command: lat bench --device cpu {path.name} --json {' '.join(extra)}")
        results = []
        for i in range(args.repeats):
            m = bench_once(path, extra)
            results.append(m)
            note = f" (re-measured, first cv {m['first_round_cv'] * 100:.2f}%)" if m["remeasured"] else ""
            print(f"run {i + 1}: median {m['median_ms']:.3f} ms  p10 {m['p10_ms']:.3f}  p90 "
                  f"{m['p90_ms']:.3f}  cv {m['cv'] * 100:.2f}%  runs {m['runs']}{note}")
    medians = [m["median_ms"] for m in results]
    center = statistics.median(medians)
    worst = max(abs(v - center) / center * 100 for v in medians)
    cvs = [m["cv"] * 100 for m in results]
    env = results[0]["env"]
    print(f"environment: {env['cpu_model']}, {env['runtime']} {env['runtime_version']}, threads "
          f"{env['threads']}, affinity 0x{env['affinity_mask']}"
          f"{'' if env['affinity_pinned'] else ' (not pinned)'}")
    print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print(f"median of medians: {center:.3f} ms")
    print(f"max deviation: {worst:.2f}% (target +-{args.target_pct:g}%: "
          f"{'met' if worst <= args.target_pct else 'NOT met'})")
    print(f"single-run CV: median {statistics.median(cvs):.2f}%, range {min(cvs):.2f}-{max(cvs):.2f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
