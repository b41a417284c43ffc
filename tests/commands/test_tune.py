"""``medbench tune``: rounds over the settings, the best one, its output formats and ``--write``.

The probes are faked (each setting has a known speed), so these tests check tune's logic and output, not
this machine; the probe itself is tested with a real framework in ``tests/bench/test_train_probe.py``.
"""

from __future__ import annotations

import json

import pytest
import tomllib

from medbench import cli
from medbench.bench import tune
from medbench.bench.train_probe import ProbeResult
from medbench.orchestration.experiments import expand, load_experiment

# img/s by what the probe's runtime sets: compile and oneDNN-off win, channels_last=off loses
SPEEDS = {"compile": 1500.0, "channels_last": 900.0, "onednn": 1200.0}


def fake_probe(calls):
    def probe(config, **_):
        runtime = config.runtime
        calls.append(runtime)
        speed = 1000.0
        if runtime.compile:
            speed = max(speed, SPEEDS["compile"])
        if not runtime.channels_last:
            speed = SPEEDS["channels_last"]
        if runtime.settings.get("onednn") is False:
            speed = max(speed, SPEEDS["onednn"]) + (100.0 if runtime.compile else 0.0)
        speed += len(calls) % 3  # a little spread between repeats
        return ProbeResult("completed", "bare", speed, {"images_per_s": speed})

    return probe


def test_tune_probes_in_rounds_and_combines_the_winners():
    calls = []
    result = tune.run_tune("torch", repeats=2, threads=1, probe=fake_probe(calls))
    labels = [r.label for r in result.rows]
    assert labels == ["out of the box", "compile", "channels_last=off", "onednn=off", "compile + onednn=off"]
    # rounds over the candidates (A B C D A B C D), then the combination's repeats
    order = [(r.compile, r.channels_last, r.settings.get("onednn")) for r in calls]
    assert order[:4] == order[4:8] and len(calls) == 4 * 2 + 2
    assert all(r.threads == 1 for r in calls)
    assert result.best.label == "compile + onednn=off"
    assert result.best_runtime() == {"compile": True, "settings": {"onednn": False}}
    assert result.ratio(result.rows[2]) < 1 < result.ratio(result.rows[1])
    assert all(row.summary.n == 2 for row in result.rows)


def test_a_failing_probe_is_a_row_with_its_reason_never_the_best():
    def probe(config, **_):
        if config.runtime.compile:
            return ProbeResult("failed", "bare", None, {}, reason="no C++ compiler")
        return ProbeResult("completed", "bare", 1000.0, {"images_per_s": 1000.0})

    result = tune.run_tune("keras", repeats=1, probe=probe)
    failed = next(r for r in result.rows if r.label == "compile")
    assert failed.status == "failed" and failed.reason == "no C++ compiler" and failed.summary is None
    assert result.best.label in ("out of the box", "tf_onednn=off")


def test_a_gain_within_the_noise_keeps_out_of_the_box():
    def probe(config, **_):
        flags = config.runtime.settings.get("xla_flags", "")
        rate = {"--xla_cpu_use_onednn=true": 1010.0, "--xla_cpu_use_xnnpack=true": 1300.0}.get(flags, 1000.0)
        return ProbeResult("completed", "bare", rate, {"images_per_s": rate})

    result = tune.run_tune("keras-jax", repeats=1, probe=probe)
    assert result.best.label == "xla_flags=--xla_cpu_use_xnnpack=true"  # 30% faster: chosen
    onednn = next(r for r in result.rows if "onednn" in r.label)
    assert not tune.beats(onednn, result.baseline)  # 1% faster: noise
    assert len(result.rows) == 4  # one winner: no combination to probe
    slower = tune.run_tune(
        "keras-jax", repeats=1, probe=lambda config, **_: ProbeResult("completed", "bare", 900.0)
    )
    assert slower.best is slower.baseline and slower.best_runtime() == {}


def test_xla_flags_of_several_winners_add_up():
    rows = [tune.TuneRow(c) for c in tune.tune_candidates("jax")]
    for row, speed in zip(rows, (100.0, 150.0, 140.0, 90.0, 80.0), strict=True):
        row.results.append(ProbeResult("completed", "bare", speed))
    together = tune.combination(rows, rows[0])
    assert together.overrides == {
        "runtime.settings.xla_flags": "--xla_cpu_use_onednn=true --xla_cpu_use_xnnpack=true"
    }


