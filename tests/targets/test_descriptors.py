"""Target descriptors: every shipped TOML loads; user folders add boards; each malformed case names the problem."""

import json
import re

import pytest

from hearmask.errors import HearmaskError
from hearmask.targets.descriptors import (
    BOARDS_DIR,
    REQUIRED_FIELDS,
    TARGETS_DIR_ENV,
    TOML_FIELDS,
    TargetDescriptor,
    list_targets,
    load_target,
    load_target_file,
)

QEMU_TARGETS = {"cortex-m3-qemu": "mps2-an385", "cortex-m33-qemu": "mps2-an505", "cortex-m55-qemu": "mps3-an547"}

USER_BOARD = {
    "name": "my-board", "title": "A user's board", "kind": "cortex-m", "runtime": "tflm-cmsis-nn",
    "cpu": "Cortex-M4F", "cores": 1, "clock_hz": 100_000_000, "flash_bytes": 524_288, "ram_bytes": 131_072,
    "mac_per_cycle": 0.5, "has_dwt": True, "has_fpu": True, "has_mve": False, "emulated": False,
}


def toml_text(values: dict) -> str:
    """A TOML document of flat ``key = value`` lines (strings, integers, floats, booleans)."""
    def value_text(value):
        if isinstance(value, bool):
            return "true" if value else "false"
        return json.dumps(value) if isinstance(value, str) else repr(value)

    return "".join(f"{key} = {value_text(value)}\n" for key, value in values.items())


def write_board(folder, values: dict, file_name: str | None = None):
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / (file_name or f"{values.get('name', 'board')}.toml")
    path.write_text(toml_text(values))
    return path


def test_every_shipped_descriptor_loads_and_is_consistent():
    files = sorted(BOARDS_DIR.glob("*.toml"))
    targets = list_targets()
    assert len(targets) == len(files) >= 12
    assert {target.source_file for target in targets} == {str(path) for path in files}
    names = {target.name for target in targets}
    assert {"rpi3b+", "rpi4", "rpi5", "cortex-m4f-nrf52840", "cortex-m7-stm32f746", "cortex-m7-stm32h7"} <= names
    for target in targets:
        assert isinstance(target, TargetDescriptor)
        assert load_target_file(target.source_file) == target
        assert "estimate" in target.sources  # the MAC/cycle figure is stated as an estimate
        if target.kind == "rpi":
            assert target.runtime == "litert" and target.flash_bytes is None and target.cores == 4
        else:
            assert target.flash_bytes > 0 and target.runtime in ("tflm-cmsis-nn", "hearmask-c")
    # The emulated boards: exactly these names and QEMU machines (later stages depend on them).
    emulated = {target.name: target.qemu_machine for target in targets if target.emulated}
    assert emulated == QEMU_TARGETS
    assert all(load_target(name).runtime == "hearmask-c" and not load_target(name).has_dwt for name in QEMU_TARGETS)
    assert any(target.ethos_u == "ethos-u55-128" for target in targets)
    assert load_target("cortex-m4f-nrf52840").clock_hz == 64_000_000


def test_every_shipped_mac_per_cycle_line_has_a_comment_saying_it_is_an_estimate():
    for path in BOARDS_DIR.glob("*.toml"):
        lines = path.read_text().splitlines()
        index = next(i for i, line in enumerate(lines) if line.startswith("mac_per_cycle"))
        comment = " ".join(line for line in lines[max(0, index - 6):index] if line.startswith("#"))
        assert "ESTIMATE" in comment, path.name


def test_a_user_folder_adds_a_board(tmp_path, monkeypatch):
    monkeypatch.delenv(TARGETS_DIR_ENV, raising=False)
    write_board(tmp_path / "boards", USER_BOARD)
    shipped = {target.name for target in list_targets()}
    with_user = {target.name for target in list_targets([tmp_path / "boards"])}
    assert with_user == shipped | {"my-board"}
    board = load_target("my-board", [tmp_path / "boards"])
    assert (board.clock_hz, board.ram_bytes, board.mac_per_cycle) == (100_000_000, 131_072, 0.5)
    assert board.source_file == str(tmp_path / "boards" / "my-board.toml")
    with pytest.raises(HearmaskError, match=r"unknown target 'my-board'.*--targets-dir"):
        load_target("my-board")
    # The environment variable names folders too.
    monkeypatch.setenv(TARGETS_DIR_ENV, str(tmp_path / "boards"))
    assert load_target("my-board") == board


def _without(values: dict, key: str) -> dict:
    return {name: value for name, value in values.items() if name != key}


