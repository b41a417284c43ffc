"""Same answers first: an engine's logits against the reference's, on the same weights and inputs.

An engine is timed only if its outputs match PyTorch eager fp32 within tolerance (``|out - ref| <= atol +
rtol * |ref|`` elementwise, numpy's ``allclose`` rule); otherwise it is reported as ``wrong`` with the
difference. A fast engine that returns wrong answers is not a result. Numpy only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class CheckResult:
    """How far an engine's outputs are from the reference's, and whether that is within tolerance."""

    ok: bool
    max_abs_diff: float
    max_rel_diff: float  # |diff| / |ref|, over elements whose reference is not tiny
    argmax_agreement: float  # share of rows with the same top class
    atol: float
    rtol: float
    problem: str | None = None  # why ok is False, in words

    def to_dict(self, prefix: str = "check_") -> dict[str, float | bool | str | None]:
        names = ("ok", "max_abs_diff", "max_rel_diff", "argmax_agreement", "atol", "rtol", "problem")
        return {f"{prefix}{name}": getattr(self, name) for name in names}


def compare(outputs: np.ndarray, reference: np.ndarray, *, atol: float, rtol: float) -> CheckResult:
    """Compares ``outputs`` with ``reference`` (both ``(batch, classes)``)."""
    outputs = np.asarray(outputs)
    reference = np.asarray(reference, dtype=np.float64)
    if outputs.shape != reference.shape:
        return CheckResult(
            False,
            float("inf"),
            float("inf"),
            0.0,
            atol,
            rtol,
            f"output shape {outputs.shape} != reference shape {reference.shape}",
        )
    values = outputs.astype(np.float64)
    if not np.all(np.isfinite(values)):
        bad = int(np.sum(~np.isfinite(values)))
        return CheckResult(False, float("inf"), float("inf"), 0.0, atol, rtol, f"{bad} non-finite output(s)")
    diff = np.abs(values - reference)
    scale = np.abs(reference)
    significant = scale > max(atol, 1e-12)
    max_rel = float(np.max(diff[significant] / scale[significant])) if significant.any() else 0.0
    agreement = float(np.mean(values.argmax(axis=-1) == reference.argmax(axis=-1))) if values.size else 1.0
    within = diff <= atol + rtol * scale
    result_ok = bool(np.all(within))
    problem = None
    if not result_ok:
        worst = np.unravel_index(int(np.argmax(diff - (atol + rtol * scale))), diff.shape)
        problem = (
            f"max |diff| {float(diff.max()):.3g} (max relative {max_rel:.3g}), beyond atol {atol:g} + "
            f"rtol {rtol:g} x |ref| at {tuple(int(i) for i in worst)}; top class agrees on {agreement:.0%}"
        )
    return CheckResult(result_ok, float(diff.max(initial=0.0)), max_rel, agreement, atol, rtol, problem)


def merge(results: list[CheckResult]) -> CheckResult:
    """One result for several batches: the worst of each figure; ok only if every batch is."""
    if not results:
        raise ValueError("no check results to merge")
    failing = [r for r in results if not r.ok]
    return CheckResult(
        ok=not failing,
        max_abs_diff=max(r.max_abs_diff for r in results),
        max_rel_diff=max(r.max_rel_diff for r in results),
        argmax_agreement=min(r.argmax_agreement for r in results),
        atol=results[0].atol,
        rtol=results[0].rtol,
        problem=failing[0].problem if failing else None,
    )
