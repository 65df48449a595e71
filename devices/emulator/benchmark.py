"""The emulated TFLite ``benchmark_model``: real LiteRT inference on the host CPU, real tool's log.

Invoked on the emulated phone by path (any pushed, executable file named ``benchmark_model``) or by
name when the profile says ``preinstalled``. It parses the real tool's flags (``--name=value`` only;
anything else warns ``Unconsumed cmdline flags:`` and is ignored, as the real tool does), loads the
pushed ``.tflite`` with ``ai_edge_litert.interpreter.Interpreter`` (``--num_threads``;
``--use_xnnpack=false`` selects the resolver without default delegates), and runs the real tool's
loop: warm-up for at least ``warmup_runs`` runs and ``warmup_min_secs`` seconds, then at least
``num_runs`` runs and ``min_secs`` seconds, stopping past ``max_secs``; each invoke is timed in
microseconds. Nothing is invented: every number printed is measured on the host (so latencies are
real, just not a phone's). ``--use_gpu``/``--use_nnapi`` fail with the real tool's "Failed to apply
... delegate." error unless the profile sets ``has_gpu`` (it never fakes accelerator numbers).

Output formats (profile ``format``), taken from the TFLite/LiteRT sources (benchmark_model.cc,
benchmark_tflite_model.cc, tools/logging.h, tsl stats_calculator.h):

- ``modern`` (default): ``INFO: ``/``WARN: `` lines on stdout, ``ERROR: `` and runtime lines
  (``INFO: Created TensorFlow Lite XNNPACK delegate for CPU.``) on stderr; parameters logged only
  when set; stat lines ``count=N first=F curr=C min=M max=X avg=A std=S p5=P median=Q p95=R``
  (``count=N curr=X(all same)`` when all runs are equal, percentiles still appended), each followed
  by a blank line; ``Inference timings in us: Init: A, First inference: B, Warmup (avg): C,
  Inference (avg): D``; memory footprint lines. Averages use C++ stream formatting (``%g``: six
  significant digits, so 1234567.5 us prints as ``1.23457e+06``); std and percentiles are integers.
- ``legacy``: no prefixes, everything on stderr, all parameters logged, no percentiles, and
  ``Average inference timings in us: Warmup: C, Init: A, Inference: D``.
- ``nostats``: as legacy but ``... Init: A, no stats: D`` (an old build's label).

``--enable_op_profiling=true`` appends the op-profiling tables (see ``op_profile.py``).
"""

from __future__ import annotations

import math
import os
import re
import time

import numpy as np

from latkit.devices.emulator.op_profile import init_summary_text, profile_ops, random_inputs, summary_text
from latkit.devices.emulator.stat_text import g, stat_line

__all__ = ["g", "parse_flags", "run_benchmark_model", "stat_line"]

