"""One registry of model kinds: train, predict and the panel read it; a new kind is one file and one line."""

import numpy as np
import pytest
from _paired_util import make_dataset
from _train_util import interrupt_at, log_rows, train

from voxlift.backend import checkpoint as ckpt
from voxlift.backend import registry
from voxlift.backend.predict import load_predictor
from voxlift.cli import main as cli_main
from voxlift.dataset_tools.errors import VoxliftError


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("reg") / "data", chairs=4, tables=4, size=32, views=4)


def test_every_kind_names_its_model_and_config():
    for name in registry.KINDS:
        model = registry.model_class(name)
        assert model.kind == name and model.Config.__dataclass_fields__["kind"].default == name
    assert set(registry.reconstructing_kinds()) == {"paired", "cyclegan"}
    with pytest.raises(KeyError, match="teleporter"):
        registry.model_class("teleporter")


def test_the_template_becomes_a_kind_with_one_line(data, tmp_path, monkeypatch):
    """models/template_model.py plus one ModelKind line: trains through the one loop (loss falls), is
    interrupted and resumed by the same command, and its checkpoint reconstructs."""
    line = registry.ModelKind(
        "template", "template_model", "Template", "a linear test model", reconstructs=True
    )
    monkeypatch.setitem(registry.KINDS, "template", line)
    out = tmp_path / "run"
    argv = ["--data", data, "--out", out, "--steps", "60", "--val-every", "30", "--lr", "3e-3", "--quiet"]
    with monkeypatch.context() as m:
        interrupt_at(m, "template", 25)
        with pytest.raises(KeyboardInterrupt):
            train("template", argv)
    assert ckpt.load_checkpoint(out / ckpt.LAST)[1]["step"] == 25
    assert cli_main(["train", "template", *map(str, argv)]) == 0  # the same command resumes it
    losses = [r["losses"]["loss"] for r in log_rows(out, "step")]
    assert np.mean(losses[-2:]) < losses[0]
    assert [r["step"] for r in log_rows(out, "val")] == [30, 60]
    p = load_predictor(out, "cpu")
    assert p.kind == "template" and p.predict(np.zeros((2, 32, 32), np.uint8)).shape == (2, 32, 32, 32)


def test_a_kind_that_does_not_reconstruct_is_refused_by_name(data, tmp_path):
    run = tmp_path / "ae"
    tiny = ["--latent-dim", "8", "--encoder-width", "2", "--decoder-width", "2", "--batch-size", "4"]
    assert train("autoencoder", ["--data", data, "--out", run, "--steps", "1", "--quiet", *tiny]) == 0
    with pytest.raises(VoxliftError, match="kind 'autoencoder'.*paired, cyclegan"):
        load_predictor(run, "cpu")
