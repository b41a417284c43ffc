"""One colour, marker and place in the order per framework, shared by every plot and table medbench draws
(report and ``medbench bench``).

Training plots are per framework, inference plots per engine; an engine takes its framework's colour (and
marker), and engines of one framework are told apart by their line style. So "torch" is the same red in the
accuracy curve, the time-per-epoch bars, the latency lines and the cold-start bars. No matplotlib import
here: the table is plain data.
"""

from __future__ import annotations

import zlib

# Display and plot order; a framework not listed sorts after these, alphabetically.
FRAMEWORK_ORDER: tuple[str, ...] = ("torch", "jax", "keras", "keras-jax", "keras-torch")
# Colour-blind-safe-ish and distinct in grey print thanks to the markers. The Keras backends are separate
# frameworks (Keras 3 on JAX and on torch train and predict with their backend's kernels), so they get
# colours of their own rather than shades of Keras/TensorFlow's green that readers could not tell apart.
FRAMEWORK_STYLES: dict[str, tuple[str, str]] = {
    "torch": ("#e4572e", "o"),
    "jax": ("#2d6cdf", "s"),
    "keras": ("#2a9d59", "^"),
    "keras-jax": ("#8e5cc4", "v"),
    "keras-torch": ("#a0672b", "D"),
    "onnxruntime": ("#5f6b7a", "X"),
}
# Any other name (a framework added later): one of these, chosen from the name itself, so that it too keeps
# its colour from plot to plot (an order of appearance would change with the runs a plot holds).
_FALLBACK_COLOURS = ("#e377c2", "#bcbd22", "#17becf", "#7f7f7f")
_FALLBACK_MARKERS = ("P", "<", ">", "h")
# Engines of one framework in one plot: solid, dashed, dotted, dash-dotted.
LINE_STYLES = ("-", "--", ":", "-.")
# Engine name prefixes that run on a Keras backend (see medbench.bench.engines): bench rows stored before
# keras-jax and keras-torch were frameworks of their own record these engines' framework as "keras", yet
# they compute with JAX or torch kernels; the prefix gives them their backend's colour either way.
_ENGINE_PREFIXES: tuple[tuple[str, str], ...] = (
    ("keras-jax", "keras-jax"),
    ("keras-torch", "keras-torch"),
    ("keras-tf", "keras"),
    ("onnx-", "onnxruntime"),
)


def framework_sort_key(name: str) -> tuple[int, str]:
    """Display order of a report row: by framework, a tuned row (``torch (tuned: compile)``) right after its
    framework's out-of-the-box row."""
    base = name.split(" (", 1)[0]
    return (FRAMEWORK_ORDER.index(base) if base in FRAMEWORK_ORDER else len(FRAMEWORK_ORDER), name)


def framework_style(name: str) -> tuple[str, str]:
    """(colour, marker) of a framework, the same wherever it is drawn."""
    if name in FRAMEWORK_STYLES:
        return FRAMEWORK_STYLES[name]
    index = zlib.crc32(name.encode())  # stable across processes, unlike hash()
    return _FALLBACK_COLOURS[index % len(_FALLBACK_COLOURS)], _FALLBACK_MARKERS[
        index % len(_FALLBACK_MARKERS)
    ]


def engine_framework(engine: str, framework: str | None = None) -> str:
    """The framework whose colour an inference engine wears: its backend for Keras engines, else the
    framework the row names, else the engine name's first part (``torch-eager`` -> ``torch``)."""
    for prefix, name in _ENGINE_PREFIXES:
        if engine.startswith(prefix):
            return name
    return framework or engine.split("-")[0]


def engine_styles(engines: list[str], frameworks: dict[str, str | None] | None = None) -> dict[str, dict]:
    """Matplotlib keyword arguments (``color``, ``marker``, ``linestyle``) per engine, in the given order."""
    frameworks = frameworks or {}
    seen: dict[str, int] = {}
    styles = {}
    for engine in engines:
        fw = engine_framework(engine, frameworks.get(engine))
        colour, marker = framework_style(fw)
        nth = seen.get(fw, 0)
        seen[fw] = nth + 1
        styles[engine] = {"color": colour, "marker": marker, "linestyle": LINE_STYLES[nth % len(LINE_STYLES)]}
    return styles