I, F, B, S = "int32", "float", "bool", "string"
# (name, type, default, log label) in the order the real LogParams() prints them.
MODEL_FLAGS = [
    ("num_runs", I, 50, "Min num runs"), ("min_secs", F, 1.0, "Min runs duration (seconds)"),
    ("max_secs", F, 150.0, "Max runs duration (seconds)"),
    ("run_delay", F, -1.0, "Inter-run delay (seconds)"),
    ("run_frequency", F, -1.0, "Number of prorated runs per second"), ("num_threads", I, -1, "Num threads"),
    ("use_caching", B, False, "Use caching"), ("benchmark_name", S, "", "Benchmark name"),
    ("output_prefix", S, "", "Output prefix"), ("warmup_runs", I, 1, "Min warmup runs"),
    ("warmup_min_secs", F, 0.5, "Min warmup runs duration (seconds)"), ("verbose", B, False, None),
    ("dry_run", B, False, "Run w/o invoking kernels"),
    ("report_peak_memory_footprint", B, False, "Report the peak memory footprint"),
    ("memory_footprint_check_interval_ms", I, 50, "Memory footprint check interval (ms)"),
    ("gpu_invoke_loop_times", I, 1, None),
]
TFLITE_FLAGS = [
    ("graph", S, "", "Graph"), ("signature_to_run_for", S, "", "Signature to run"),
    ("list_signatures", B, False, "List signatures from the provided model"),
    ("input_layer", S, "", "Input layers"), ("input_layer_shape", S, "", "Input shapes"),
    ("input_layer_value_range", S, "", "Input value ranges"),
    ("input_layer_value_files", S, "", "Input value files"),
    ("allow_fp16", B, False, "Allow fp16"), ("require_full_delegation", B, False, "Require full delegation"),
    ("enable_op_profiling", B, False, "Enable op profiling"),
    ("op_profiling_output_mode", S, "stdout", "Op profiling output mode."),
    ("op_profiling_output_file", S, "", "Op profiling output file."),
    ("max_profiling_buffer_entries", I, 1024, "Max initial profiling buffer entries"),
    ("allow_dynamic_profiling_buffer_increase", B, False,
     "Allow dynamic increase on profiling buffer entries"),
    ("profiling_output_csv_file", S, "", "CSV File to export profiling data to"),
    ("print_preinvoke_state", B, False, "Print pre-invoke interpreter state"),
    ("print_postinvoke_state", B, False, "Print post-invoke interpreter state"),
    ("release_dynamic_tensors", B, False, "Release dynamic tensor memory"),
    ("optimize_memory_for_large_tensors", I, 0, "Optimize memory usage for large tensors"),
    ("disable_delegate_clustering", B, False, "Disable delegate clustering"),
    ("output_filepath", S, "", "File path to export outputs layer to"),
    ("result_file_path", S, "", "File path to save the benchmark result in binary proto format"),
]
DELEGATE_FLAGS = [
    ("max_delegated_partitions", I, 0, "Max number of delegated partitions"),
    ("min_nodes_per_partition", I, 0, "Min nodes per partition"),
    ("use_gpu", B, False, "Use gpu"), ("gpu_precision_loss_allowed", B, True, "Allow lower precision in gpu"),
    ("gpu_experimental_enable_quant", B, True, "Enable running quant models in gpu"),
    ("gpu_backend", S, "", "GPU backend"), ("use_nnapi", B, False, "Use NNAPI"),
    ("nnapi_accelerator_name", S, "", "NNAPI accelerator name"),
    ("nnapi_execution_preference", S, "", "NNAPI execution preference"),
    ("disable_nnapi_cpu", B, True, "Disable NNAPI cpu"),
    ("nnapi_allow_fp16", B, False, "Allow fp16 in NNAPI"),
    ("use_xnnpack", B, False, "Use xnnpack"), ("xnnpack_force_fp16", B, False, "xnnpack_force_fp16"),
    ("use_hexagon", B, False, "Use Hexagon"), ("external_delegate_path", S, "", "External delegate path"),
    ("help", B, False, None),
]
SPEC = {name: (typ, default) for name, typ, default, _ in MODEL_FLAGS + TFLITE_FLAGS + DELEGATE_FLAGS}
LEGACY_PARAMS = [("num_runs", "Min num runs"), ("min_secs", "Min runs duration (seconds)"),
                 ("max_secs", "Max runs duration (seconds)"), ("run_delay", "Inter-run delay (seconds)"),
                 ("num_threads", "Num threads"), ("benchmark_name", "Benchmark name"),
                 ("output_prefix", "Output prefix"), ("warmup_runs", "Min warmup runs"),
                 ("warmup_min_secs", "Min warmup runs duration (seconds)"), ("graph", "Graph"),
                 ("input_layer", "Input layers"), ("input_layer_shape", "Input shapes"),
                 ("input_layer_value_range", "Input value ranges"), ("allow_fp16", "Allow fp16 "),
                 ("require_full_delegation", "Require full delegation "),
                 ("enable_op_profiling", "Enable op profiling"),
                 ("max_profiling_buffer_entries", "Max profiling buffer entries"),
                 ("profiling_output_csv_file", "CSV File to export profiling data to"),
                 ("use_gpu", "Use gpu "), ("use_nnapi", "Use NNAPI "), ("use_xnnpack", "Use xnnpack ")]


def show(value) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        return g(value)
    return str(value)


def parse_flags(args: list[str]) -> tuple[dict, set[str], list[str], str | None]:
    """(values, names set on the command line, unconsumed args, error or None)."""
    values = {name: default for name, (_, default) in SPEC.items()}
    given: set[str] = set()
    unconsumed = []
    for a in args:
        m = re.fullmatch(r"--([A-Za-z0-9_]+)=(.*)", a, re.S)
        if not m or m.group(1) not in SPEC:
            unconsumed.append(a)
            continue
        name, raw = m.groups()
        typ = SPEC[name][0]
        try:
            if typ == B:
                if raw not in ("true", "false", "1", "0"):
                    raise ValueError(raw)
                value = raw in ("true", "1")
            elif typ == I:
                value = int(raw, 10)
            elif typ == F:
                value = float(raw)
            else:
                value = raw
        except ValueError:
            return values, given, unconsumed, f"Failed to parse flag '{a}' as {typ}."
        values[name] = value
        given.add(name)
    return values, given, unconsumed, None


