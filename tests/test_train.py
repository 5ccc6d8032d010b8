"""``dhash train`` end to end on Fashion-MNIST: learned codes beat random ones, the run folder, the model
file, resume after Ctrl-C, config files, and one-line errors."""
from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from dhash.cli.main import main
from dhash.search.codes import read_code_file
from dhash.learn.config import resolve
from dhash.learn.settings import DEFAULTS
from dhash.learn.runtime import cpu_has_native_bfloat16, resolve_precision
from dhash.errors import DHashError
from dhash.learn.methods import get_method
from dhash.evaluate.metrics import mean_average_precision
from dhash.learn.train import effective_config
from dhash.learn.run import Run

# 1 thread: reproducible, and on a busy shared machine much faster than 2 spinning threads
SMALL = ["--data", "fashion-mnist", "--protocol", "per-class", "--queries-per-class", "50", "--threads", "1"]


def dhash(*args: str, code: int = 0) -> str:
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == code, (result.output, result.exception)
    return result.output


def one_line_error(*args: str) -> str:
    out = dhash(*args, code=1)
    errors = [line for line in out.splitlines() if line.startswith("Error: ")]
    assert "Traceback" not in out and len(errors) == 1 and out.strip().endswith(errors[0]), out
    return errors[0]


@pytest.fixture(scope="module")
def dha_run(tmp_path_factory) -> Path:
    """DHA, 32 bits, one epoch on 2,700 Fashion-MNIST images (300 per class, 30 of them held out for validation), Adam."""
    run = tmp_path_factory.mktemp("runs") / "dha32"
    dhash("train", *SMALL, "--train-per-class", "300", "--method", "dha", "--bits", "32", "--epochs", "1",
          "--optimizer", "adam", "--batch-size", "128", "--weight-decay", "0", "-o", run)
    return run


def test_learned_codes_beat_random_codes(dha_run, tmp_path):
    model = dha_run / "model.pt"
    dhash("encode", "fashion-mnist", "--model", model, "--split", "query", "-o", tmp_path / "q.h5", "--threads", "1")
    dhash("encode", "fashion-mnist", "--model", model, "--split", "train", "-o", tmp_path / "db.h5", "--threads", "1")
    q, db = read_code_file(tmp_path / "q.h5"), read_code_file(tmp_path / "db.h5")
    assert (len(q), len(db), q.bits) == (500, 2700, 32)  # 10 % of the 3,000 training items validate
    learned = mean_average_precision(q.codes, db.codes, q.labels, db.labels, 32)
    rng = np.random.default_rng(0)
    random = mean_average_precision(rng.integers(0, 256, q.codes.shape, dtype=np.uint8),
                                    rng.integers(0, 256, db.codes.shape, dtype=np.uint8), q.labels, db.labels, 32)
    assert random < 0.15
    assert learned > random + 0.25, (learned, random)


