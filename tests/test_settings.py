"""The settings schema: the CLI options, the TOML reader and config.json all come from ``Settings``."""
import dataclasses
import json

import pytest

from dhash.cli.train import train as train_command
from dhash.errors import DHashError
from dhash.learn.config import read_config_file
from dhash.learn.settings import DEFAULTS, FIELDS, RUNTIME_KEYS, TRAIN_DEFAULT_KEYS, Settings, check_settings


def test_every_setting_with_an_option_is_a_train_option():
    options = {p.name: p for p in train_command.params}
    for name, field in FIELDS.items():
        assert (name in options) == field.metadata["option"], name
    assert options["params"].multiple and options["pretrained"].secondary_opts == ["--no-pretrained"]
    assert options["bits"].type.name == "integer" and options["lr"].type.name == "float"
    assert list(options["optimizer"].type.choices) == ["adam", "sgd"]
    assert "dha" in options["method"].type.choices and "small-cnn" in options["backbone"].type.choices
    assert "[default: 32]" in options["bits"].help and "or the method's" in options["epochs"].help


def test_defaults_and_key_sets_come_from_the_fields():
    assert list(DEFAULTS) == [f.name for f in dataclasses.fields(Settings)]
    assert DEFAULTS["bits"] == 32 and DEFAULTS["params"] == {} and DEFAULTS["params"] is not Settings().params
    assert set(RUNTIME_KEYS) == {"device", "precision", "workers", "threads", "data_dir", "feature_cache"}
    assert set(TRAIN_DEFAULT_KEYS) == {"optimizer", "lr", "weight_decay", "momentum", "batch_size", "epochs",
                                       "lr_decay", "lr_step", "lr_gamma", "head_lr_mult"}


@pytest.mark.parametrize("values, message", [
    ({"bits": 0}, "'bits' must be at least 1, got 0"),
    ({"bits": 2048}, "'bits' must be at most 1024, got 2048"),
    ({"lr": 0}, "'lr' must be positive, got 0"),
    ({"weight-decay": -1.0}, "'weight-decay' must be non-negative, got -1.0"),
    ({"device": "gpu"}, "'device' must be auto, cpu, cuda or cuda:N, got 'gpu'"),
    ({"optimizer": "lamb"}, "'optimizer' must be one of adam, sgd, got 'lamb'"),
    ({"epochs": 2.5}, "'epochs' must be a int, got 2.5"),
    ({"pretrained": 1}, "'pretrained' must be a bool, got 1"),
    ({"seed": True}, "'seed' must be a int, got True"),
    ({"colour": 1}, "unknown setting 'colour'"),
])
def test_check_settings_refuses_bad_values(values, message):
    with pytest.raises(DHashError, match="^W: " + message.replace("(", r"\(").replace(")", r"\)")):
        check_settings(values, "W")


def test_check_settings_normalises():
    out = check_settings({"batch-size": 64, "lr": 1, "params": {"pretrain-epochs": 0}, "limit": None}, "W")
    assert out == {"batch_size": 64, "lr": 1.0, "params": {"pretrain_epochs": 0}, "limit": None}
    assert isinstance(out["lr"], float)


def test_toml_file_takes_every_setting(tmp_path):
    values = {**DEFAULTS, "data": "mnist", "method": "dha", "params": {"gamma": 2.0}, "output": "runs/x"}
    lines = [f"{k} = {json.dumps(v)}" for k, v in values.items() if v is not None and not isinstance(v, dict)]
    lines += ["[params]", "gamma = 2.0", "[backbone_options]"]
    path = tmp_path / "all.toml"
    path.write_text("\n".join(lines) + "\n")
    settings, output = read_config_file(path)
    assert output == "runs/x"
    assert settings == {k: v for k, v in values.items() if k != "output" and v is not None}
