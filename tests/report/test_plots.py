"""The plots' defects, one test each: colours per framework, error bars, ticks, titles, legends, empty plots.

Figures are caught just before they are written (``to_png`` / ``_save`` wrapped), so the tests read the
matplotlib objects themselves: tick labels, containers, the legend's and title's extents.
"""

from __future__ import annotations

import io

import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_hex
from matplotlib.container import ErrorbarContainer
from PIL import Image

from medbench.bench import plots as bench_plots
from medbench.bench.summary import aggregate
from medbench.report import plots
from medbench.report.style import FRAMEWORK_STYLES, engine_framework, engine_styles, framework_style
from tests.bench.rows import row


@pytest.fixture
def caught(monkeypatch) -> list:
    """Every figure the report's and the benchmark's plot functions finish, in order."""
    figures: list = []
    to_png, save = plots.to_png, bench_plots._save

    def catch_png(fig):
        figures.append(fig)
        return to_png(fig)

    def catch_save(fig, path, **kwargs):
        out = save(fig, path, **kwargs)
        FigureCanvasAgg(fig).draw()  # pyplot closed its window; a fresh canvas measures the same layout
        figures.append(fig)
        return out

    monkeypatch.setattr(plots, "to_png", catch_png)
    monkeypatch.setattr(bench_plots, "_save", catch_save)
    return figures


def _cells(sizes=(28,), batches=(1, 64), engines=("torch-eager", "jax-jit", "keras-tf-xla")):
    rows = [
        row(e, s, p50=(i + 1) * s / 28, throughput={b: 100.0 * b / (i + 1) for b in batches})
        for i, e in enumerate(engines)
        for s in sizes
    ]
    return aggregate(rows)


# ---- one colour per framework -----------------------------------------------------------------------------


def test_an_engine_wears_its_frameworks_colour_and_engines_of_one_framework_differ_by_line():
    styles = engine_styles(["torch-eager", "torch-compile", "jax-jit", "keras-jax-jit", "keras-torch-eager"])
    assert styles["torch-eager"]["color"] == styles["torch-compile"]["color"] == FRAMEWORK_STYLES["torch"][0]
    assert styles["torch-eager"]["linestyle"] != styles["torch-compile"]["linestyle"]
    assert styles["jax-jit"]["color"] == FRAMEWORK_STYLES["jax"][0]
    # Keras on the JAX and torch backends are frameworks of their own, in colours of their own
    assert engine_framework("keras-jax-jit", "keras") == "keras-jax"
    assert engine_framework("keras-tf-xla", "keras") == "keras"
    colours = {framework_style(f)[0] for f in ("torch", "jax", "keras", "keras-jax", "keras-torch")}
    assert len(colours) == 5
    assert framework_style("mxnet") == framework_style("mxnet")  # an unknown name: stable, not by position


def _colours_in(png) -> set[str]:
    """Every colour of a PNG (a path or its bytes), as hex."""
    image = Image.open(io.BytesIO(png) if isinstance(png, bytes) else png).convert("RGB")
    return {to_hex([v / 255 for v in rgb]) for _, rgb in image.getcolors(maxcolors=1 << 20)}


def test_inference_plots_use_the_training_plots_colours(tmp_path):
    path = bench_plots.plot_throughput_vs_batch(_cells(), "simple_cnn", tmp_path / "t.png")
    colours = _colours_in(path)
    assert {FRAMEWORK_STYLES[f][0] for f in ("torch", "jax", "keras")} <= colours
    assert "#1f77b4" not in colours  # matplotlib's default blue: colours by position, not by framework
    png = plots.grouped_bars(["a"], {"torch": [1.0], "jax": [2.0]}, title="t", ylabel="s")
    assert FRAMEWORK_STYLES["torch"][0] in _colours_in(png)


# ---- a plot only when it has something to show -----------------------------------------------------------


def test_latency_vs_size_needs_two_sizes_and_throughput_two_batch_sizes(tmp_path):
    assert bench_plots.plot_latency_vs_size(_cells(sizes=(28,)), "simple_cnn", tmp_path / "l.png") is None
    assert bench_plots.plot_latency_vs_size(_cells(sizes=(28, 64)), "simple_cnn", tmp_path / "l.png")
    one_batch = _cells(batches=(1,))
    assert bench_plots.plot_throughput_vs_batch(one_batch, "simple_cnn", tmp_path / "t.png") is None
    single = _cells(engines=("torch-eager",))
    assert bench_plots.plot_cold_start(single, "simple_cnn", tmp_path / "c.png") is None


