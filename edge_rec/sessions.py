"""onnxruntime session factory with named device profiles."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnxruntime as ort

from edge_rec.bundle import Bundle, BundleError
from edge_rec.checks import positive_int

# SkipLayerNormFusion merges each residual Add into its LayerNorm; in the INT8 classifier's QDQ graph the unfused
# pair runs 8% faster at batch 1 and 32 alike (1 thread, AVX2; paired runs of 100 real titles), probabilities within
# 5e-5, the same labels.
DISABLED_OPTIMIZERS = ("SkipLayerNormFusion",)
# One thread stands in for a phone-class core, two for a tablet, all cores for a PC (DESIGN.md).
PROFILES = {"phone": 1, "tablet": 2, "pc": os.cpu_count() or 1}


def resolve_threads(profile: str = "phone", threads: int | None = None) -> int:
    if threads is not None:
        return positive_int("threads", threads)
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {sorted(PROFILES)}")
    return PROFILES[profile]


def bundle_session(bundle: Bundle, role: str, threads: int) -> tuple[ort.InferenceSession, Path]:
    """A session over the verified bytes of a bundle's model for `role` (read once, hashed, handed over): a model
    with external data cannot resolve it from bytes, so weights outside the signed files never load. The graph's
    inputs and outputs must be the ones the manifest declares."""
    path = bundle.model_file(role)
    session = make_session(path, threads, data=bundle.read(path.name))
    check_declared(session, path, bundle.model(role))
    return session, path


def check_declared(session: ort.InferenceSession, path: Path, model: dict) -> None:
    """The manifest's models.<role>.inputs / outputs against the graph: the same names, and every size both give
    as a number equal."""
    for side, found in (("inputs", session.get_inputs()), ("outputs", session.get_outputs())):
        graph = {x.name: x.shape for x in found}
        declared = {d["name"]: d["shape"] for d in model[side]}
        if set(graph) != set(declared):
            raise BundleError(f"{path}: the graph's {side} are {sorted(graph)}, the manifest declares "
                              f"{sorted(declared)}")
        for name, shape in declared.items():
            if len(shape) != len(graph[name]) or any(isinstance(a, int) and isinstance(b, int) and a != b
                                                     for a, b in zip(shape, graph[name])):
                raise BundleError(f"{path}: {side[:-1]} {name!r} has shape {graph[name]} in the graph, the manifest "
                                  f"declares {shape}")


def make_session(path: Path, threads: int = 1, providers: list[str] | None = None,
                 optimization: ort.GraphOptimizationLevel = ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
                 data: bytes | None = None) -> ort.InferenceSession:
    """A CPU session for the model at `path`, or for its bytes `data` (then `path` only names it in errors)."""
    providers = providers or ["CPUExecutionProvider"]
    available = ort.get_available_providers()
    unknown = [p for p in providers if p not in available]
    if unknown:
        raise ValueError(f"execution provider(s) {unknown} not available; this onnxruntime has {available}")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = optimization
    opts.log_severity_level = 4  # errors reach the caller as exceptions; a library prints nothing itself
    # Spinning worker threads burn a core between calls: wrong for a phone or an app that does other work.
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if data is not None and Path(path).suffix == ".ort":
        opts.add_session_config_entry("session.load_model_format", "ORT")
    try:
        return ort.InferenceSession(str(path) if data is None else data, opts, providers=providers,
                                    disabled_optimizers=list(DISABLED_OPTIMIZERS))
    except Exception as e:  # onnxruntime raises its own exception types for unreadable graphs
        hint = "; external data is not allowed in a bundle" if data is not None and "external" in str(e).lower() else ""
        raise BundleError(f"{path}: onnxruntime cannot load this model ({type(e).__name__}: "
                          f"{' '.join(str(e).split())[:300]}){hint}") from None


def check_io(session: ort.InferenceSession, path: Path, inputs: set[str], outputs: set[str]) -> None:
    """The session must take exactly the inputs the runtime feeds and give the outputs it reads."""
    have_in = {i.name for i in session.get_inputs()}
    have_out = {o.name for o in session.get_outputs()}
    if have_in != inputs:
        raise BundleError(f"{path}: model inputs are {sorted(have_in)}, expected {sorted(inputs)}")
    if not outputs <= have_out:
        raise BundleError(f"{path}: model outputs {sorted(outputs - have_out)} missing; it has {sorted(have_out)}")


def checked_output(out: np.ndarray, path, name: str, shape: tuple, probabilities: bool = False) -> np.ndarray:
    """A model's output `name` as the runtime reads it: of `shape` (None for a size not fixed), finite, and with
    `probabilities` within [0, 1]; else a RuntimeError naming the model file (the bundle's model is broken)."""
    if out.ndim != len(shape) or any(n is not None and a != n for a, n in zip(out.shape, shape)):
        raise RuntimeError(f"{path}: output {name!r} has shape {out.shape}, expected {shape}; the bundle's model is "
                           "broken")
    if not np.isfinite(out).all():
        raise RuntimeError(f"{path}: output {name!r} holds non-finite values; the bundle's model is broken")
    if probabilities and not ((out >= 0.0) & (out <= 1.0)).all():
        raise RuntimeError(f"{path}: output {name!r} holds values outside [0, 1]; the bundle's model is broken")
    return out
