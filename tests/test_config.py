"""Strict configs: unknown keys are errors, the original project's config.json is accepted."""

import dataclasses
import json

import pytest

from facevae.config import (
    MODEL_PRESETS,
    ConfigError,
    ModelConfig,
    RunConfig,
    TrainConfig,
    from_dict,
    load_config_file,
    load_run_config,
    run_config_from_dict,
    to_dict,
)


def test_defaults_are_the_original_recipe_without_the_relu_heads():
    config = RunConfig()
    assert config.model == MODEL_PRESETS["celeba64"]
    train = config.train
    assert (train.recon_weight, train.lr, train.batch_size, train.epochs) == (2000.0, 5e-4, 128, 12)
    assert config.model.bottom_size == 4 and config.model.flat_features == 2048
    # New models: the original architecture, linear heads (ReLU heads collapse, issue 18), Keras's init.
    assert config.model.head_activation == "none" and config.train.init == "keras"
    assert dataclasses.replace(config.model, head_activation="relu") == MODEL_PRESETS["original"]
    assert config.train.collapse_patience_steps > 0


def test_the_original_preset_keeps_the_relu_heads_of_the_published_weights():
    assert MODEL_PRESETS["original"].head_activation == "relu"
    assert load_run_config(preset="original").model == MODEL_PRESETS["original"]
    assert load_run_config(overrides=["train.init=pytorch"]).train.init == "pytorch"
    with pytest.raises(ConfigError, match="train.init must be one of keras, pytorch"):
        load_run_config(overrides=["train.init=glorot"])


def test_unknown_key_names_the_key_the_suggestion_and_the_valid_keys():
    with pytest.raises(ConfigError) as error:
        run_config_from_dict({"train": {"learning_rate": 0.1}})
    message = str(error.value)
    assert "'learning_rate'" in message and "train" in message and "lr" in message and "batch_size" in message
    with pytest.raises(ConfigError, match="Did you mean 'latent_dim'"):
        from_dict(ModelConfig, {"latent_dims": 3})
    with pytest.raises(ConfigError, match="Unknown key 'optimizer'"):
        run_config_from_dict({"optimizer": {}})


def test_wrong_types_and_choices_are_explained():
    with pytest.raises(ConfigError, match="train.batch_size must be of type int"):
        run_config_from_dict({"train": {"batch_size": "many"}})
    with pytest.raises(ConfigError, match="model.padding must be one of tf_same, symmetric"):
        run_config_from_dict({"model": {"padding": "valid"}})
    with pytest.raises(ConfigError, match="not divisible"):
        ModelConfig(image_size=48, channels=(8, 8, 8, 8, 8))
    with pytest.raises(ConfigError, match=r"model.kernel_size must be odd \(3, 5, 7, ...\), got 4"):
        run_config_from_dict({"model": {"kernel_size": 4}})


def test_original_projects_config_json_is_accepted_as_is(tmp_path):
    original = {"embedding_size": 200, "num_channels": 128, "beta": 2000, "input_img_size": 64, "batch_size": 128,
                "lr": 0.0005, "max_epoch": 12, "dataset_dir": "data/celeba", "model_save_path": "model_weights"}
    path = tmp_path / "config.json"
    path.write_text(json.dumps(original))
    config = load_run_config(path)
    assert config.model == MODEL_PRESETS["celeba64"]  # new training: the original's sizes, linear heads
    assert config.train.recon_weight == 2000 and config.train.epochs == 12 and config.train.lr == 5e-4
    assert config.data.path == "data/celeba" and config.train.out_dir == "model_weights"


def test_toml_file_preset_and_overrides_compose(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('preset = "compact"\n[train]\nepochs = 3\nlr_schedule = "cosine"\n[model]\nlatent_dim = 24\n')
    config = load_run_config(path, overrides=["train.batch_size=16", "model.channels=[16,32,32]", "train.compile=true"])
    assert config.model.image_size == 32 and config.model.latent_dim == 24 and config.model.channels == (16, 32, 32)
    assert config.train.epochs == 3 and config.train.batch_size == 16 and config.train.compile is True
    assert config.train.lr_schedule == "cosine"
    with pytest.raises(ConfigError, match="must look like section.key=value"):
        load_run_config(overrides=["train.lr"])
    with pytest.raises(ConfigError, match="Unknown key 'huge'"):
        load_run_config(preset="huge")


@pytest.mark.parametrize("name, text", [("deep.json", "[" * 100_000 + "]" * 100_000),
                                        ("deep.toml", "a = " + "[" * 100_000 + "]" * 100_000)])
def test_deeply_nested_config_files_are_refused_with_a_message(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ConfigError, match="Cannot parse .*nested too deeply"):
        load_config_file(path)


def test_round_trip_through_a_dict_is_identical():
    config = load_run_config(preset="celeba128", overrides=["train.kl_warmup_steps=100"])
    assert run_config_from_dict(to_dict(config)) == config
    assert from_dict(TrainConfig, to_dict(config.train)) == config.train
