"""CLI conventions: --version, --help for every command, and device-side imports stay light."""

import subprocess
import sys

import pytest

from hearmask import __version__
from hearmask.cli import build_parser, main


def test_version(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"hearmask {__version__}"


def command_paths():
    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.dest == "command")
    paths = []
    for name, sub in subparsers.choices.items():
        nested = [a for a in sub._actions if getattr(a, "choices", None) and isinstance(a.choices, dict)]
        paths.append([name])
        for action in nested:
            paths.extend([name, child] for child in action.choices)
    return paths


@pytest.mark.parametrize("path", command_paths(), ids=lambda p: " ".join(p))
def test_every_command_has_help(path, capsys):
    with pytest.raises(SystemExit) as info:
        main([*path, "--help"])
    assert info.value.code == 0
    assert "usage: hearmask" in capsys.readouterr().out


def test_expected_commands_exist():
    names = {path[0] for path in command_paths()}
    assert {"profiles", "data", "enhance", "train", "info", "pipeline"} <= names


def test_no_command_prints_help_and_fails(capsys):
    assert main([]) == 2
    assert "usage: hearmask" in capsys.readouterr().err


def test_device_side_modules_import_without_torch_or_tensorflow():
    """What a Raspberry Pi agent needs must not pull torch or tensorflow (issue 3)."""
    modules = ["hearmask.model.stft_config", "hearmask.model.stft_stream", "hearmask.model.features",
               "hearmask.model.audio_io", "hearmask.model.gains", "hearmask.profiles.io",
               "hearmask.model.baselines.nalr"]
    code = (f"import sys; import {', '.join(modules)}; "
            "bad = [m for m in ('torch', 'tensorflow') if m in sys.modules]; print(bad); sys.exit(bool(bad))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
