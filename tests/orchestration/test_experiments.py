"""Experiment files: validation before anything runs, grid expansion, interleaving, overrides, skipping."""

import pytest

from medbench.errors import ConfigError
from medbench.orchestration.experiments import expand, load_experiment

GRID = """
name = "t"
[grid]
datasets = ["breastmnist", "pneumoniamnist"]
sizes = [28, 64]
frameworks = ["torch", "jax", "keras"]
models = ["simple_cnn"]
seeds = [0, 1]
[base.recipe]
epochs = 2
[[variants]]
name = "adam"
[[variants]]
name = "sgd"
set = { "recipe.optimizer.name" = "sgd", "recipe.optimizer.lr" = 0.01 }
"""


@pytest.fixture
def grid_file(tmp_path):
    path = tmp_path / "grid.toml"
    path.write_text(GRID)
    return path


def test_the_grid_expands_to_every_combination_with_resolved_configs(grid_file):
    trials = expand(load_experiment(grid_file))
    assert len(trials) == 2 * 2 * 2 * 2 * 3
    assert len({t.key for t in trials}) == len(trials)
    assert len({t.config_hash for t in trials}) == len(trials)
    sgd = [t for t in trials if t.variant == "sgd"]
    assert all(t.config.recipe.optimizer.name == "sgd" and t.config.recipe.optimizer.lr == 0.01 for t in sgd)
    assert all(t.config.recipe.epochs == 2 and t.config.tags["variant"] == t.variant for t in trials)


def test_frameworks_are_interleaved_not_blocked(grid_file):
    frameworks = [t.config.framework for t in expand(load_experiment(grid_file))]
    assert frameworks[:6] == ["torch", "jax", "keras"] * 2


def test_keras_backends_are_grid_frameworks_of_their_own(grid_file):
    spec = load_experiment(grid_file, [("grid.frameworks", ["keras", "keras-jax", "keras-torch"])])
    trials = expand(spec)
    assert [t.config.framework for t in trials[:3]] == ["keras", "keras-jax", "keras-torch"]
    assert len({t.config_hash for t in trials}) == len(trials)  # a backend is part of what a trial is
    with pytest.raises(ConfigError, match="keras-tf"):
        load_experiment(grid_file, [("grid.frameworks", ["keras-tf"])])


def test_overrides_change_any_field(grid_file):
    spec = load_experiment(grid_file, [("grid.frameworks", ["jax"]), ("base.recipe.epochs", 7)])
    trials = expand(spec)
    assert {t.config.framework for t in trials} == {"jax"} and trials[0].config.recipe.epochs == 7


def test_data_files_are_applied_per_dataset(grid_file, tmp_path):
    spec = load_experiment(grid_file, [("data_files.breastmnist", str(tmp_path / "b.npz"))])
    trials = expand(spec)
    assert all(
        str(t.config.data.data_file) == str(tmp_path / "b.npz")
        for t in trials
        if t.config.data.dataset == "breastmnist"
    )
    assert all(t.config.data.data_file is None for t in trials if t.config.data.dataset == "pneumoniamnist")


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ('datasets = ["breastmnist", "pneumoniamnist"]', None),
        ('datasets = ["breastmnst"]', "Did you mean breastmnist"),
        ("sizes = [28, 64]", None),
        ("sizes = [32]", "28, 64, 128, 224"),
        ('models = ["simple_cnn"]', None),
        ('models = ["vgg"]', "Unknown model"),
    ],
)
def test_a_mistake_anywhere_in_the_grid_is_reported_before_anything_runs(tmp_path, patch, message):
    key = patch.split(" = ")[0]
    text = "\n".join(patch if line.startswith(key + " =") else line for line in GRID.splitlines())
    path = tmp_path / "bad.toml"
    path.write_text(text)
    if message is None:
        assert expand(load_experiment(path))
        return
    with pytest.raises(Exception, match=message):
        expand(load_experiment(path))


def test_unknown_fields_and_bad_syntax_are_clear(tmp_path):
    path = tmp_path / "x.toml"
    path.write_text('name = "x"\n[grid]\ndatasets = ["breastmnist"]\nframworks = ["torch"]\n')
    with pytest.raises(ConfigError, match="grid.framworks"):
        load_experiment(path)
    path.write_text('name = "x\n')
    with pytest.raises(ConfigError, match="cannot be parsed"):
        load_experiment(path)
    with pytest.raises(ConfigError, match="shipped experiments: .*quick"):
        load_experiment(tmp_path / "missing.toml")


def test_every_shipped_experiment_is_valid():
    from medbench.orchestration.experiments import SHIPPED_DIR

    files = sorted(SHIPPED_DIR.glob("*.toml"))
    assert any(f.stem == "quick" for f in files)
    for path in files:
        assert expand(load_experiment(path)), path


PER_FRAMEWORK = """
[base.runtime]
threads = 2
[per_framework.torch.runtime]
compile = true
[per_framework.torch.runtime.settings]
onednn = false
[per_framework.jax.runtime.settings]
xla_flags = "--xla_cpu_use_onednn=true"
"""


def test_per_framework_runtime_sections_reach_only_their_frameworks_trials(grid_file):
    grid_file.write_text(GRID + PER_FRAMEWORK)
    trials = expand(load_experiment(grid_file))
    runtime = {t.config.framework: t.config.runtime for t in trials}
    assert runtime["torch"].compile is True and runtime["torch"].settings == {"onednn": False}
    assert (
        runtime["jax"].settings == {"xla_flags": "--xla_cpu_use_onednn=true"}
        and runtime["jax"].compile is None
    )
    assert runtime["keras"].compile is None and runtime["keras"].settings == {}
    assert {r.threads for r in runtime.values()} == {2}  # merged over the base, section by section
    sgd = next(t for t in trials if t.variant == "sgd" and t.config.framework == "torch")
    assert sgd.config.runtime.compile is True  # variants go on top of the framework's section


def test_per_framework_sections_are_checked_before_anything_runs(grid_file):
    grid_file.write_text(GRID + "[per_framework.mxnet.runtime]\ncompile = true\n")
    with pytest.raises(ConfigError, match="mxnet"):
        load_experiment(grid_file)
    # a setting that belongs to another framework is refused with the trial it would reach
    grid_file.write_text(
        GRID + '[per_framework.torch.runtime.settings]\nxla_flags = "--xla_cpu_use_onednn=true"\n'
    )
    with pytest.raises(ConfigError, match="torch.*xla_flags is a setting of jax"):
        expand(load_experiment(grid_file))


def test_the_benchmark_times_the_grid_sizes_or_its_own(grid_file, monkeypatch, tmp_path):
    """Training at 28/64 px and timing inference up to 224 px is one experiment (the BloodMNIST study on CPU)."""
    import medbench.bench.session as session
    from medbench.orchestration.runs import run_bench
    from medbench.results import ResultsStore

    asked = []
    monkeypatch.setattr(session, "run_session", lambda config, **_: asked.append(config.sizes) or _NoRecords())
    store = ResultsStore(tmp_path / "r.sqlite")
    for overrides, sizes in [([], (28, 64)), ([("measure.bench.sizes", [28, 64, 128, 224])], (28, 64, 128, 224))]:
        spec = load_experiment(grid_file, [("measure.bench.batch_sizes", [1]), *overrides])
        run_bench(spec, store, rerun=True, echo=lambda _: None)
        assert tuple(asked[-1]) == sizes
    with pytest.raises(ConfigError, match="benchmark size"):
        load_experiment(grid_file, [("measure.bench.sizes", [32])])


class _NoRecords:
    records: list = []
