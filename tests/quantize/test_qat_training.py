"""Calibration + QAT from a trained run: real data sets the ranges, resume is exact, checkpoints reload."""

import pytest
import torch

from hearmask.errors import HearmaskError
from hearmask.model.checkpoint import load_checkpoint
from hearmask.model.system_io import load_system
from hearmask.quantize.qat_training import QAT_CHECKPOINT_NAME, QatTrainer, load_qat_system


def model_tensors_of(out_dir):
    tensors, metadata = load_checkpoint(out_dir / QAT_CHECKPOINT_NAME)
    return {name: tensor for name, tensor in tensors.items() if name.startswith("model/")}, metadata


def test_calibration_sets_ranges_from_real_batches_and_the_checkpoint_reloads(trained_run, tmp_path, helpers):
    trainer = QatTrainer(trained_run, tmp_path, helpers.fast_qat_config(steps=0), progress=False)
    assert trainer.source_path.name == "best.json"  # a run folder means its best checkpoint
    summary = trainer.run()
    assert summary["step"] == 0
    network = trainer.qat_system.networks[0]
    batch = trainer.data.train_batch(0)
    with torch.no_grad():
        features = trainer.qat_system.features(trainer.qat_system.stft.stft(batch.noisy))
    spec = network.activation_specs()["features_input"]
    # The calibrated input range spans the real features (0.001-99.999 % percentiles).
    assert spec.min_value <= float(features.min()) + spec.scale and spec.max_value >= float(features.max()) - spec.scale
    assert spec.max_value - spec.min_value < 4 * float(features.max() - features.min())

    qat_system, float_system, metadata = load_qat_system(tmp_path)
    assert metadata["progress"] == {"step": 0, "calibrated": True, "elapsed_s": metadata["progress"]["elapsed_s"],
                                    "loss": None}
    source, _ = load_system(trained_run / "best.json")
    for name, tensor in source.state_dict().items():
        assert torch.equal(float_system.state_dict()[name], tensor), name
    sample = torch.as_tensor(helpers.feature_sequence(6, 32, 1))[None]
    audiogram = torch.as_tensor(helpers.audiogram)
    with torch.no_grad():
        expected = network.eval().sequence_fractions(sample, audiogram)
        actual = qat_system.networks[0].sequence_fractions(sample, audiogram)
    for a, b in zip(expected, actual):
        assert torch.equal(a, b)


def test_resumed_qat_equals_the_uninterrupted_run(trained_run, tmp_path, helpers):
    QatTrainer(trained_run, tmp_path / "straight", helpers.fast_qat_config(steps=2), progress=False).run()
    QatTrainer(trained_run, tmp_path / "resumed", helpers.fast_qat_config(steps=1), progress=False).run()
    QatTrainer(trained_run, tmp_path / "resumed", helpers.fast_qat_config(steps=2), resume=True, progress=False).run()
    straight, straight_meta = model_tensors_of(tmp_path / "straight")
    resumed, resumed_meta = model_tensors_of(tmp_path / "resumed")
    assert straight_meta["progress"]["step"] == resumed_meta["progress"]["step"] == 2
    assert set(straight) == set(resumed)
    assert all(torch.equal(straight[name], resumed[name]) for name in straight)
    # QAT moved the weights away from the float ones it started from.
    float_tensors, _ = load_checkpoint(tmp_path / "straight" / QAT_CHECKPOINT_NAME)
    assert not torch.equal(straight["model/networks.0.nr_head.weight"], float_tensors["float/networks.0.nr_head.weight"])


def test_existing_run_needs_resume_and_the_same_settings(trained_run, tmp_path, helpers):
    QatTrainer(trained_run, tmp_path, helpers.fast_qat_config(steps=0), progress=False).run()
    with pytest.raises(HearmaskError, match="already holds a QAT run"):
        QatTrainer(trained_run, tmp_path, helpers.fast_qat_config(steps=0), progress=False)
    with pytest.raises(HearmaskError, match="only --qat-steps may change"):
        QatTrainer(trained_run, tmp_path, helpers.fast_qat_config(learning_rate=0.5), resume=True, progress=False)
    with pytest.raises(HearmaskError, match="another float checkpoint"):
        QatTrainer(trained_run / "checkpoint.json", tmp_path, helpers.fast_qat_config(steps=0), resume=True,
                   progress=False)
    with pytest.raises(HearmaskError, match="holds no qat_checkpoint.json"):
        QatTrainer(trained_run, tmp_path / "empty", helpers.fast_qat_config(), resume=True, progress=False)