# ---- axes, titles, legends --------------------------------------------------------------------------------


def _labelled_ticks(axis, low: float, high: float) -> list[str]:
    return [
        t.get_text() for t in axis.get_ticklabels() if t.get_text() and low <= t.get_position()[1] <= high
    ]


def test_the_latency_plot_labels_its_y_axis_within_a_decade(caught, tmp_path):
    # 2 to 9 ms: less than a decade, where a plain log axis labels no tick at all
    bench_plots.plot_latency_vs_size(_cells(sizes=(28, 64)), "simple_cnn", tmp_path / "l.png")
    ax = caught[-1].axes[0]
    low, high = ax.get_ylim()
    assert len(_labelled_ticks(ax.yaxis, low, high)) >= 2
    assert ax.get_ylabel() and ax.get_xlabel()


def _inside(inner, outer, slack: float = 1.0) -> bool:
    return (
        inner.x0 >= outer.x0 - slack
        and inner.x1 <= outer.x1 + slack
        and inner.y0 >= outer.y0 - slack
        and inner.y1 <= outer.y1 + slack
    )


def test_the_throughput_title_fits_and_its_legend_covers_no_axes(caught, tmp_path):
    bench_plots.plot_throughput_vs_batch(_cells(sizes=(28,)), "simple_cnn", tmp_path / "t.png")
    fig = caught[-1]
    renderer = fig.canvas.get_renderer()
    page = fig.bbox
    assert _inside(fig._suptitle.get_window_extent(renderer), page)
    legend = fig.legends[0].get_window_extent(renderer)
    assert _inside(legend, page)
    assert not any(legend.overlaps(ax.get_window_extent(renderer)) for ax in fig.axes)
    ax = fig.axes[0]
    assert len(_labelled_ticks(ax.yaxis, *ax.get_ylim())) >= 2


# ---- no error bars for one seed ---------------------------------------------------------------------------


def _error_bars(ax) -> list[int]:
    """Points with an error bar, per errorbar call."""
    return [len(c.lines[2][0].get_segments()) for c in ax.containers if isinstance(c, ErrorbarContainer)]


def test_one_seed_draws_no_error_bar_and_several_seeds_do(caught):
    one = {"torch": [plots.Point(28, "28", 90.0), plots.Point(64, "64", 91.0)]}
    plots.accuracy_vs_size(one, title="t")
    assert _error_bars(caught[-1].axes[0]) == []
    mixed = {"torch": [plots.Point(28, "28", 90.0, 1.0), plots.Point(64, "64", 91.0)]}
    plots.accuracy_vs_size(mixed, title="t")
    assert _error_bars(caught[-1].axes[0]) == [1]
    plots.grouped_bars(["a", "b"], {"jax": [1.0, 2.0]}, errors={"jax": [None, None]}, title="t", ylabel="s")
    assert _error_bars(caught[-1].axes[0]) == []
    plots.grouped_bars(["a", "b"], {"jax": [1.0, 2.0]}, errors={"jax": [0.1, None]}, title="t", ylabel="s")
    assert _error_bars(caught[-1].axes[0]) == [1]


def test_training_curves_draw_a_band_only_over_several_seeds(caught):
    plots.training_curves({"torch": [[(1, 97.0), (2, 98.0)]]}, title="t")
    assert len(caught[-1].axes[0].collections) == 0  # no zero-width band for n=1
    plots.training_curves({"torch": [[(1, 97.0), (2, 98.0)], [(1, 96.0), (2, 98.5)]]}, title="t")
    assert len(caught[-1].axes[0].collections) == 1


def test_one_benchmark_repeat_draws_no_min_max_bars_and_says_so(caught, tmp_path):
    bench_plots.plot_latency_vs_size(_cells(sizes=(28, 64)), "simple_cnn", tmp_path / "l.png")
    ax = caught[-1].axes[0]
    assert _error_bars(ax) == [] and "one repeat" in ax.get_title()
    repeated = aggregate(
        [row(e, s, p50=p) for e in ("torch-eager", "jax-jit") for s in (28, 64) for p in (1.0, 1.5)]
    )
    bench_plots.plot_latency_vs_size(repeated, "simple_cnn", tmp_path / "l2.png")
    ax = caught[-1].axes[0]
    assert _error_bars(ax) == [2, 2] and "bars min-max" in ax.get_title()