def _usage(prog: str) -> str:
    lines = [f"usage: {prog}", "Flags:"]
    for name, (typ, default) in SPEC.items():
        lines.append(f"\t--{name}={show(default)}\t{typ}\toptional")
    return "\n".join(lines)


def _rss_kb() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024
    except (OSError, ValueError, IndexError):
        return 0


class _Log:
    def __init__(self, ctx, legacy: bool) -> None:
        self.ctx, self.legacy = ctx, legacy

    def info(self, msg: str) -> None:
        self.ctx.err(msg + "\n") if self.legacy else self.ctx.out(f"INFO: {msg}\n")

    def warn(self, msg: str) -> None:
        self.ctx.err(msg + "\n") if self.legacy else self.ctx.out(f"WARN: {msg}\n")

    def error(self, msg: str) -> None:
        self.ctx.err(msg + "\n" if self.legacy else f"ERROR: {msg}\n")

    def runtime(self, msg: str) -> None:
        """tflite minimal logging (stderr) in modern builds."""
        if not self.legacy:
            self.ctx.err(f"INFO: {msg}\n")


def run_benchmark_model(argv: list[str], ctx) -> int:
    """Entry point from the emulated shell; returns the exit status."""
    phone = ctx.phone
    number = phone.counters.bump("benchmarks_started")
    faults = ctx.session.faults
    fault = faults.benchmark_fault(number) if faults is not None else None
    with phone.bench_lock:
        status = _Benchmark(argv, ctx, fault).run()
    if status == 0:
        phone.counters.bump("benchmarks_completed")
    return status