def test_invalid_settings_and_sources_are_clear_errors(tmp_path, helpers):
    with pytest.raises(HearmaskError, match="QAT segment_seconds must be within"):
        helpers.fast_qat_config(segment_seconds=0.01)
    with pytest.raises(HearmaskError, match="no checkpoint at"):
        QatTrainer(tmp_path / "nothing", tmp_path / "out", helpers.fast_qat_config(), progress=False)


def test_distillation_adds_the_weighted_mask_distance_to_the_float_model(trained_run, tmp_path, helpers):
    """With a distillation weight, the QAT loss is the task loss plus weight × mean |dB difference| of the
    QAT masks from the frozen float network's on the same input."""
    trainer = QatTrainer(trained_run, tmp_path, helpers.fast_qat_config(steps=0, distillation_weight=3.0),
                         progress=False)
    trainer.run()  # calibrates
    batch = trainer.data.train_batch(0)
    with torch.no_grad(), trainer._mask_recorder() as records:
        trainer.loss(trainer.qat_system, batch.noisy, batch.clean, batch.audiogram, batch.channel_loss_db)
        distillation = trainer._distillation(records)
    assert len(records) == 1
    index, args, (nr_db, hlc_db) = records[0]
    with torch.no_grad():
        float_nr_db, float_hlc_db = trainer.float_system.networks[0](*args[:2])
    expected = 3.0 * ((nr_db - float_nr_db).abs().mean() + (hlc_db - float_hlc_db).abs().mean())
    assert float(distillation) == pytest.approx(float(expected), rel=1e-6) and float(distillation) > 0
    # Weight 0 records nothing and adds nothing.
    plain = QatTrainer(trained_run, tmp_path / "plain", helpers.fast_qat_config(steps=0), progress=False)
    with plain._mask_recorder() as records:
        plain.loss(plain.qat_system, batch.noisy, batch.clean, batch.audiogram, batch.channel_loss_db)
    assert records == [] and float(plain._distillation(records)) == 0.0


def test_a_checkpoint_written_before_a_setting_existed_resumes_with_its_default(trained_run, tmp_path, helpers):
    import json

    QatTrainer(trained_run, tmp_path, helpers.fast_qat_config(steps=1), progress=False).run()
    path = tmp_path / QAT_CHECKPOINT_NAME
    document = json.loads(path.read_text())
    del document["qat_config"]["distillation_weight"]  # as session-2 checkpoints were written
    path.write_text(json.dumps(document))
    resumed = QatTrainer(trained_run, tmp_path, helpers.fast_qat_config(steps=2), resume=True, progress=False)
    assert resumed.step == 1
    with pytest.raises(HearmaskError, match="only --qat-steps may change"):
        QatTrainer(trained_run, tmp_path, helpers.fast_qat_config(steps=2, distillation_weight=1.0), resume=True,
                   progress=False)


def test_a_warm_started_run_quantizes_without_its_starting_checkpoint(trained_run, corpus, tmp_path, helpers):
    import shutil

    from hearmask.model.train_config import train_config_from_dict
    from hearmask.model.trainer import Trainer

    start = tmp_path / "start"
    shutil.copytree(trained_run, start)
    config = train_config_from_dict({
        "data": {"clean_dir": str(corpus / "clean"), "noise_dir": str(corpus / "noise"), "segment_seconds": 0.5},
        "model": {"hidden_size": 16, "encoder_size": 16},
        "train": {"steps": 2, "steps_per_epoch": 2, "batch_size": 2, "validation_batches": 1, "init_from": str(start)},
    })
    Trainer(config, tmp_path / "warm", progress=False).run()
    shutil.rmtree(start)  # as on another machine: the path the run started from is gone
    summary = QatTrainer(tmp_path / "warm", tmp_path / "qat", helpers.fast_qat_config(steps=1), progress=False).run()
    assert summary["step"] == 1