def _cli(args, capsys, monkeypatch, calls):
    monkeypatch.setattr(tune, "run_probe", fake_probe(calls))
    code = cli._run(["tune", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize("fmt", ["json", "csv", "table"])
def test_tune_prints_every_setting_with_its_spread_and_the_best(fmt, capsys, monkeypatch):
    code, out, err = _cli(["torch", "--repeats", "3", "--format", fmt], capsys, monkeypatch, [])
    assert code == 0, err
    if fmt == "json":
        rows = {r["setting"]: r for r in json.loads(out)}
        assert set(rows) >= {"out of the box", "compile", "onednn=off", "compile + onednn=off"}
        best = rows["compile + onednn=off"]
        assert best["best"] == "best" and best["ratio_to_out_of_the_box"] > 1.5
        assert best["images_per_s_min"] <= best["images_per_s_q25"] <= best["images_per_s"]
        assert best["images_per_s"] <= best["images_per_s_q75"] <= best["images_per_s_max"]
        assert rows["compile"]["overrides"] == "runtime.compile=true" and rows["compile"]["status"] == "ok"
        assert "best: compile + onednn=off" in err and "[3/3]" in err  # notes stay off stdout
    elif fmt == "csv":
        header = out.splitlines()[0].split(",")
        assert header[:6] == ["setting", "images_per_s", "images_per_s_q25", "images_per_s_q75"] + [
            "images_per_s_min",
            "images_per_s_max",
        ]
    else:
        assert "x out of the box" in out and "best: compile + onednn=off" in out


def test_write_creates_an_experiment_that_runs_the_tuned_settings(tmp_path, capsys, monkeypatch):
    target = tmp_path / "study.toml"
    code, _, err = _cli(["torch", "-s", "64", "-b", "32", "--write", str(target)], capsys, monkeypatch, [])
    assert code == 0, err
    (trial,) = expand(load_experiment(target))
    assert (trial.config.framework, trial.config.data.size, trial.config.recipe.batch_size) == (
        "torch",
        64,
        32,
    )
    assert trial.config.runtime.compile is True and trial.config.runtime.settings == {"onednn": False}


def test_write_replaces_the_frameworks_tuned_fields_and_keeps_the_rest(tmp_path, capsys, monkeypatch):
    target = tmp_path / "study.toml"
    target.write_text(
        '# my study\nname = "mine"\n[grid]\ndatasets = ["breastmnist"]\nframeworks = ["torch", "jax"]\n'
        "[per_framework.torch.runtime]\nthreads = 1\nchannels_last = false\n"
        '[per_framework.jax.runtime.settings]\nxla_flags = "--xla_cpu_use_onednn=true"\n'
    )
    for _ in range(2):  # writing twice leaves one set of tables
        code, _, err = _cli(["torch", "--repeats", "1", "--write", str(target)], capsys, monkeypatch, [])
        assert code == 0, err
    text = target.read_text()
    assert text.startswith("# my study") and text.count("[per_framework.torch.runtime]") == 1
    assert text.count("# medbench tune:") == 1
    torch = tomllib.loads(text)["per_framework"]["torch"]["runtime"]
    assert torch == {
        "threads": 1,
        "compile": True,
        "settings": {"onednn": False},
    }  # channels_last: tuned away
    jax = tomllib.loads(text)["per_framework"]["jax"]["runtime"]["settings"]
    assert jax == {"xla_flags": "--xla_cpu_use_onednn=true"}


def test_write_leaves_a_file_it_cannot_edit_as_it_was(tmp_path, capsys, monkeypatch):
    target = tmp_path / "inline.toml"
    inline = "per_framework = { torch = { runtime = { compile = false } } }\n"
    original = f'name = "x"\n{inline}[grid]\ndatasets = ["breastmnist"]\n'
    target.write_text(original)
    code, _, err = _cli(["torch", "--repeats", "1", "--write", str(target)], capsys, monkeypatch, [])
    assert code == 2 and "file is unchanged" in err
    assert target.read_text() == original


def test_an_unknown_framework_is_refused_before_any_probe(capsys, monkeypatch):
    calls = []
    code, _, err = _cli(["mxnet"], capsys, monkeypatch, calls)
    assert code == 2 and "framework" in err and not calls
