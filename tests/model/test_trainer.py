"""Training: reproducible, exactly resumable, NaN-safe, and loadable (small user-folder corpus)."""

import csv

import pytest
import torch

from hearmask.errors import HearmaskError
from hearmask.model.system_io import load_system
from hearmask.model.train_config import train_config_from_dict
from hearmask.model.trainer import Trainer


def small_config(corpus, steps, **train):
    return train_config_from_dict({
        "data": {"clean_dir": str(corpus / "clean"), "noise_dir": str(corpus / "noise"), "segment_seconds": 0.5},
        "model": {"hidden_size": 16, "encoder_size": 16},
        "train": {"steps": steps, "steps_per_epoch": 2, "batch_size": 2, "validation_batches": 1, **train},
    })


def weights(run_dir):
    system, _ = load_system(run_dir / "checkpoint.json")
    return {name: tensor.clone() for name, tensor in system.state_dict().items()}


def test_resume_continues_exactly(corpus, tmp_path):
    straight = tmp_path / "straight"
    Trainer(small_config(corpus, 4), straight, progress=False).run()
    interrupted = tmp_path / "interrupted"
    Trainer(small_config(corpus, 2), interrupted, progress=False).run()
    Trainer(small_config(corpus, 4), interrupted, resume=True, progress=False).run()
    expected, resumed = weights(straight), weights(interrupted)
    assert all(torch.equal(expected[name], resumed[name]) for name in expected)
    with open(interrupted / "log.csv") as handle:
        steps = [int(row["step"]) for row in csv.DictReader(handle)]
    assert steps == [2, 4]
    # Training changed the weights from their initial values.
    initial = Trainer(small_config(corpus, 4), tmp_path / "fresh", progress=False).system.state_dict()
    assert any(not torch.equal(initial[name], expected[name]) for name in expected)


def test_same_seed_same_weights_other_seed_differs(corpus, tmp_path):
    Trainer(small_config(corpus, 2), tmp_path / "a", progress=False).run()
    Trainer(small_config(corpus, 2), tmp_path / "b", progress=False).run()
    Trainer(small_config(corpus, 2, seed=5), tmp_path / "c", progress=False).run()
    a, b, c = weights(tmp_path / "a"), weights(tmp_path / "b"), weights(tmp_path / "c")
    assert all(torch.equal(a[name], b[name]) for name in a)
    assert any(not torch.equal(a[name], c[name]) for name in a)


def test_existing_run_needs_resume_and_matching_config(corpus, tmp_path):
    Trainer(small_config(corpus, 2), tmp_path, progress=False).run()
    with pytest.raises(HearmaskError, match="pass --resume"):
        Trainer(small_config(corpus, 2), tmp_path, progress=False)
    with pytest.raises(HearmaskError, match="differs from the checkpoint"):
        Trainer(small_config(corpus, 4, learning_rate=0.5), tmp_path, resume=True, progress=False)


def test_nonfinite_loss_stops_and_keeps_last_good_checkpoint(corpus, tmp_path):
    trainer = Trainer(small_config(corpus, 4), tmp_path, progress=False)
    trainer.config = small_config(corpus, 2)
    trainer.run()  # a good checkpoint at step 2
    good = weights(tmp_path)
    trainer.config = small_config(corpus, 4)
    original = trainer.train_batch
    trainer.train_batch = lambda step: (lambda b: (b.noisy.fill_(float("nan")), b)[1])(original(step))
    with pytest.raises(HearmaskError, match="became nan at step 2.*step 2"):
        trainer.run()
    kept = weights(tmp_path)
    assert all(torch.equal(good[name], kept[name]) for name in good)