MALFORMED = [
    ("unknown field", {**USER_BOARD, "colour": "red"}, r"unknown field\(s\) \['colour'\]; accepted: \['name'"),
    ("string for integer", {**USER_BOARD, "cores": "4"}, r"field 'cores' must be an integer, got '4' \(string\)"),
    ("boolean for integer", {**USER_BOARD, "clock_hz": True}, r"field 'clock_hz' must be an integer, got True"),
    ("integer for boolean", {**USER_BOARD, "has_fpu": 1}, r"field 'has_fpu' must be true or false, got 1 \(integer\)"),
    ("float for integer", {**USER_BOARD, "ram_bytes": 1.5}, r"field 'ram_bytes' must be an integer, got 1.5 \(float\)"),
    ("missing field", _without(USER_BOARD, "clock_hz"), r"missing required field\(s\) \['clock_hz'\]"),
    ("unknown kind", {**USER_BOARD, "kind": "esp32"},
     r"field 'kind' = 'esp32' is not accepted; accepted: rpi \| cortex-m"),
    ("runtime of another kind", {**USER_BOARD, "runtime": "litert"},
     r"field 'runtime' = 'litert' is not accepted; accepted: tflm-cmsis-nn \| hearmask-c for kind 'cortex-m'"),
    ("zero clock", {**USER_BOARD, "clock_hz": 0}, r"field 'clock_hz' = 0 is not accepted; accepted: an integer > 0"),
    ("negative MAC/cycle", {**USER_BOARD, "mac_per_cycle": -1.0}, r"field 'mac_per_cycle' = -1.0 is not accepted"),
    ("cortex-m without flash", _without(USER_BOARD, "flash_bytes"), r"missing required field 'flash_bytes'"),
    ("emulated without machine", {**USER_BOARD, "emulated": True}, r"emulated = true needs field 'qemu_machine'"),
    ("machine on hardware", {**USER_BOARD, "qemu_machine": "mps2-an385"}, r"field 'qemu_machine' = 'mps2-an385'"),
    ("unknown NPU", {**USER_BOARD, "ethos_u": "ethos-u99"}, r"field 'ethos_u' = 'ethos-u99' is not accepted; "
     r"accepted: ethos-u55-32 \|"),
    ("vela config without NPU", {**USER_BOARD, "vela_memory_mode": "Shared_Sram"}, r"only with ethos_u set"),
    ("bad name", {**USER_BOARD, "name": "My Board"}, r"field 'name' = 'My Board' is not accepted"),
]


@pytest.mark.parametrize("case, values, message", MALFORMED, ids=[case[0] for case in MALFORMED])
def test_each_malformed_descriptor_names_the_file_field_and_accepted_values(tmp_path, case, values, message):
    path = write_board(tmp_path, values, "board.toml")
    with pytest.raises(HearmaskError, match=message) as raised:
        load_target_file(path)
    assert str(path) in str(raised.value)
    # A malformed file in a user folder stops every lookup, with the same message.
    with pytest.raises(HearmaskError, match=message):
        load_target("rpi4", [tmp_path])


def test_invalid_toml_and_missing_files(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text('name = "x"\ncores = [1,\n')
    with pytest.raises(HearmaskError, match=re.escape(f"target descriptor {str(path)!r} is not valid TOML")):
        load_target_file(path)
    with pytest.raises(HearmaskError, match="no target descriptor at"):
        load_target_file(tmp_path / "absent.toml")
    with pytest.raises(HearmaskError, match=r"targets folder .*absent.* does not exist"):
        list_targets([tmp_path / "absent"])


def test_a_name_defined_twice_is_an_error_naming_both_files(tmp_path):
    first = write_board(tmp_path / "a", USER_BOARD)
    second = write_board(tmp_path / "b", USER_BOARD, "other.toml")
    with pytest.raises(HearmaskError, match="target name 'my-board' is defined twice") as raised:
        list_targets([tmp_path / "a", tmp_path / "b"])
    assert str(first) in str(raised.value) and str(second) in str(raised.value)
    # Reusing a shipped name is a duplicate too.
    write_board(tmp_path / "c", {**USER_BOARD, "name": "rpi4"})
    with pytest.raises(HearmaskError, match="target name 'rpi4' is defined twice"):
        list_targets([tmp_path / "c"])


def test_field_lists_match_the_dataclass():
    assert set(REQUIRED_FIELDS) < set(TOML_FIELDS)
    assert set(USER_BOARD) - {"flash_bytes"} == set(REQUIRED_FIELDS)
    assert "source_file" not in TOML_FIELDS
