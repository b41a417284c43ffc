"""Run configs: baseline defaults, validation messages that name the field, stable hashes."""

import pytest

from medbench.config import RunConfig, parse_config, set_dotted
from medbench.errors import ConfigError, UnknownDatasetError


def test_defaults_are_the_official_medmnist_baseline():
    c = RunConfig()
    assert (c.recipe.optimizer.name, c.recipe.optimizer.lr, c.recipe.batch_size, c.recipe.epochs) == (
        "adam",
        1e-3,
        128,
        100,
    )
    assert (c.recipe.schedule.kind, c.recipe.schedule.milestones, c.recipe.schedule.gamma) == (
        "step",
        (0.5, 0.75),
        0.1,
    )
    assert c.data.normalize == "official" and not c.data.augment.enabled
    assert c.recipe.select_metric == "val_auc"


def test_hash_ignores_key_order_and_changes_with_any_value():
    a = parse_config({"model": "resnet18", "seed": 1, "data": {"dataset": "bloodmnist", "size": 64}})
    b = parse_config({"data": {"size": 64, "dataset": "BloodMNIST"}, "seed": 1, "model": "resnet18"})
    assert a.hash == b.hash
    assert parse_config(set_dotted(a.to_dict(), "recipe.epochs", 3)).hash != a.hash


def test_errors_name_each_bad_field():
    with pytest.raises(ConfigError) as err:
        parse_config({"recipe": {"epochs": 0, "optimizer": {"name": "rmsprop"}}, "framework": "mxnet"})
    message = str(err.value)
    assert "recipe.epochs" in message and "recipe.optimizer.name" in message and "framework" in message


def test_unknown_names_are_rejected_with_suggestions():
    with pytest.raises(UnknownDatasetError, match="dermamnist"):
        parse_config({"data": {"dataset": "derma"}})
    with pytest.raises(ConfigError, match="resnet18"):
        parse_config({"model": "resnet19"})
    with pytest.raises(ConfigError, match="data.size"):
        parse_config({"data": {"size": 32}})
    with pytest.raises(ConfigError, match="unknown_field|Extra inputs"):
        parse_config({"unknown_field": 1})


def test_class_weights_must_match_the_dataset():
    with pytest.raises(ConfigError, match="2 values but pathmnist has 9"):
        parse_config({"recipe": {"class_weights": [1.0, 2.0]}})


def test_config_is_frozen():
    c = RunConfig()
    with pytest.raises(Exception, match="frozen"):
        c.seed = 3


def test_hash_of_a_default_config_is_the_one_stored_before_finetuning_existed():
    """Runs stored before the `finetune` section and `recipe.sampler` existed keep their hashes (resume/skip)."""
    from medbench.config import config_hash

    # init/noise "native" is what every run did before those fields existed (their default is now "shared")
    raw = {"data": {"dataset": "bloodmnist"}, "recipe": {"epochs": 3}, "init": "native", "noise": "native"}
    config = parse_config(raw)
    old_layout = config.to_dict()
    del old_layout["finetune"]
    del old_layout["recipe"]["sampler"]
    del old_layout["recipe"]["evaluate_train"]
    del old_layout["recipe"]["trajectory_steps"]
    del old_layout["init"], old_layout["noise"]
    del old_layout["runtime"]["deterministic"]
    del old_layout["runtime"]["compile"], old_layout["runtime"]["settings"]
    assert config.hash == config_hash(old_layout)
    tuned = parse_config(set_dotted(config.to_dict(), "finetune.trainable", "head"))
    sampled = parse_config(set_dotted(config.to_dict(), "recipe.sampler", "balanced"))
    assert len({config.hash, tuned.hash, sampled.hash}) == 3


def test_data_options_that_do_not_fit_the_dataset_fail_when_read():
    with pytest.raises(ConfigError, match="set data.to_rgb=true"):
        parse_config({"data": {"dataset": "pneumoniamnist", "normalize": "imagenet"}})
    parse_config({"data": {"dataset": "pneumoniamnist", "normalize": "imagenet", "to_rgb": True}})
    with pytest.raises(ConfigError, match="not defined for the multi-label chestmnist"):
        parse_config({"data": {"dataset": "chestmnist"}, "recipe": {"sampler": "balanced"}})


def test_pretrained_normalisation_needs_pretrained_weights():
    with pytest.raises(ConfigError, match="finetune.pretrained is not set"):
        parse_config({"data": {"dataset": "dermamnist", "normalize": "pretrained"}})
    with pytest.raises(ConfigError, match="set data.to_rgb=true"):
        parse_config({"data": {"dataset": "pneumoniamnist"}, "finetune": {"pretrained": "imagenet"}})


