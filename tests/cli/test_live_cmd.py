"""``hearmask live`` argument handling (the real-time runs are in tests/firmware_bridge/test_live_jack.py)."""

import pytest

from hearmask import cli


def test_help_names_the_keys_the_limiter_and_the_jack_server(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["live", "--help"])
    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for phrase in ("--max-output-dbfs", "--max-gain-db", "--measure-latency", "--serial", "jackd -R -d dummy",
                   "+ / - NR strength"):
        assert phrase in text


@pytest.mark.parametrize("arguments, message", [
    (["--loopback", "system:playback_1", "system:capture_1"], "--loopback only applies to --measure-latency"),
    (["--in-file", "x.wav"], "both --in-file and --out-file"),
    (["--audiogram", "N9"], "N9"),
])
def test_bad_combinations_exit_1_with_one_line(tmp_path, capsys, arguments, message):
    assert cli.main(["live", "--model", str(tmp_path), *arguments]) == 1
    error = capsys.readouterr().err
    assert message in error and error.count("\n") == 1


def test_a_folder_without_a_model_is_named(tmp_path, capsys):
    assert cli.main(["live", "--model", str(tmp_path)]) == 1
    assert "no model manifest" in capsys.readouterr().err
