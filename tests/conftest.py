"""Fixtures shared across test areas."""

import numpy as np
import pytest
import soundfile


@pytest.fixture(scope="session")
def corpus(tmp_path_factory):
    """Two folders of short synthetic files: modulated harmonic 'speech' and noise for training-style tests."""
    root = tmp_path_factory.mktemp("corpus")
    rng = np.random.default_rng(0)
    t = np.arange(16000) / 16000
    for folder in ("clean", "noise"):
        (root / folder).mkdir()
    for i in range(4):
        f0 = 100 + 30 * i
        voiced = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 12))
        envelope = 0.5 * (1 + np.sin(2 * np.pi * 3 * t + i))
        soundfile.write(root / "clean" / f"s{i}.wav", (0.1 * voiced * envelope).astype(np.float32), 16000)
        soundfile.write(root / "noise" / f"n{i}.wav", (0.1 * rng.standard_normal(16000)).astype(np.float32), 16000)
    return root


@pytest.fixture(scope="session")
def trained_run(corpus, tmp_path_factory):
    """A tiny float model (E = H = 16) trained for two steps on the corpus: a real ``hearmask train`` run folder."""
    from hearmask.model.train_config import train_config_from_dict
    from hearmask.model.trainer import Trainer

    run_dir = tmp_path_factory.mktemp("runs") / "tiny"
    config = train_config_from_dict({
        "data": {"clean_dir": str(corpus / "clean"), "noise_dir": str(corpus / "noise"), "segment_seconds": 0.5},
        "model": {"hidden_size": 16, "encoder_size": 16},
        "train": {"steps": 2, "steps_per_epoch": 2, "batch_size": 2, "validation_batches": 1},
    })
    Trainer(config, run_dir, progress=False).run()
    return run_dir


@pytest.fixture(scope="session")
def quantized_dir(trained_run, tmp_path_factory):
    """The tiny trained run, calibrated (no QAT steps) and converted: a real ``hearmask quantize`` folder."""
    from hearmask.quantize.qat_training import QatConfig
    from hearmask.quantize.quantize_model import quantize_model

    out_dir = tmp_path_factory.mktemp("quantized") / "int8"
    quantize_model(trained_run, out_dir, QatConfig(steps=0, calibration_batches=1, batch_size=1, segment_seconds=0.1),
                   progress=False)
    return out_dir


def _corrupt_tflite_weights(model_bytes: bytes, point: str) -> bytes:
    """The same .tflite with the int8 weights of quant point ``point`` negated (a deliberately broken model)."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(model_bytes, 0)
    for tensor in model.subgraphs[0].tensors:
        buffer = model.buffers[tensor.buffer]
        if tensor.name.decode().startswith(point + "/") and tensor.type == 9 and buffer.data is not None \
                and len(buffer.data):
            buffer.data = (-np.asarray(buffer.data).view(np.int8)).view(np.uint8)
    builder = flatbuffers.Builder(0)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


@pytest.fixture
def corrupt_tflite_weights():
    return _corrupt_tflite_weights