def test_keras_on_jax_and_torch_are_frameworks_that_train_without_fp16():
    base = {"model": "simple_cnn", "data": {"dataset": "breastmnist"}}
    for framework in ("keras-jax", "keras-torch"):
        assert parse_config({**base, "framework": framework}).framework == framework
        bf16 = parse_config({**base, "framework": framework, "runtime": {"precision": "bf16"}})
        assert bf16.runtime.precision == "bf16"
        with pytest.raises(ConfigError, match=f"fp16.*{framework}"):  # no loss scaling on these backends
            parse_config({**base, "framework": framework, "runtime": {"precision": "fp16"}})
    assert parse_config({**base, "framework": "keras", "runtime": {"precision": "fp16"}}).framework == "keras"
    with pytest.raises(ConfigError, match="framework"):
        parse_config({**base, "framework": "keras-tensorflow"})


def test_runtime_deterministic_is_reachable_and_reaches_the_framework():
    """runtime.deterministic (once a setting no user could reach) from a config to the framework: training
    hands ``config.runtime`` itself to the back-end's configure. On by choice, it is another hash."""
    import inspect

    from medbench.training import loop

    base = parse_config({"data": {"dataset": "breastmnist"}})
    chosen = parse_config(set_dotted(base.to_dict(), "runtime.deterministic", True))
    assert base.runtime.deterministic is False and chosen.runtime.deterministic is True
    assert "fw.configure(config.runtime)" in inspect.getsource(loop)
    assert chosen.hash != base.hash


def test_nesterov_without_sgd_momentum_is_refused_when_the_config_is_read():
    with pytest.raises(ConfigError, match="nesterov"):
        parse_config({"recipe": {"optimizer": {"name": "adam", "nesterov": True}}})
    with pytest.raises(ConfigError, match="nesterov"):
        parse_config({"recipe": {"optimizer": {"name": "sgd", "momentum": 0.0, "nesterov": True}}})
    assert parse_config(
        {"recipe": {"optimizer": {"name": "sgd", "nesterov": True}}}
    ).recipe.optimizer.nesterov


def test_back_ends_take_the_config_types_themselves():
    # one type per concept: the trainer's optimizer and the runtime are the config's own models
    from medbench.config import OptimizerConfig, RuntimeConfig
    from medbench.frameworks import base

    assert base.OptimizerConfig is OptimizerConfig and base.RuntimeConfig is RuntimeConfig
    assert not hasattr(base, "RuntimeSettings") and not hasattr(base, "OptimizerSpec")


def test_runtime_compile_and_settings_are_reachable_by_dotted_overrides():
    base = parse_config({"framework": "torch", "data": {"dataset": "breastmnist"}})
    assert (base.runtime.compile, base.runtime.settings) == (None, {})  # None: the framework's own default
    raw = set_dotted(base.to_dict(), "runtime.compile", True)
    tuned = parse_config(set_dotted(raw, "runtime.settings.onednn", False))
    assert tuned.runtime.compile is True and tuned.runtime.settings == {"onednn": False}
    assert tuned.to_dict()["runtime"]["settings"] == {"onednn": False}  # stored with the run
    assert len({base.hash, tuned.hash, parse_config(raw).hash}) == 3


def test_unknown_runtime_settings_name_the_known_ones():
    with pytest.raises(ConfigError, match="runtime.settings") as err:
        parse_config({"runtime": {"settings": {"onedn": False}}})
    assert "onedn" in str(err.value) and all(
        n in str(err.value) for n in ("onednn", "xla_flags", "tf_onednn")
    )


def test_runtime_settings_must_fit_the_framework_and_take_their_values():
    with pytest.raises(ConfigError, match=r"setting of jax, keras-jax, not torch.*per_framework\.jax"):
        parse_config(
            {"framework": "torch", "runtime": {"settings": {"xla_flags": "--xla_cpu_use_onednn=true"}}}
        )
    with pytest.raises(ConfigError, match="not one of its values"):  # 1 is no bool, even though 1 == True
        parse_config({"framework": "torch", "runtime": {"settings": {"onednn": 1}}})
    with pytest.raises(ConfigError, match="not in the form"):
        parse_config({"framework": "jax", "runtime": {"settings": {"xla_flags": "use onednn"}}})
    with pytest.raises(ConfigError, match='"xla", "matmul"'):
        parse_config({"framework": "jax", "runtime": {"settings": {"small_map_conv": "im2col"}}})
    jax = parse_config({"framework": "jax", "runtime": {"settings": {"small_map_conv": "matmul"}}})
    assert jax.runtime.settings == {"small_map_conv": "matmul"}


def test_jax_is_always_jitted_so_compile_false_is_refused():
    with pytest.raises(ConfigError, match="runtime.compile = false is refused for jax"):
        parse_config({"framework": "jax", "runtime": {"compile": False}})
    assert parse_config({"framework": "jax", "runtime": {"compile": True}}).runtime.compile is True
    # Keras on JAX honours Keras' jit_compile=False: its step then runs op by op
    assert parse_config({"framework": "keras-jax", "runtime": {"compile": False}}).runtime.compile is False
