"""The catalog of performance settings: consistent entries, framework-free, and what tune and reports read."""

from __future__ import annotations

import subprocess
import sys

import pytest

from medbench.errors import ConfigError
from medbench.frameworks import FRAMEWORKS
from medbench.frameworks import settings as catalog


def test_every_framework_has_a_compile_choice_and_only_known_frameworks_have_settings():
    assert set(catalog.COMPILE) == set(FRAMEWORKS) == set(catalog.FRAMEWORKS)
    for setting in catalog.SETTINGS:
        assert setting.frameworks and set(setting.frameworks) <= set(FRAMEWORKS), setting.name
        assert setting.what and setting.how, f"{setting.name} is undocumented"
        assert setting.check(setting.default) == setting.default  # the default is one of its values
        for value in setting.probe:
            assert value != setting.default and setting.check(value) == value
    assert len({s.name for s in catalog.SETTINGS}) == len(catalog.SETTINGS)


def test_the_catalog_imports_no_framework():
    code = "import sys, medbench.frameworks.settings, medbench.config; print(sorted(m for m in "
    code += "('torch', 'jax', 'tensorflow', 'keras', 'flax') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_unknown_settings_are_refused_naming_the_known_ones():
    with pytest.raises(ConfigError) as err:
        catalog.check_settings({"channels_last": False})  # a RuntimeConfig field, not a setting
    message = str(err.value)
    assert "channels_last" in message and all(s.name in message for s in catalog.SETTINGS)


def test_resolved_fills_in_the_defaults_of_the_framework_only():
    assert catalog.resolved({}, "torch") == {"onednn": True}
    assert catalog.resolved({"xla_flags": "--xla_cpu_use_onednn=true"}, "jax") == {
        "xla_flags": "--xla_cpu_use_onednn=true",
        "small_map_conv": "xla",
    }
    with pytest.raises(ConfigError, match="small_map_conv is a setting of jax, not keras-jax"):
        catalog.resolved({"small_map_conv": "matmul"}, "keras-jax")


def test_compile_resolves_to_each_frameworks_default():
    assert {f: catalog.check_compile(None, f) for f in FRAMEWORKS} == {
        "torch": False,
        "jax": True,
        "keras": False,  # Keras' jit_compile="auto" on a CPU: no XLA
        "keras-jax": True,
        "keras-torch": False,
    }
    assert catalog.compile_mode(None, "torch") == "eager"
    assert "XLA" in catalog.compile_mode(True, "keras")


def test_tune_probes_each_choice_once_against_out_of_the_box():
    torch = catalog.tune_candidates("torch")
    assert [c.label for c in torch] == ["out of the box", "compile", "channels_last=off", "onednn=off"]
    assert torch[0].overrides == {} and torch[1].overrides == {"runtime.compile": True}
    jax = {c.label: c.overrides for c in catalog.tune_candidates("jax")}
    assert "compile" not in jax  # always jitted: nothing to probe
    assert jax["small_map_conv=matmul"] == {"runtime.settings.small_map_conv": "matmul"}
    for framework in FRAMEWORKS:  # every probe is a valid run config of its framework
        from medbench.config import parse_config, set_dotted

        for candidate in catalog.tune_candidates(framework):
            raw = {"framework": framework}
            for dotted, value in candidate.overrides.items():
                raw = set_dotted(raw, dotted, value)
            parse_config(raw)


def test_tuned_choices_name_what_differs_from_out_of_the_box():
    assert catalog.tuned_choices({"compile": None, "settings": {}, "channels_last": True}, "torch") == []
    assert catalog.tuned_choices({"compile": True}, "jax") == []  # JAX is always jitted
    assert catalog.tuned_choices({"compile": True, "settings": {"onednn": True}}, "torch") == ["compile"]
    words = catalog.tuned_choices({"channels_last": False, "settings": {"onednn": False}}, "torch")
    assert words == ["channels_last=off", "onednn=off"]
    assert catalog.tuned_choices({"channels_last": False}, "jax") == []  # ignored outside PyTorch
    assert catalog.tuned_choices({"compile": False}, "keras-jax") == ["no compile"]
