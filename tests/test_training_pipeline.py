"""prepare -> fit -> export end to end on small synthetic BVH clips (a Bandai-named rig)."""
from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch

from posecast.lifter import Lifter
from training.dataset import DatasetFiles
from training.fit import AUGMENTS, LOSSES, FitOptions, fit
from training.model import ModelOptions
from training.prepare import PrepareOptions, prepare

from synthetic_bvh import write_bandai_named_clips

@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("mocap")
    rng = np.random.default_rng(0)
    clips = write_bandai_named_clips(root / "bvh", 40, rng)
    files = prepare(PrepareOptions(bandai=clips, cmu=None, climb=None, out=root / "data", stride=2,
                                     stats_samples=3000))
    return files


def test_split_is_by_clip(tiny_dataset: DatasetFiles):
    split = json.loads(tiny_dataset.stats.read_text())["split"]["bandai"]
    assert set(split["train"]).isdisjoint(split["validation"])
    assert len(split["train"]) + len(split["validation"]) == 20
    # Every action keeps clips aside; training frames come only from training clips.
    assert {c.split("_")[1] for c in split["validation"]} == {"walk", "wave"}
    (motion,) = tiny_dataset.load_motion()
    assert set(np.array(motion.clips)[np.unique(motion.clip)]) == set(split["train"])
    val, actions = tiny_dataset.load_validation("bandai")
    assert set(actions.tolist()) == {"walk", "wave"} and len(val) > 0
    assert np.all(val.joints3d[:, 0] == 0) and np.all(val.confidence == 1)


@pytest.mark.parametrize("loss", LOSSES)
def test_tiny_training_loss_falls_and_exports_with_parity(tiny_dataset: DatasetFiles, tmp_path, loss: str):
    from export.lifter import export

    opts = FitOptions(out=tmp_path / "run", data=tiny_dataset.root, model=ModelOptions(width=128, blocks=1, dropout=0.0),
                      epochs=4, samples_per_epoch=2500, batch=64, lr=2e-3, lr_final=5e-4, threads=1, eval_limit=200,
                      disable=AUGMENTS, loss=loss)
    ckpt = fit(opts)
    curve = [h["train_mpjpe"] for h in ckpt["history"]]
    assert curve[-1] < 0.8 * curve[0], curve
    assert (tmp_path / "run" / "best.pt").is_file() and (tmp_path / "run" / "curve.png").stat().st_size > 0

    # Resuming a finished run does nothing more; asking for more epochs continues from the checkpoint.
    opts.epochs = 5
    assert fit(opts)["epoch"] == 5

    out = tmp_path / "lifter.onnx"
    manifest = export(tmp_path / "run" / "best.pt", out, tiny_dataset)
    assert manifest["parity_max_abs_mm"] < 0.1
    onnx.checker.check_model(onnx.load(out))
    lifter = Lifter(out, device="cpu")
    assert lifter.info["joints"][0] == "pelvis" and "bandai" in lifter.info["metrics"]
    assert json.loads(out.with_suffix(".json").read_text()) == lifter.info


def test_interrupted_fit_continues_within_its_epoch(tiny_dataset: DatasetFiles, tmp_path, monkeypatch):
    """A fit stopped within an epoch (Ctrl-C) and run again goes on from the step after its last
    checkpoint, with that epoch's samples, and ends with the weights of a run never stopped."""
    def options(out):
        return FitOptions(out=out, data=tiny_dataset.root, model=ModelOptions(width=64, blocks=1, dropout=0.0),
                          epochs=2, samples_per_epoch=640, batch=64, threads=1, eval_limit=100,
                          checkpoint_minutes=0.0)  # last.pt after every step

    steps, stop_after = [], [13]  # 10 steps an epoch: stopped in the second
    adam_step = torch.optim.Adam.step

    def step(self, *args, **kwargs):
        if len(steps) == stop_after[0]:
            raise KeyboardInterrupt
        steps.append(1)
        return adam_step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.Adam, "step", step)
    with pytest.raises(KeyboardInterrupt):
        fit(options(tmp_path / "run"))
    ckpt = torch.load(tmp_path / "run" / "last.pt", weights_only=False)
    assert (ckpt["epoch"], ckpt["step_in_epoch"]) == (1, 3)
    # A checkpoint from before step_in_epoch (written after an epoch, as then: here best.pt) resumes at the next epoch.
    (tmp_path / "old").mkdir()
    old_format = torch.load(tmp_path / "run" / "best.pt", weights_only=False)
    assert old_format["epoch"] == 1
    del old_format["step_in_epoch"]
    torch.save(old_format, tmp_path / "old" / "last.pt")

    stop_after[0] = None
    steps.clear()
    resumed = fit(options(tmp_path / "run"))
    assert len(steps) == 7 and resumed["epoch"] == 2 and resumed["step_in_epoch"] == 0
    steps.clear()
    old = fit(options(tmp_path / "old"))
    assert len(steps) == 10
    whole = fit(options(tmp_path / "whole"))
    for name, weights in whole["state_dict"].items():
        assert torch.equal(resumed["state_dict"][name], weights), name
        assert torch.equal(old["state_dict"][name], weights), name