def test_two_process_ddp_with_gloo_matches_one_process_with_the_whole_batch(corpus, tmp_path):
    """torchrun, 2 CPU processes (gloo), batch 2 each == 1 process, batch 4, after one step."""
    import subprocess
    import sys

    config = tmp_path / "ddp.toml"
    config.write_text(
        f'[data]\nclean_dir = "{corpus / "clean"}"\nnoise_dir = "{corpus / "noise"}"\nsegment_seconds = 0.5\n'
        '[model]\nhidden_size = 16\nencoder_size = 16\n'
        '[train]\nsteps = 1\nsteps_per_epoch = 1\nbatch_size = 2\nvalidation_batches = 1\nthreads = 1\n'
    )
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", "29731",
         "-m", "hearmask.cli", "train", "--config", str(config), "--out", str(tmp_path / "ddp"), "--no-progress"],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "trained to step 1" in result.stdout
    _, metadata = load_system(tmp_path / "ddp" / "checkpoint.json")
    assert metadata["progress"]["world_size"] == 2
    whole = small_config(corpus, 1, batch_size=4, steps_per_epoch=1, threads=1)
    Trainer(whole, tmp_path / "whole", progress=False).run()
    distributed, single = weights(tmp_path / "ddp"), weights(tmp_path / "whole")
    # Adam's first step is ~lr·sign(gradient): where a gradient is ~0, float rounding of the
    # all-reduce can flip it, so a few elements may differ by up to 2·lr; the rest agree.
    difference = torch.cat([(distributed[name] - single[name]).abs().flatten() for name in single])
    assert float(difference.max()) <= 2 * whole.train.learning_rate
    assert float((difference <= 1e-6).float().mean()) >= 0.95


def test_sigterm_stops_at_a_step_boundary_and_resumes_exactly(corpus, tmp_path):
    """`kill` (SIGTERM) mid-run: checkpoint at the current step, then --resume equals a straight run."""
    import os
    import signal

    straight = tmp_path / "straight"
    Trainer(small_config(corpus, 3, steps_per_epoch=3), straight, progress=False).run()
    stopped = tmp_path / "stopped"
    trainer = Trainer(small_config(corpus, 3, steps_per_epoch=3), stopped, progress=False)
    original = trainer.train_batch

    def batch_then_signal(step):
        if step == 1:
            os.kill(os.getpid(), signal.SIGTERM)  # arrives while step 1 runs
        return original(step)

    trainer.train_batch = batch_then_signal
    with pytest.raises(KeyboardInterrupt):
        trainer.run()
    _, metadata = load_system(stopped / "checkpoint.json")
    assert metadata["progress"]["step"] == 2  # step 1 finished, then the loop stopped
    Trainer(small_config(corpus, 3, steps_per_epoch=3), stopped, resume=True, progress=False).run()
    expected, resumed = weights(straight), weights(stopped)
    assert all(torch.equal(expected[name], resumed[name]) for name in expected)


def test_resume_accepts_a_checkpoint_that_stored_a_derived_buffer(corpus, tmp_path):
    from hearmask.model.checkpoint import load_checkpoint, save_checkpoint
    from hearmask.model.system_io import MODEL_PREFIX

    run = tmp_path / "run"
    Trainer(small_config(corpus, 2), run, progress=False).run()
    tensors, metadata = load_checkpoint(run / "checkpoint.json")
    # As written while audiogram_to_bin was a persistent buffer (before it became derived).
    tensors[MODEL_PREFIX + "networks.0.audiogram_to_bin"] = torch.zeros(129, 8)
    metadata = {k: v for k, v in metadata.items() if k not in ("weights_file", "weights_sha256", "format", "version")}
    save_checkpoint(run / "checkpoint.json", tensors, metadata)
    Trainer(small_config(corpus, 4), run, resume=True, progress=False).run()
    _, resumed = load_checkpoint(run / "checkpoint.json")
    assert resumed["progress"]["step"] == 4