class _Benchmark:
    def __init__(self, argv: list[str], ctx, fault: str | None) -> None:
        self.argv, self.ctx, self.fault = argv, ctx, fault
        self.fmt = ctx.phone.profile.format
        self.legacy = self.fmt != "modern"
        self.log = _Log(ctx, self.legacy)
        self.busy_s = 0.0
        self.regular_s = 0.0

    def fail(self, *messages: str) -> int:
        for m in messages:
            self.log.error(m)
        self.log.error("Benchmarking failed.")
        return 1

    def log_params(self, p: dict, given: set[str]) -> None:
        if self.legacy:
            for name, label in LEGACY_PARAMS:
                value = p[name] if not (name == "num_threads" and p[name] < 0) else 1
                self.log.info(f"{label}: [{show(value)}]")
            return
        verbose = p["verbose"]
        self.log.info(f"Log parameter values verbosely: [{show(verbose)}]")
        for name, _, _, label in MODEL_FLAGS + TFLITE_FLAGS:
            always = name in ("graph", "signature_to_run_for")
            if label and (always or name in given or (verbose and name != "list_signatures")):
                self.log.info(f"{label}: [{show(p[name])}]")
        if "num_threads" in given or verbose:
            self.log.info(f"#threads used for CPU inference: [{show(p['num_threads'])}]")
        for name, _, _, label in DELEGATE_FLAGS:
            if label and (name in given or verbose):
                self.log.info(f"{label}: [{show(p[name])}]")

    def checkpoint(self) -> int | None:
        """Apply an injected fault after the first 'Running benchmark' line; status to return."""
        hooks = self.ctx.session.hooks
        if self.fault == "crash":
            self.ctx.phone.counters.bump("crashes")
            self.ctx.err("Segmentation fault \n")
            return 139
        if self.fault == "drop":
            self.ctx.phone.counters.bump("drops")
            hooks.drop()
            raise ConnectionAbortedError("connection dropped by injected fault")
        if self.fault == "hang":
            self.ctx.phone.counters.bump("hangs")
            if hooks.wait_closed(self.ctx.session.faults.hang_s):
                raise ConnectionAbortedError("client went away during an injected hang")
        return None

    def loop(self, interp, inputs, details, min_runs: int, min_secs: float, max_secs: float,
             p: dict, first_loop: bool) -> tuple[list[int], int | None]:
        self.log.info(f"Running benchmark for at least {min_runs} iterations and at least {g(min_secs)} "
                      f"seconds but terminate if exceeding {g(max_secs)} seconds.")
        if first_loop:
            status = self.checkpoint()
            if status is not None:
                return [], status
        hooks = self.ctx.session.hooks
        now = time.perf_counter_ns() // 1000
        min_finish, max_finish = now + int(min_secs * 1e6), now + int(max_secs * 1e6)
        delay = p["run_delay"]
        gap = 1.0 / p["run_frequency"] if p["run_frequency"] > 0 else None
        next_finish = now * 1e-6 + (gap or 0.0)
        samples: list[int] = []
        run = 0
        while (run < min_runs or now < min_finish) and now <= max_finish:
            for d, a in zip(details, inputs):
                interp.set_tensor(d["index"], a)
            t0 = time.perf_counter_ns()
            interp.invoke()
            t1 = time.perf_counter_ns()
            samples.append((t1 - t0) // 1000)
            self.busy_s += (t1 - t0) / 1e9
            if gap is not None:
                delay = next_finish - time.perf_counter_ns() * 1e-9
                next_finish += gap
            if delay > 0:
                time.sleep(delay)
            if hooks.wait_closed(0):
                raise ConnectionAbortedError("client went away during the benchmark")
            now = time.perf_counter_ns() // 1000
            run += 1
        self.log.info(stat_line(samples, percentiles=not self.legacy) + "\n")
        return samples, None

    def run(self) -> int:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        ctx, log = self.ctx, self.log
        log.info("STARTING!")
        p, given, unconsumed, error = parse_flags(self.argv[1:])
        if error or p["help"]:
            return self.fail(*([error] if error else []), _usage(self.argv[0]))
        if unconsumed:
            log.warn("Unconsumed cmdline flags: " + " ".join(unconsumed))
        if not p["graph"]:
            return self.fail("Please specify the name of your TF Lite input file with --graph")
        self.log_params(p, given)
        graph = p["graph"]
        path = ctx.path(graph)
        fs = ctx.fs
        size_bytes = fs.stat(path).size if fs.isfile(path) else -1
        rss0 = _rss_kb()
        t_init = time.perf_counter_ns()
        if not fs.isfile(path) or path in fs.virtual:
            return self.fail(f"Could not open '{graph}'.", f"Failed to load model {graph}")
        host_path = str(fs.host(path))
        with open(host_path, "rb") as f:
            head = f.read(8)
        if len(head) < 8 or head[4:8] != b"TFL3":
            return self.fail("The model is not a valid Flatbuffer buffer", f"Failed to load model {graph}")
        log.info(f"Loaded model {graph}")
        if self.legacy:
            log.info("resolved reporter")
        log.runtime("Initialized TensorFlow Lite runtime.")
        if (p["use_gpu"] or p["use_nnapi"] or p["use_hexagon"]) and not ctx.phone.profile.has_gpu:
            name = "GPU" if p["use_gpu"] else ("NNAPI" if p["use_nnapi"] else "Hexagon")
            return self.fail(f"Failed to apply {name} delegate.")
        no_xnn = "use_xnnpack" in given and not p["use_xnnpack"]
        resolver = (OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES if no_xnn else OpResolverType.AUTO)
        threads = p["num_threads"] if p["num_threads"] > 0 else None
        try:
            interp = Interpreter(model_path=host_path, num_threads=threads,
                                 experimental_op_resolver_type=resolver)
        except (ValueError, RuntimeError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else "unknown error"
            return self.fail(first, "Failed to initialize the interpreter")
        status = self.prepare(interp, p)
        if status is not None:
            return status
        t_alloc = time.perf_counter_ns()
        try:
            interp.allocate_tensors()
        except (ValueError, RuntimeError):
            return self.fail("Failed to allocate tensors!")
        allocate_us = (time.perf_counter_ns() - t_alloc) // 1000
        init_us = (time.perf_counter_ns() - t_init) // 1000
        rss_init = _rss_kb()
        self.log_delegates(interp, p, given)
        if size_bytes > 0:
            log.info(f"The input model file size (MB): {g(size_bytes / 1e6)}")
        elif not self.legacy:
            log.warn("Failed to get the input model file size.")
        log.info(f"Initialized session in {g(init_us / 1e3)}ms.")
        details = interp.get_input_details()
        inputs = random_inputs(details, np.random.default_rng())
        if p["dry_run"]:
            p.update(warmup_runs=0, warmup_min_secs=-1.0, num_runs=0, min_secs=-1.0)
        thermal = ctx.phone.thermal
        thermal.begin_work()
        try:
            return self.measure(interp, inputs, details, p, init_us, allocate_us, rss0, rss_init,
                                host_path, threads, resolver)
        except (RuntimeError, ValueError) as exc:  # an op failed inside invoke()
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            return self.fail(first)
        finally:
            thermal.end_work(self.busy_s)

    def measure(self, interp, inputs, details, p, init_us, allocate_us, rss0, rss_init, host_path,
                threads, resolver) -> int:
        """Warm-up, timed runs, summary and (optionally) op profiles; returns the exit status."""
        warm, status = self.loop(interp, inputs, details, p["warmup_runs"], p["warmup_min_secs"],
                                 p["max_secs"], p, first_loop=True)
        if status is not None:
            return status
        if self.fault == "fail":
            ops = [d["op_name"] for d in interp._get_ops_details()]
            return self.fail(f"Node number 0 ({ops[0] if ops else 'UNKNOWN'}) failed to invoke.")
        t_regular = time.perf_counter()
        regular, _ = self.loop(interp, inputs, details, p["num_runs"], p["min_secs"], p["max_secs"],
                               p, first_loop=False)
        self.regular_s = time.perf_counter() - t_regular
        self.report(init_us, warm, regular, rss0, rss_init)
        if p["enable_op_profiling"]:
            self.op_profiles(host_path, threads, resolver, allocate_us, len(regular), p)
        return 0

    def prepare(self, interp, p: dict) -> int | None:
        """Signatures and --input_layer_shape resizing, as BenchmarkTfLiteModel::Init does."""
        sigs = list(interp.get_signature_list())
        key = p["signature_to_run_for"]
        if key and key not in sigs:
            msgs = ["Signature not specified or incorrect. Pass one of the following to the flag "
                    "\"--signature_to_run_for\""] + [f" #> Signature key: {k}" for k in sigs]
            return self.fail(*msgs)
        if sigs and not self.legacy and (key or len(sigs) == 1):
            self.log.info(f"Using signature: {key or sigs[0]}")
        if p["input_layer_shape"]:
            shapes = p["input_layer_shape"].split(":")
            details = interp.get_input_details()
            if len(shapes) != len(details):
                return self.fail(f"Inputs mismatch: Model inputs #:{len(shapes)} expected: {len(details)}")
            for d, s in zip(details, shapes):
                interp.resize_tensor_input(d["index"], [int(x) for x in s.split(",")])
        return None

    def log_delegates(self, interp, p: dict, given: set[str]) -> None:
        ops = interp._get_ops_details()
        delegates = [o for o in ops if o["op_name"] == "DELEGATE"]
        if not delegates or self.legacy:
            return
        self.log.runtime("Created TensorFlow Lite XNNPACK delegate for CPU.")
        if "use_xnnpack" in given and p["use_xnnpack"]:
            outs = {int(o) for o in delegates[0]["outputs"]}
            model_outs = {int(d["index"]) for d in interp.get_output_details()}
            if len(delegates) == 1 and model_outs <= outs:
                self.log.info("Explicitly applied XNNPACK delegate, and the model graph will be completely "
                              "executed by the delegate.")
            else:
                self.log.info(f"Explicitly applied XNNPACK delegate, and the model graph will be partially "
                              f"executed by the delegate w/ {len(delegates)} delegate kernels.")

    def report(self, init_us: int, warm: list[int], regular: list[int], rss0: int, rss_init: int) -> None:
        def avg(v: list[int]) -> float:
            return sum(v) / len(v) if v else math.nan

        if self.fmt == "modern":
            first = warm[0] if warm else 0
            self.log.info(f"Inference timings in us: Init: {init_us}, First inference: {first}, "
                          f"Warmup (avg): {g(avg(warm))}, Inference (avg): {g(avg(regular))}")
            self.log.info("Note: as the benchmark tool itself affects memory footprint, the following is "
                          "only APPROXIMATE to the actual memory footprint of the model at runtime. Take the "
                          "information at your discretion.")
            init_mb, overall_mb = (rss_init - rss0) / 1024.0, (_rss_kb() - rss0) / 1024.0
            self.log.info(f"Memory footprint delta from the start of the tool (MB): init={g(init_mb)} "
                          f"overall={g(overall_mb)}")
        else:
            label = "Inference" if self.fmt == "legacy" else "no stats"
            self.log.info(f"Average inference timings in us: Warmup: {g(avg(warm))}, Init: {init_us}, "
                          f"{label}: {g(avg(regular))}")

    def op_profiles(self, host_path: str, threads, resolver, allocate_us: int, runs: int, p: dict) -> None:
        # the real tool profiles during the timed runs; we spend about as long again, at most 5 s
        budget_s = min(5.0, max(0.2, self.regular_s))
        nodes, warnings = profile_ops(host_path, threads, resolver, max(1, runs), budget_s=budget_s,
                                      rng=np.random.default_rng())
        for w in warnings:
            self.log.warn(w)
        # ProfilingListener::WriteOutput: header, endl, data, endl (the log line adds one more)
        header_init = ("Profiling Info for Benchmark Initialization:\n"
                       + init_summary_text(allocate_us, self.legacy) + "\n")
        header_ops = ("Operator-wise Profiling Info for Regular Benchmark Runs:\n"
                      + summary_text(nodes, legacy=self.legacy) + "\n")
        self.log.info(header_init)
        self.log.info(header_ops)
