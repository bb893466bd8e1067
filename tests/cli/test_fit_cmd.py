"""`hearmask fit`: JSON with needed/available/fits per budget, report files, exit 0 / 1 / 2."""

import json

import pytest

from hearmask import cli
from hearmask.quantize.manifest import read_manifest

TINY_RAM_BOARD = ('name = "tiny-ram"\ntitle = "A board with 4 KB of RAM"\nkind = "cortex-m"\n'
                  'runtime = "tflm-cmsis-nn"\ncpu = "Cortex-M7"\ncores = 1\nclock_hz = 480_000_000\n'
                  'flash_bytes = 2_097_152\nram_bytes = 4_096\nmac_per_cycle = 1.0\nhas_dwt = true\nhas_fpu = true\n'
                  'has_mve = false\nemulated = false\n')


@pytest.fixture(scope="module")
def model_dir(quantized_dir):
    return quantized_dir  # the shared tiny int8 folder (tests/conftest.py)


def test_fit_json_has_one_entry_per_budget_and_writes_the_report(model_dir, tmp_path, capsys):
    report_dir = tmp_path / "report"
    assert cli.main(["fit", str(model_dir), "--target", "cortex-m7-stm32h7", "--json", "--report",
                     str(report_dir)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["fits"] is True and result["target"]["name"] == "cortex-m7-stm32h7"
    assert set(result["budgets"]) == {"flash", "ram", "compute", "latency"}
    for budget in result["budgets"].values():
        assert budget["fits"] is True and budget["needed"] <= budget["available"]
    network = read_manifest(model_dir)["networks"][0]
    assert result["budgets"]["ram"]["needed"] >= network["tflm_arena_bytes"]
    assert result["budgets"]["compute"]["needed"] == pytest.approx(network["macs_per_hop"] / 480.0)  # us at 1 MAC/cycle
    assert json.loads((report_dir / "report.json").read_text()) == result
    assert "**FITS**" in (report_dir / "report.md").read_text()

    assert cli.main(["fit", str(model_dir), "--target", "rpi4"]) == 0
    text = capsys.readouterr().out
    assert "not applicable" in text and "overall: FITS" in text


def test_a_board_too_small_exits_1_naming_the_budget(model_dir, tmp_path, capsys):
    (tmp_path / "tiny-ram.toml").write_text(TINY_RAM_BOARD)
    assert cli.main(["fit", str(model_dir), "--target", "tiny-ram", "--targets-dir", str(tmp_path), "--json"]) == 1
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    assert result["verdict"] == "does not fit" and result["budgets"]["ram"]["fits"] is False
    assert result["budgets"]["ram"]["available"] == 4096
    assert "does not fit tiny-ram: ram" in captured.err


def test_bad_input_exits_2_with_one_line(model_dir, tmp_path, capsys):
    assert cli.main(["fit", str(model_dir), "--target", "no-such-board"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("hearmask fit: error: unknown target 'no-such-board'") and error.count("\n") == 1
    assert cli.main(["fit", str(tmp_path / "missing"), "--target", "rpi4"]) == 2
    assert "no model manifest at" in capsys.readouterr().err
    (tmp_path / "broken.toml").write_text("name = \n")
    assert cli.main(["fit", str(model_dir), "--target", "rpi4", "--targets-dir", str(tmp_path)]) == 2
    assert "is not valid TOML" in capsys.readouterr().err
