"""`hearmask enhance`: any rate and channel count in, same length and rate out; clean errors."""

import json

import numpy as np
import pytest
import soundfile

from hearmask.cli import main
from hearmask.model.stft_config import shipped_stft_config


def write_noise(path, rate_hz, channels, seconds=0.5, level=0.05, subtype="PCM_16"):
    samples = np.random.default_rng(0).standard_normal((int(rate_hz * seconds), channels)) * level
    soundfile.write(path, samples, rate_hz, subtype=subtype)
    return soundfile.read(path, always_2d=True)[0]


@pytest.mark.parametrize("rate_hz, channels, mode, channels_out", [
    (16000, 1, "mix", 1), (44100, 2, "mix", 1), (22050, 2, "each", 2), (8000, 1, "mix", 1),
])
def test_output_has_input_length_and_rate(tmp_path, capsys, rate_hz, channels, mode, channels_out):
    source = tmp_path / "in.wav"
    samples = write_noise(source, rate_hz, channels)
    status = main(["enhance", str(source), "-o", str(tmp_path / "out.wav"), "--audiogram", "N2",
                   "--method", "nalr", "--channels", mode, "--json"])
    assert status == 0
    report = json.loads(capsys.readouterr().out)
    out, out_rate = soundfile.read(tmp_path / "out.wav", always_2d=True)
    assert out_rate == rate_hz and out.shape == (len(samples), channels_out)
    assert report["num_channels_out"] == channels_out and report["algorithmic_latency_ms"] == 8.0


def test_normal_hearing_nalr_is_the_delayed_input(tmp_path):
    source = tmp_path / "in.wav"
    samples = write_noise(source, 16000, 1, subtype="FLOAT")[:, 0]
    assert main(["enhance", str(source), "-o", str(tmp_path / "out.wav"), "--audiogram", "NH", "--method", "nalr"]) == 0
    out = soundfile.read(tmp_path / "out.wav")[0]
    delay = shipped_stft_config("default").algorithmic_latency_samples
    error = out[delay:] - samples[:-delay]
    assert 10 * np.log10(np.sum(samples[:-delay] ** 2) / max(np.sum(error**2), 1e-300)) > 60


def test_overload_is_never_clipped_silently(tmp_path, capsys):
    source = tmp_path / "in.wav"
    write_noise(source, 16000, 1, level=0.3)
    assert main(["enhance", str(source), "-o", str(tmp_path / "float.wav"), "--audiogram", "N6", "--method", "nalr"]) == 0
    assert "handled by --on-overload float" in capsys.readouterr().out
    info = soundfile.info(tmp_path / "float.wav")
    assert info.subtype == "FLOAT" and np.max(np.abs(soundfile.read(tmp_path / "float.wav")[0])) > 1.0
    assert main(["enhance", str(source), "-o", str(tmp_path / "norm.wav"), "--audiogram", "N6",
                 "--method", "nalr", "--on-overload", "normalize"]) == 0
    normalized = soundfile.read(tmp_path / "norm.wav")[0]
    assert soundfile.info(tmp_path / "norm.wav").subtype == "PCM_16"
    assert 20 * np.log10(np.max(np.abs(normalized))) == pytest.approx(-1.0, abs=0.01)


@pytest.mark.parametrize("make_input, audiogram, fragment", [
    (lambda p: p.write_text("not audio"), "N3", "cannot read audio file"),
    (lambda p: None, "N3", "does not exist"),
    (lambda p: write_noise(p, 16000, 1), "N9", "did you mean 'N7'"),
    (lambda p: write_noise(p, 16000, 1), "missing_audiogram.json", "missing_audiogram.json"),
])
def test_bad_input_exits_nonzero_with_one_line(tmp_path, capsys, make_input, audiogram, fragment):
    source = tmp_path / "in.wav"
    make_input(source)
    status = main(["enhance", str(source), "-o", str(tmp_path / "out.wav"), "--audiogram", audiogram,
                   "--method", "nalr"])
    stderr = capsys.readouterr().err
    assert status != 0
    assert fragment in stderr and len(stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out.wav").exists()


@pytest.fixture
def tiny_model(tmp_path):
    import torch

    from hearmask.model.system import HearingAidSystem, build_masknet_configs
    from hearmask.model.system_io import save_system

    torch.manual_seed(0)
    config = shipped_stft_config("default")
    system = HearingAidSystem("joint", config, build_masknet_configs("joint", config, "default",
                                                                     {"hidden_size": 8, "encoder_size": 8}))
    return save_system(tmp_path / "tiny" / "checkpoint.json", system)


def test_model_at_zero_strengths_is_the_delayed_input(tmp_path, tiny_model):
    source = tmp_path / "in.wav"
    samples = write_noise(source, 16000, 1, subtype="FLOAT")[:, 0]
    assert main(["enhance", str(source), "-o", str(tmp_path / "out.wav"), "--audiogram", "N3",
                 "--model", str(tiny_model.parent), "--nr", "0", "--hlc", "0"]) == 0
    out = soundfile.read(tmp_path / "out.wav")[0]
    delay = shipped_stft_config("default").algorithmic_latency_samples
    error = out[delay:] - samples[:-delay]
    assert 10 * np.log10(np.sum(samples[:-delay] ** 2) / max(np.sum(error**2), 1e-300)) > 60
    assert main(["enhance", str(source), "-o", str(tmp_path / "full.wav"), "--audiogram", "N3",
                 "--model", str(tiny_model)]) == 0
    assert not np.allclose(soundfile.read(tmp_path / "full.wav")[0], out)


@pytest.mark.parametrize("extra, fragment", [
    (["--model", "/nonexistent/run"], "no checkpoint at"),
    (["--nr", "1.5"], "allow-exaggeration"),
])
def test_model_option_errors(tmp_path, capsys, tiny_model, extra, fragment):
    source = tmp_path / "in.wav"
    write_noise(source, 16000, 1)
    arguments = ["enhance", str(source), "-o", str(tmp_path / "out.wav"), "--audiogram", "N3"]
    if "--model" not in extra:
        arguments += ["--model", str(tiny_model)]
    assert main(arguments + extra) == 1
    assert fragment in capsys.readouterr().err
