"""`hearmask targets list|show`: shipped boards, a user's folder, JSON forms, clear errors."""

import json

from hearmask import cli
from hearmask.targets.descriptors import list_targets, load_target

USER_BOARD = ('name = "bench-m4"\ntitle = "Bench board"\nkind = "cortex-m"\nruntime = "hearmask-c"\n'
              'cpu = "Cortex-M4F"\ncores = 1\nclock_hz = 80_000_000\nflash_bytes = 262_144\nram_bytes = 65_536\n'
              'mac_per_cycle = 0.5\nhas_dwt = true\nhas_fpu = true\nhas_mve = false\nemulated = false\n')


def test_list_shows_every_shipped_target_and_a_users_folder(tmp_path, capsys):
    assert cli.main(["targets", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    shipped = [target.name for target in list_targets()]
    assert [line.split()[0] for line in lines[1:]] == shipped
    assert "64 MHz" in next(line for line in lines if line.startswith("cortex-m4f-nrf52840 "))

    (tmp_path / "bench-m4.toml").write_text(USER_BOARD)
    assert cli.main(["targets", "list", "--targets-dir", str(tmp_path), "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [entry["name"] for entry in listed] == sorted([*shipped, "bench-m4"])
    bench = next(entry for entry in listed if entry["name"] == "bench-m4")
    assert (bench["clock_hz"], bench["ram_bytes"], bench["source_file"]) == (80_000_000, 65_536,
                                                                            str(tmp_path / "bench-m4.toml"))


def test_show_prints_every_field_with_units_and_json(capsys):
    assert cli.main(["targets", "show", "cortex-m55-qemu"]) == 0
    text = capsys.readouterr().out
    assert "32,000,000 Hz (32 MHz)" in text and "mps3-an547" in text and "(estimate)" in text
    assert cli.main(["targets", "show", "rpi5", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == load_target("rpi5").to_dict()
    assert cli.main(["targets", "show", "rpi5"]) == 0
    assert "not binding" in capsys.readouterr().out  # no flash figure for a Pi


def test_unknown_target_and_bad_descriptor_are_one_line_errors(tmp_path, capsys):
    assert cli.main(["targets", "show", "esp32"]) == 1
    error = capsys.readouterr().err
    assert error.startswith("hearmask targets: error: unknown target 'esp32'; accepted: cortex-m-generic, cortex-m3-qemu")
    assert error.count("\n") == 1
    (tmp_path / "bad.toml").write_text(USER_BOARD.replace("cores = 1", "cores = \"one\""))
    assert cli.main(["targets", "list", "--targets-dir", str(tmp_path)]) == 1
    error = capsys.readouterr().err
    assert "bad.toml" in error and "field 'cores' must be an integer, got 'one' (string)" in error
