"""Per-operator timings for the emulated ``benchmark_model --enable_op_profiling=true``.

LiteRT's Python API exposes no per-op profiler, so the numbers are measured another honest way:
every operator of subgraph 0 is cut out into its own single-op model (same operator code, options,
constant weights and tensor shapes), loaded in its own LiteRT interpreter with the same thread
count and op resolver as the benchmark, fed random inputs, and invoked ``runs`` times after one
warm-up invoke. Each row is therefore a real host-CPU timing of that operator, run in isolation
(no cache sharing with its neighbours, no cross-op fusion inside an XNNPACK partition). Operators
that reference other subgraphs (WHILE, IF, CALL_ONCE) cannot be cut out; they are reported with a
``WARN:`` line and left out of the tables.

The tables follow ``tensorflow/core/util/stats_calculator.cc`` (tab-separated, right-aligned,
``std::fixed`` with 3 decimals): "Run Order" (all nodes), "Top by Computation Time" (10), "Summary
by node type" and the short summary. ``legacy=True`` adds the older ``[start]`` column (the average
start offset of the node within a run: the sum of the averages of the nodes before it).
Node names are ``[output tensor names]:node_index`` as in ``profile_summarizer.cc``.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass

import numpy as np

from latkit.devices.emulator.stat_text import stat_line

__all__ = ["NodeStat", "init_summary_text", "profile_ops", "random_inputs", "summary_text"]

NO_SUBGRAPH_OPS = {"WHILE", "IF", "CALL_ONCE", "CALL", "STABLEHLO_WHILE", "STABLEHLO_CASE"}


@dataclass
class NodeStat:
    """One profiled node: type, display name, run order and per-run times in microseconds."""

    node_type: str
    name: str
    run_order: int
    times_us: list[int]

    @property
    def first_ms(self) -> float:
        return self.times_us[0] / 1000.0

    @property
    def avg_us(self) -> float:
        return sum(self.times_us) / len(self.times_us)


def random_inputs(details: list[dict], rng: np.random.Generator) -> list[np.ndarray]:
    """Random input data per tensor type, in the ranges benchmark_model uses."""
    arrays = []
    for d in details:
        shape, dtype = tuple(int(s) for s in d["shape"]), np.dtype(d["dtype"])
        if dtype == np.bool_:
            arrays.append(rng.integers(0, 2, shape).astype(np.bool_))
        elif np.issubdtype(dtype, np.integer):
            info = np.iinfo(dtype)
            lo, hi = (max(info.min, -128), min(info.max, 127)) if info.bits > 8 else (info.min, info.max)
            arrays.append(rng.integers(lo, int(hi) + 1, shape).astype(dtype))
        else:
            arrays.append(rng.uniform(-0.5, 0.5, shape).astype(dtype))
    return arrays


def _single_op_model(model, op_index: int) -> bytes:
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils as fbu

    sg = model.subgraphs[0]
    op = sg.operators[op_index]
    tensors_of_op = list(op.inputs or []) + list(op.outputs or []) + list(op.intermediates or [])
    used = sorted({t for t in tensors_of_op if t >= 0})
    remap = {old: new for new, old in enumerate(used)}
    buffers = [schema.BufferT()]
    tensors, constant = [], set()
    for old in used:
        t = copy.copy(sg.tensors[old])
        buf = model.buffers[t.buffer] if t.buffer < len(model.buffers) else None
        if buf is not None and buf.data is not None and len(buf.data):
            buffers.append(buf)
            t.buffer = len(buffers) - 1
            constant.add(old)
        else:
            t.buffer = 0
        tensors.append(t)
    new_op = copy.copy(op)
    new_op.inputs = [remap[i] if i >= 0 else -1 for i in (op.inputs or [])]
    new_op.outputs = [remap[o] for o in (op.outputs or [])]
    new_op.intermediates = [remap[i] for i in (op.intermediates or [])] or None
    new_sg = schema.SubGraphT()
    new_sg.tensors = tensors
    new_sg.operators = [new_op]
    new_sg.inputs = [remap[i] for i in (op.inputs or []) if i >= 0 and i not in constant
                     and not sg.tensors[i].isVariable]
    new_sg.outputs = [remap[o] for o in (op.outputs or [])]
    new_sg.name = "latkit_single_op"
    m = schema.ModelT()
    m.version = model.version
    m.operatorCodes = model.operatorCodes
    m.subgraphs = [new_sg]
    m.buffers = buffers
    m.description = "latkit emulator single-op model"
    return bytes(fbu.convert_object_to_bytearray(m))


def profile_ops(model_path: str, num_threads: int | None, resolver, runs: int, budget_s: float,
                rng: np.random.Generator) -> tuple[list[NodeStat], list[str]]:
    """Time every operator of subgraph 0 in isolation; returns (nodes, warnings)."""
    from ai_edge_litert.interpreter import Interpreter
    from ai_edge_litert.tools import flatbuffer_utils as fbu

    with open(model_path, "rb") as f:
        model = fbu.read_model_from_bytearray(bytearray(f.read()))
    sg = model.subgraphs[0]
    prepared, warnings = [], []
    for idx, op in enumerate(sg.operators or []):
        code = model.operatorCodes[op.opcodeIndex]
        op_name = fbu.opcode_to_name(model, op.opcodeIndex) or f"CUSTOM:{code.customCode}"
        outputs = ", ".join(sg.tensors[o].name.decode("utf-8", errors="replace") for o in op.outputs or [])
        if op_name in NO_SUBGRAPH_OPS:
            warnings.append(f"latkit emulator cannot time node {idx} ({op_name}) in isolation; left out")
            continue
        try:
            it = Interpreter(model_content=_single_op_model(model, idx), num_threads=num_threads,
                             experimental_op_resolver_type=resolver)
            it.allocate_tensors()
            details = it.get_input_details()
            data = random_inputs(details, rng)
            for d, a in zip(details, data):
                it.set_tensor(d["index"], a)
            it.invoke()
        except Exception as exc:  # noqa: BLE001 -- an op that cannot be cut out is reported, whatever LiteRT raises
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            warnings.append(f"latkit emulator cannot time node {idx} ({op_name}) in isolation: {first}")
            continue
        prepared.append((idx, op_name, f"[{outputs}]:{idx}", it, details, data))
    # one timed pass to size the number of runs to the time budget
    nodes = [NodeStat(t, name, idx, []) for idx, t, name, *_ in prepared]
    start = time.perf_counter()
    done = 0
    while done < max(1, runs):
        for node, (_, _, _, it, details, data) in zip(nodes, prepared):
            for d, a in zip(details, data):
                it.set_tensor(d["index"], a)
            t0 = time.perf_counter_ns()
            it.invoke()
            node.times_us.append((time.perf_counter_ns() - t0) // 1000)
        done += 1
        if time.perf_counter() - start > budget_s:
            break
    return nodes, warnings


# --- formatting (stats_calculator.cc) -----------------------------------------------------------


def _f(width: int, value) -> str:
    if isinstance(value, float):
        return "\t" + f"{value:.3f}".rjust(width)
    return "\t" + str(value).rjust(width)


def _header(title: str, legacy: bool) -> str:
    s = f"============================== {title} ==============================\n"
    s += _f(24, "[node type]") + (_f(17, "[start]") if legacy else "") + _f(9, "[first]") + _f(9, "[avg ms]")
    s += _f(8, "[%]") + _f(8, "[cdf%]") + _f(10, "[mem KB]") + _f(9, "[times called]") + "\t[Name]"
    return s


def _short_stat(values: list[int]) -> str:
    return stat_line(values, percentiles=False)


def summary_text(nodes: list[NodeStat], legacy: bool = False, time_limit: int = 10) -> str:
    """``StatsCalculator::GetOutputString()`` for the given nodes (all with equal run counts)."""
    num_runs = min(len(n.times_us) for n in nodes) if nodes else 0
    totals = [sum(n.times_us[i] for n in nodes) for i in range(num_runs)]
    total_sum = sum(totals) or 1
    starts, acc = {}, 0.0
    for n in sorted(nodes, key=lambda n: n.run_order):
        starts[n.name] = acc / 1000.0
        acc += n.avg_us

    def block(title: str, ordered: list[NodeStat]) -> str:
        s = _header(title, legacy) + "\n"
        cum = 0.0
        for n in ordered:
            cum += sum(n.times_us)
            s += _f(24, n.node_type) + (_f(17, starts[n.name]) if legacy else "")
            s += _f(9, n.first_ms) + _f(9, n.avg_us / 1000.0)
            s += _f(7, sum(n.times_us) * 100.0 / total_sum) + "%" + _f(7, cum * 100.0 / total_sum) + "%"
            s += _f(10, 0.0) + _f(9, len(n.times_us) // max(1, num_runs)) + "\t" + n.name + "\n"
        return s + "\n"

    text = block("Run Order", sorted(nodes, key=lambda n: n.run_order))
    by_time = sorted(nodes, key=lambda n: (f"{n.avg_us:20.10f}", n.name), reverse=True)
    text += block("Top by Computation Time", by_time[:time_limit] if time_limit > 0 else by_time)
    text += f"Number of nodes executed: {len(nodes)}\n"
    text += "============================== Summary by node type ==============================\n"
    text += _f(24, "[Node type]") + _f(9, "[count]") + _f(10, "[avg ms]") + _f(11, "[avg %]")
    text += _f(11, "[cdf %]") + _f(10, "[mem KB]") + _f(10, "[times called]") + "\n"
    per_type: dict[str, list[int]] = {}
    for n in nodes:
        entry = per_type.setdefault(n.node_type, [0, 0, 0])
        entry[0] += 1
        entry[1] += int(sum(n.times_us) / max(1, num_runs))
        entry[2] += len(n.times_us) // max(1, num_runs)
    accumulated = sum(v[1] for v in per_type.values()) or 1
    cdf = 0.0
    by_time_then_name = sorted(per_type.items(), key=lambda kv: (kv[1][1], kv[0]), reverse=True)
    for node_type, (count, us, called) in by_time_then_name:
        pct = float(np.float32(us) / np.float32(accumulated) * np.float32(100.0))
        cdf = float(np.float32(cdf + pct))
        text += _f(24, node_type) + _f(9, count) + _f(10, us / 1000.0) + _f(10, pct) + "%"
        text += _f(10, cdf) + "%" + _f(10, 0.0) + _f(9, called) + "\n"
    text += "\n"
    text += f"Timings (microseconds): {_short_stat(totals)}\n"
    text += "Memory (bytes): count=0\n"
    text += f"{len(nodes)} nodes observed\n\n"
    return text


def init_summary_text(allocate_us: int, legacy: bool = False) -> str:
    """The 'Profiling Info for Benchmark Initialization' tables (AllocateTensors, timed)."""
    node = NodeStat("AllocateTensors", "AllocateTensors/0", 0, [allocate_us])
    return summary_text([node], legacy=legacy)