def test_run_folder_and_model_file(dha_run):
    config = json.loads((dha_run / "config.json").read_text())
    assert config["method"] == "dha" and config["bits"] == 32 and config["backbone"] == "small-cnn"
    assert config["optimizer"] == "adam" and config["batch_size"] == 128 and config["weight_decay"] == 0
    assert config["protocol"] == "per-class" and config["backbone_options"] == {"in_channels": 1, "size": 28}
    lines = [json.loads(line) for line in (dha_run / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in lines] == [1]
    assert lines[0]["images_per_s"] > 0 and lines[0]["step"] == 2700 // 128 and np.isfinite(lines[0]["loss"])
    assert 0 < lines[0]["val_map"] <= 1  # validation mAP after the only (= last) epoch
    checkpoint = torch.load(dha_run / "checkpoint.pt", weights_only=True)
    assert checkpoint["epoch"] == 1 and {"network", "optimizer", "scheduler", "method"} <= set(checkpoint)

    record = torch.load(dha_run / "model.pt", weights_only=True)  # plain values and tensors only
    assert record["method"] == "dha" and record["bits"] == 32 and record["num_classes"] == 10
    assert record["backbone"] == {"name": "small-cnn", "options": {"in_channels": 1, "size": 28}, "pretrained": False}
    assert record["classes"][0] == "T-shirt/top" and record["input_spec"]["size"] == 28
    assert record["data"]["spec"] == "fashion-mnist" and record["config"] == config
    assert len(record["split"]["query"]) == 500 and len(record["split"]["train"]) == 2700
    assert len(record["split"]["validation"]) == 300 and not set(record["split"]["validation"].tolist()) & set(
        record["split"]["train"].tolist())  # 30 per class, never trained on
    assert record["training"]["selected"]["epoch"] == 1 and not (dha_run / "last.pt").exists()
    assert record["dhash_version"]
    assert record["training"]["precision"] == ("bfloat16" if cpu_has_native_bfloat16() else "float32")  # auto


def test_params_and_defaults_are_recorded(dha_run):
    config = json.loads((dha_run / "config.json").read_text())
    dha = get_method("dha")
    assert set(config["params"]) == set(dha.params_cls.__dataclass_fields__)
    assert config["momentum"] == dha.train_defaults.get("momentum", DEFAULTS["momentum"])


def _interrupt_at(monkeypatch, method_name: str, step: int) -> None:
    """Make the method's loss raise KeyboardInterrupt (as Ctrl-C would) at global step ``step``."""
    cls = get_method(method_name)
    original = cls.loss

    def loss(self, out, labels, state):
        if state.step == step:
            raise KeyboardInterrupt
        return original(self, out, labels, state)

    monkeypatch.setattr(cls, "loss", loss)


def test_resume_after_ctrl_c_gives_the_same_weights(tmp_path, monkeypatch):
    args = [*SMALL, "--train-per-class", "32", "--method", "dha", "--bits", "16", "--epochs", "2", "--batch-size", "32"]
    dhash("train", *args, "-o", tmp_path / "straight")  # 10 steps per epoch

    with monkeypatch.context() as m:
        _interrupt_at(m, "dha", 13)  # during epoch 2
        out = dhash("train", *args, "-o", tmp_path / "cut", code=130)
    assert "interrupted during epoch 2" in out and "holds epoch 1 of 2" in out and "--resume" in out
    assert "Traceback" not in out
    assert not (tmp_path / "cut" / "model.pt").exists()
    assert torch.load(tmp_path / "cut" / "checkpoint.pt", weights_only=True)["epoch"] == 1

    dhash("train", "-o", tmp_path / "cut", "--resume", "--threads", "1")
    a = torch.load(tmp_path / "straight" / "model.pt", weights_only=True)["network"]
    b = torch.load(tmp_path / "cut" / "model.pt", weights_only=True)["network"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    logs = [[json.loads(x) for x in (tmp_path / run / "metrics.jsonl").read_text().splitlines()] for run in ("straight", "cut")]
    assert [m["epoch"] for m in logs[1]] == [1, 2]
    assert [m["loss"] for m in logs[0]] == [m["loss"] for m in logs[1]]


def test_each_batch_gets_its_positions_in_the_training_set(tmp_path, monkeypatch):
    """DPSH's memory bank relies on TrainState.items: the batch's rows of the training labels, every item once."""
    cls, seen = get_method("dpsh"), []
    original = cls.loss

    def loss(self, out, labels, state):
        assert torch.equal(self.bank_labels[state.items], labels)
        seen.append(state.items.clone())
        return original(self, out, labels, state)

    monkeypatch.setattr(cls, "loss", loss)
    dhash("train", *SMALL, "--train-per-class", "20", "--method", "dpsh", "--bits", "8", "--epochs", "1",
          "--batch-size", "50", "--val-fraction", "0", "-o", tmp_path / "run")
    items = torch.cat(seen)
    assert len(seen) == 4 and sorted(items.tolist()) == list(range(200))  # 200 training images, shuffled


def test_precision_settings():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert resolve_precision("float32", cpu) is None and resolve_precision("float32", cuda) is None
    assert resolve_precision("mixed", cpu) == torch.bfloat16 and resolve_precision("mixed", cuda) == torch.float16
    assert resolve_precision("auto", cuda) == torch.float16
    assert resolve_precision("auto", cpu) == (torch.bfloat16 if cpu_has_native_bfloat16() else None)


@pytest.mark.parametrize("precision, recorded", [("mixed", "bfloat16"), ("float32", "float32")])
def test_mixed_and_plain_precision_train(tmp_path, precision, recorded):
    """Both CPU paths run whatever this CPU has; weights stay float32 under autocast."""
    dhash("train", *SMALL, "--train-per-class", "20", "--method", "dsh", "--bits", "8", "--epochs", "1",
          "--batch-size", "50", "--precision", precision, "-o", tmp_path / "run")
    record = torch.load(tmp_path / "run" / "model.pt", weights_only=True)
    assert record["training"]["precision"] == recorded
    assert all(t.dtype in (torch.float32, torch.int64) for t in record["network"].values())
    lines = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert np.isfinite(lines[0]["loss"])


def test_config_file_applies_and_options_override_it(tmp_path):
    config = tmp_path / "lsh.toml"
    config.write_text('data = "fashion-mnist"\nmethod = "lsh"\nbits = 24\nlimit = 300\nseed = 3\n'
                      'protocol = "per-class"\nqueries-per-class = 20\ntrain_per_class = 100\n'
                      f'output = "{tmp_path / "from-file"}"\n[params]\ncentre = false\n')
    dhash("train", "--config", config, "--limit", "200", "--threads", "1")
    saved = json.loads((tmp_path / "from-file" / "config.json").read_text())
    assert saved["bits"] == 24 and saved["seed"] == 3 and saved["queries_per_class"] == 20 and saved["train_per_class"] == 100
    assert saved["limit"] == 200  # the option wins over the file
    assert saved["params"] == {"centre": False}
    assert saved["backbone"] == "pixels"  # closed-form method on small images
    record = torch.load(tmp_path / "from-file" / "model.pt", weights_only=True)
    assert len(record["split"]["train"]) == 200 and record["method_state"]["projection"].shape == (784, 24)
    assert torch.all(record["method_state"]["mean"] == 0)


def test_precedence_of_settings():
    dha = get_method("dha")
    plain = resolve({"data": "fashion-mnist", "method": "dha"})
    for key, value in dha.train_defaults.items():
        assert plain[key] == value  # method defaults beat the global ones
    assert plain["epochs"] == dha.train_defaults.get("epochs", DEFAULTS["epochs"])
    from_file = resolve({"data": "fashion-mnist"}, {"method": "dha", "optimizer": "adam", "lr": 0.01, "params": {"lam": 0.5}})
    assert from_file["optimizer"] == "adam" and from_file["lr"] == 0.01 and from_file["params"]["lam"] == 0.5
    both = resolve({"data": "fashion-mnist", "lr": 0.002, "params": {"theta": "0.3"}},
                   {"method": "dha", "lr": 0.01, "params": {"lam": 0.5}})
    assert both["lr"] == 0.002 and both["params"]["lam"] == 0.5 and both["params"]["theta"] == 0.3


def test_resume_refuses_changed_settings(dha_run):
    run = Run(dha_run)
    same = effective_config(run, {"method": "dha", "bits": 32, "workers": 1}, resume=True)
    assert same["workers"] == 1 and same["bits"] == 32
    with pytest.raises(DHashError, match="bits differ"):
        effective_config(run, {"bits": 16}, resume=True)


def test_list_methods_shows_papers_and_params():
    out = dhash("train", "--list-methods")
    assert "dha" in out and "Xu" in out and "theta" in out


@pytest.mark.parametrize("args, message", [
    (["--method", "dha", "-o", "{tmp}/r"], "missing setting 'data'"),
    (["--data", "fashion-mnist", "-o", "{tmp}/r"], "missing setting 'method'"),
    (["--data", "fashion-mnist", "--method", "dha"], "missing -o/--output"),
    (["--data", "no/such/folder", "--method", "dha", "-o", "{tmp}/r"], "no/such/folder"),
    (["--data", "fashion-mnist", "--method", "dha", "--param", "nope=1", "-o", "{tmp}/r"], "unknown parameter"),
    (["--data", "fashion-mnist", "--method", "dha", "--param", "lam", "-o", "{tmp}/r"], "expected KEY=VALUE"),
    (["--data", "fashion-mnist", "--method", "dha", "--batch-size", "1", "-o", "{tmp}/r"], "at least 2"),
    (["--data", "fashion-mnist", "--method", "dha", "--no-pretrain", "-o", "{tmp}/r"], "no pre-training stage"),
    (["--data", "fashion-mnist", "--method", "dha", "--no-cbam", "-o", "{tmp}/r"], "has no CBAM"),
    (["--data", "fashion-mnist", "--method", "dha", "--device", "tpu", "-o", "{tmp}/r"], "device"),
    (["-o", "{tmp}/nothing-here", "--resume"], "no run to resume"),
    (["--config", "{tmp}/missing.toml", "-o", "{tmp}/r"], "config file not found"),
    (["--config", "{tmp}/bad.toml", "-o", "{tmp}/r"], "not a valid TOML file"),
    (["--config", "{tmp}/unknown.toml", "-o", "{tmp}/r"], "unknown setting 'colour'"),
])
def test_bad_inputs_give_one_line_errors(tmp_path, args, message):
    (tmp_path / "bad.toml").write_text("data = \n")
    (tmp_path / "unknown.toml").write_text('colour = "blue"\n')
    out = one_line_error("train", *[a.format(tmp=tmp_path) for a in args])
    assert message in out


def test_feature_files_take_only_the_features_backbone(tmp_path):
    with h5py.File(tmp_path / "f.h5", "w") as f:
        f["features"] = np.zeros((20, 8), np.float32)
        f["labels"] = np.arange(20) % 2
    out = one_line_error("train", "--data", tmp_path / "f.h5", "--method", "dha", "--backbone", "small-cnn",
                         "-o", tmp_path / "r")
    assert "f.h5: a feature file trains only the heads" in out


def test_existing_run_is_not_overwritten(dha_run):
    before = (dha_run / "model.pt").stat().st_mtime_ns
    out = one_line_error("train", "--data", "fashion-mnist", "--method", "dha", "-o", dha_run)
    assert "already holds a run" in out and "--resume" in out
    assert (dha_run / "model.pt").stat().st_mtime_ns == before


def test_validation_keeps_the_best_epoch_and_stops_early(monkeypatch, tmp_path):
    from dhash.learn import train as training

    scores = iter([0.5, 0.7, 0.6, 0.65, 0.9])  # best at epoch 2, then two validations without a better one
    monkeypatch.setattr(training._Validation, "score", lambda self, *args: next(scores))
    run = tmp_path / "run"
    dhash("train", *SMALL, "--train-per-class", "20", "--method", "dsh", "--bits", "8", "--epochs", "5",
          "--batch-size", "50", "--patience", "2", "-o", run)
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [m["val_map"] for m in lines if "epoch" in m] == [0.5, 0.7, 0.6, 0.65]  # epoch 5 never ran
    assert lines[-1] == {"early_stop": 4, "best_epoch": 2}
    checkpoint = torch.load(run / "checkpoint.pt", weights_only=True)
    best, last = torch.load(run / "model.pt", weights_only=True), torch.load(run / "last.pt", weights_only=True)
    assert best["training"]["selected"] == {"epoch": 2, "val_map": 0.7} and checkpoint["best"]["epoch"] == 2
    weights = [k for k in best["network"] if k.endswith("weight") and best["network"][k].dim() > 1]  # not BatchNorm
    assert weights and all(torch.equal(best["network"][k], checkpoint["best"]["network"][k]) for k in weights)
    assert all(torch.equal(last["network"][k], checkpoint["network"][k]) for k in weights)  # epoch 4
    assert not all(torch.equal(best["network"][k], last["network"][k]) for k in weights)
    report = json.loads(dhash("evaluate", "--model", run, "--format", "json", "--threads", "1"))
    assert (report["kept_epoch"], report["trained_epochs"], report["validation_map"]) == (2, 4, 0.7)
    table = dhash("evaluate", "--model", run, "--threads", "1")
    assert "epoch kept (of trained)" in table and "2 of 4" in table
