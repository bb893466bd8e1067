"""Audio files: bad input gives clear errors; resampling and channel policy."""

import numpy as np
import pytest
import soundfile

from hearmask.errors import HearmaskError
from hearmask.model.audio_io import Audio, channels_to_process, read_audio, resample, write_audio


def test_round_trip_keeps_rate_subtype_and_samples(tmp_path):
    samples = np.random.default_rng(0).uniform(-0.5, 0.5, (4410, 2)).astype(np.float32)
    path = tmp_path / "x.wav"
    soundfile.write(path, samples, 44100, subtype="PCM_16")
    audio = read_audio(path)
    assert (audio.sample_rate_hz, audio.subtype, audio.samples.shape) == (44100, "PCM_16", (4410, 2))
    np.testing.assert_allclose(audio.samples, samples, atol=1 / 32768)
    write_audio(tmp_path / "y.wav", audio)
    again = read_audio(tmp_path / "y.wav")
    np.testing.assert_array_equal(again.samples, audio.samples)


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "cannot read audio file"),
        (b"RIFF\x00\x00\x00\x00WAVEfmt garbage", "cannot read audio file"),
        (b"this is a text file, not audio\n" * 10, "cannot read audio file"),
    ],
)
def test_unreadable_files_name_the_file(tmp_path, content, message):
    path = tmp_path / "broken.wav"
    path.write_bytes(content)
    with pytest.raises(HearmaskError, match=message) as info:
        read_audio(path)
    assert "broken.wav" in str(info.value)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(HearmaskError, match="does not exist"):
        read_audio(tmp_path / "nope.wav")
    with pytest.raises(HearmaskError, match="is not a file"):
        read_audio(tmp_path)


def test_empty_and_nonfinite_files(tmp_path):
    soundfile.write(tmp_path / "empty.wav", np.zeros((0, 1), np.float32), 16000, subtype="FLOAT")
    with pytest.raises(HearmaskError, match="holds no samples"):
        read_audio(tmp_path / "empty.wav")
    soundfile.write(tmp_path / "nan.wav", np.array([0.1, np.nan, 0.2], np.float32), 16000, subtype="FLOAT")
    with pytest.raises(HearmaskError, match="NaN or infinite"):
        read_audio(tmp_path / "nan.wav")


def test_write_rejects_unknown_suffix(tmp_path):
    with pytest.raises(HearmaskError, match=r"accepted: \.wav, \.flac, \.ogg"):
        write_audio(tmp_path / "out.mp3", Audio(np.zeros((10, 1), np.float32), 16000))
    assert not list(tmp_path.iterdir())  # nothing half-written left behind


def test_resample_preserves_a_tone():
    rate_in, rate_out, tone_hz = 44100, 16000, 1000.0
    t = np.arange(rate_in) / rate_in
    tone = np.sin(2 * np.pi * tone_hz * t)
    out = resample(tone, rate_in, rate_out)
    assert len(out) == rate_out
    spectrum = np.abs(np.fft.rfft(out * np.hanning(len(out))))
    assert np.argmax(spectrum) * rate_out / len(out) == pytest.approx(tone_hz, abs=1.0)
    assert resample(tone, rate_in, rate_in) is tone


def test_channel_modes():
    samples = np.array([[1.0, 3.0], [2.0, 4.0]], np.float32)
    np.testing.assert_array_equal(channels_to_process(samples, "mix"), [[2.0, 3.0]])
    np.testing.assert_array_equal(channels_to_process(samples, "each"), [[1.0, 2.0], [3.0, 4.0]])
    with pytest.raises(HearmaskError, match="accepted: mix, each"):
        channels_to_process(samples, "left")