def test_warm_start_takes_the_weights_and_refuses_another_model(corpus, tmp_path):
    Trainer(small_config(corpus, 2), tmp_path / "first", progress=False).run()
    source = str(tmp_path / "first" / "checkpoint.json")
    warm = Trainer(small_config(corpus, 2, init_from=source, seed=9), tmp_path / "warm", progress=False)
    first = weights(tmp_path / "first")
    assert all(torch.equal(first[name], tensor) for name, tensor in warm.system.state_dict().items())
    cold = Trainer(small_config(corpus, 2, seed=9), tmp_path / "cold", progress=False)
    assert any(not torch.equal(first[name], tensor) for name, tensor in cold.system.state_dict().items())
    wider = train_config_from_dict({**small_config(corpus, 2).to_dict(), "model": {"hidden_size": 24, "encoder_size": 16},
                                    "train": {**small_config(corpus, 2).to_dict()["train"], "init_from": source}})
    with pytest.raises(HearmaskError, match="differs from this config's in \\['networks'\\]"):
        Trainer(wider, tmp_path / "wider", progress=False)
    # Output ranges own no weights: a warm start may move them (fine-tuning to a new ceiling).
    ranged = train_config_from_dict({**small_config(corpus, 2).to_dict(),
                                     "model": {"hidden_size": 16, "encoder_size": 16, "hlc_ceiling_loss_fraction": 0.55,
                                               "hlc_ceiling_offset_db": -8.0,
                                               "nr_floor_db": -15.0},
                                     "train": {**small_config(corpus, 2).to_dict()["train"], "init_from": source}})
    moved = Trainer(ranged, tmp_path / "ranged", progress=False)
    assert all(torch.equal(first[name], tensor) for name, tensor in moved.system.state_dict().items())
    network_config = moved.system.networks[0].config
    assert (network_config.hlc_ceiling_loss_fraction, network_config.hlc_ceiling_offset_db,
            network_config.nr_floor_db) == (0.55, -8.0, -15.0)


def test_batch_workers_give_the_same_run_and_resume_ignores_their_number(corpus, tmp_path):
    in_process = tmp_path / "in_process"
    Trainer(small_config(corpus, 3), in_process, progress=False).run()
    with_workers = tmp_path / "workers"
    Trainer(small_config(corpus, 2, data_workers=2), with_workers, progress=False).run()
    # Resuming with another worker count is the same run: workers change speed, not batches.
    Trainer(small_config(corpus, 3, data_workers=1), with_workers, resume=True, progress=False).run()
    expected, got = weights(in_process), weights(with_workers)
    assert all(torch.equal(expected[name], got[name]) for name in expected)


def test_negative_data_workers_is_refused():
    with pytest.raises(HearmaskError, match="data_workers must be >= 0, got -1"):
        train_config_from_dict({"train": {"data_workers": -1}})


def test_keep_every_keeps_loadable_snapshots_of_the_weights(corpus, tmp_path):
    Trainer(small_config(corpus, 4, keep_every=2), tmp_path, progress=False).run()
    snapshots = sorted(p.name for p in (tmp_path / "snapshots").glob("*.json"))
    assert snapshots == ["step000002.json", "step000004.json"]
    final, _ = load_system(tmp_path / "snapshots" / "step000004.json")
    latest = weights(tmp_path)
    assert all(torch.equal(final.state_dict()[name], latest[name]) for name in latest)
    early, _ = load_system(tmp_path / "snapshots" / "step000002.json")
    assert any(not torch.equal(early.state_dict()[name], latest[name]) for name in latest)
    with pytest.raises(HearmaskError, match="keep_every must be 0 or a multiple of steps_per_epoch \\(2\\).*got 3"):
        small_config(corpus, 4, keep_every=3)


def test_checkpoint_records_every_device_that_trained_the_run(corpus, tmp_path):
    from hearmask.model.checkpoint import load_checkpoint, save_checkpoint

    run = tmp_path / "run"
    Trainer(small_config(corpus, 2, threads=1), run, progress=False).run()
    _, metadata = load_checkpoint(run / "checkpoint.json")
    here = f"cpu: 1 threads of {__import__('os').cpu_count()} cores"
    assert metadata["progress"]["devices"] == [here]
    # As if the first half had run on a GPU machine: the resumed run keeps it and adds this one.
    tensors, metadata = load_checkpoint(run / "checkpoint.json")
    metadata["progress"]["devices"] = ["cuda: NVIDIA H200"]
    metadata = {k: v for k, v in metadata.items() if k not in ("weights_file", "weights_sha256", "format", "version")}
    save_checkpoint(run / "checkpoint.json", tensors, metadata)
    Trainer(small_config(corpus, 4, threads=1), run, resume=True, progress=False).run()
    _, resumed = load_checkpoint(run / "checkpoint.json")
    assert resumed["progress"]["devices"] == ["cuda: NVIDIA H200", here]
