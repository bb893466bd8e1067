"""Cortex-M bundles: the QEMU bundle (generated C + firmware + ELFs + sizes) and the TFLM bundle
(model array, exact op resolver, measured arena, template whose protocol part compiles with host
gcc and arm-none-eabi-gcc; TFLM itself is not available here)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from hearmask.errors import HearmaskError
from hearmask.targets.bundle_cortex_m import (BUNDLE_FILE, RESOLVER_METHODS, export_cortex_m_bundle,
                                              model_data_sources, op_resolver_header, qemu_firmware_for)
from hearmask.targets.descriptors import load_target
from hearmask.targets.firmware_build import FIRMWARE_DIR, section_sizes, toolchain_available

needs_toolchain = pytest.mark.skipif(not toolchain_available(), reason="arm-none-eabi-gcc is not installed")
HARDWARE_TARGET = "cortex-m4f-nrf52840"  # has_dwt = true


def _manifest_network(model_dir: Path) -> dict:
    return json.loads((model_dir / "manifest.json").read_text())["networks"][0]


@pytest.fixture(scope="module")
def qemu_bundle(quantized_dir, tmp_path_factory):
    return export_cortex_m_bundle(quantized_dir, "cortex-m55-qemu", tmp_path_factory.mktemp("bundle") / "m55")


@pytest.fixture(scope="module")
def tflm_bundle(quantized_dir, tmp_path_factory):
    return export_cortex_m_bundle(quantized_dir, HARDWARE_TARGET, tmp_path_factory.mktemp("bundle") / "nrf")


@needs_toolchain
def test_qemu_bundle_holds_sources_elfs_and_their_sizes(qemu_bundle, quantized_dir):
    bundle = json.loads((qemu_bundle / BUNDLE_FILE).read_text())
    model_bytes = (quantized_dir / "model_int8.tflite").read_bytes()
    assert bundle["model"]["sha256"] == hashlib.sha256(model_bytes).hexdigest()
    assert (qemu_bundle / "model_int8.tflite").read_bytes() == model_bytes
    assert sum(bundle["model"]["op_counts"].values()) == sum(_manifest_network(quantized_dir)["ops"].values())
    firmware = bundle["firmware"]
    assert firmware["machine"] == "mps3-an547" and bundle["target"]["qemu_machine"] == "mps3-an547"
    for key, sizes_key in (("elf", "sizes_bytes"), ("profile_elf", "profile_sizes_bytes")):
        text, data, bss = section_sizes(qemu_bundle / firmware[key])
        assert (firmware[sizes_key]["text"], firmware[sizes_key]["data"], firmware[sizes_key]["bss"]) == (text, data, bss)
    assert firmware["profile_sizes_bytes"]["text"] > firmware["sizes_bytes"]["text"]  # the per-op hooks
    for part in ("src/main.c", "protocol/hm_proto.c", "boards/mps3_an547.ld"):
        assert (qemu_bundle / "firmware" / part).read_bytes() == (FIRMWARE_DIR / part).read_bytes()
    for name, digest in bundle["sha256"].items():
        assert hashlib.sha256((qemu_bundle / name).read_bytes()).hexdigest() == digest
    readme = (qemu_bundle / "README.md").read_text()
    assert "QEMU instruction counts" in readme and "qemu://cortex-m55" in readme
    assert f"text {firmware['sizes_bytes']['text']} B" in readme


@needs_toolchain
def test_profile_finds_the_bundles_elf_and_builds_for_other_boards(qemu_bundle, tmp_path):
    bundle = json.loads((qemu_bundle / BUNDLE_FILE).read_text())
    assert qemu_firmware_for("cortex-m55", qemu_bundle, tmp_path) == qemu_bundle / bundle["firmware"]["elf"]
    assert qemu_firmware_for("cortex-m55", qemu_bundle, tmp_path, profile=True) == \
        qemu_bundle / bundle["firmware"]["profile_elf"]
    m3_elf = qemu_firmware_for("cortex-m3", qemu_bundle, tmp_path)  # same C, another board: built in tmp_path
    assert m3_elf.is_file() and tmp_path in m3_elf.parents and "mps2-an385" in m3_elf.name


def test_tflm_bundle_registers_exactly_the_models_ops_and_its_measured_arena(tflm_bundle, quantized_dir):
    network = _manifest_network(quantized_dir)
    resolver = (tflm_bundle / "tflm" / "hm_op_resolver.h").read_text()
    registered = re.findall(r"resolver\.(\w+)\(\);", resolver)
    assert registered == [RESOLVER_METHODS[op] for op in sorted(network["op_resolver"])]
    assert f"#define HM_MODEL_NUM_OP_TYPES {len(network['op_resolver'])}" in resolver
    config = (tflm_bundle / "tflm" / "hm_model_config.h").read_text()
    arena = int(re.search(r"#define HM_TFLM_ARENA_BYTES (\d+)u", config).group(1))
    assert network["tflm_arena_bytes"] <= arena <= network["tflm_arena_bytes"] + 1024 + 16 and arena % 16 == 0
    assert '#define HM_MODEL_INPUT_NAMES {"state", "audiogram", "features"}' in config
    bundle = json.loads((tflm_bundle / BUNDLE_FILE).read_text())
    assert bundle["tflm"]["timing"] == "DWT cycle counter" and "firmware" not in bundle
    assert "-DHM_TIMING_DWT" in (tflm_bundle / "tflm" / "hm_target.mk").read_text()
    assert "not available" in (tflm_bundle / "README.md").read_text()


def test_model_array_is_the_tflite_byte_for_byte_and_aligned(tflm_bundle, quantized_dir):
    model_bytes = (quantized_dir / "model_int8.tflite").read_bytes()
    source = (tflm_bundle / "tflm" / "model_data.cc").read_text()
    assert "alignas(16) const unsigned char g_hm_model_data[HM_MODEL_DATA_BYTES]" in source
    body = source.split("{", 1)[1].rsplit("}", 1)[0]
    assert bytes(int(value, 16) for value in re.findall(r"0x([0-9a-f]{2})", body)) == model_bytes
    assert f"#define HM_MODEL_DATA_BYTES {len(model_bytes)}u" in (tflm_bundle / "tflm" / "model_data.h").read_text()
    header, _ = model_data_sources(b"\x01\x02", symbol="m")
    assert "extern const unsigned char m[HM_MODEL_DATA_BYTES]" in header


def test_tflm_protocol_is_the_shared_code_and_compiles_with_host_gcc(tflm_bundle, tmp_path):
    for name in ("hm_proto.h", "hm_proto.c"):
        assert (tflm_bundle / "tflm" / name).read_bytes() == (FIRMWARE_DIR / "protocol" / name).read_bytes()
    if shutil.which("gcc") is None:
        pytest.skip("host gcc is not installed")
    result = subprocess.run(["gcc", "-std=c99", "-Wall", "-Wextra", "-Werror", "-c", "hm_proto.c",
                             "-o", str(tmp_path / "hm_proto.o")], cwd=tflm_bundle / "tflm", capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@needs_toolchain
@pytest.mark.parametrize("has_dwt", [True, False], ids=["dwt", "systick"])
def test_tflm_protocol_part_and_generated_c_compile_for_the_core(quantized_dir, tmp_path, has_dwt):
    target = dataclasses.replace(load_target(HARDWARE_TARGET), has_dwt=has_dwt)
    out = export_cortex_m_bundle(quantized_dir, target, tmp_path / "bundle")
    result = subprocess.run(["make", "-s", "protocol-check"], cwd=out / "tflm", capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    mk = (out / "tflm" / "hm_target.mk").read_text()
    assert ("-DHM_TIMING_DWT" in mk) == has_dwt and "HM_CPU = cortex-m4" in mk
    for source in ("hm_model.c", "hm_kernels.c"):  # the interpreter-free option for the same core
        result = subprocess.run(["arm-none-eabi-gcc", "-mcpu=cortex-m4", "-mthumb", "-std=c99", "-O2", "-Wall",
                                 "-Wextra", "-Werror", "-c", source, "-o", str(tmp_path / (source + ".o"))],
                                cwd=out / "model_c", capture_output=True, text=True)
        assert result.returncode == 0, result.stderr


TFLM_STUB = """
#pragma once
#include <stddef.h>
#include <stdint.h>
typedef enum { kTfLiteOk = 0, kTfLiteError = 1 } TfLiteStatus;
struct TfLiteTensor { union { int8_t *int8; } data; size_t bytes; };
namespace tflite {
struct Model {};
inline const Model *GetModel(const void *) { return nullptr; }
template <unsigned int N> class MicroMutableOpResolver {
 public:
  TfLiteStatus AddAdd(); TfLiteStatus AddSub(); TfLiteStatus AddMul(); TfLiteStatus AddFullyConnected();
  TfLiteStatus AddLogistic(); TfLiteStatus AddTanh(); TfLiteStatus AddConcatenation(); TfLiteStatus AddStridedSlice();
};
class MicroInterpreter {
 public:
  template <unsigned int N>
  MicroInterpreter(const Model *, const MicroMutableOpResolver<N> &, uint8_t *, size_t);
  TfLiteStatus AllocateTensors(); TfLiteStatus Invoke(); size_t arena_used_bytes() const;
  size_t inputs_size() const; TfLiteTensor *input(size_t); TfLiteTensor *output(size_t);
};
}  // namespace tflite
"""


@needs_toolchain
def test_tflm_main_is_well_formed_against_the_tflm_api_it_uses(tflm_bundle, tmp_path):
    """Syntax and types of main.cc against a stub of the few TFLM declarations it calls (the real tree is not here)."""
    if shutil.which("arm-none-eabi-g++") is None:
        pytest.skip("arm-none-eabi-g++ is not installed")
    for header in ("tensorflow/lite/micro/micro_interpreter.h", "tensorflow/lite/schema/schema_generated.h",
                   "tensorflow/lite/micro/micro_mutable_op_resolver.h"):
        (tmp_path / header).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / header).write_text(TFLM_STUB)
    result = subprocess.run(["arm-none-eabi-g++", "-mcpu=cortex-m4", "-mthumb", "-std=c++17", "-fsyntax-only",
                             "-Wall", "-Werror", "-fno-exceptions", "-fno-rtti", f"-I{tmp_path}", "-I.", "main.cc"],
                            cwd=tflm_bundle / "tflm", capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_op_resolver_rejects_an_op_it_cannot_register():
    with pytest.raises(HearmaskError, match="GRU_CUSTOM"):
        op_resolver_header(["ADD", "GRU_CUSTOM"])


def test_export_refuses_other_targets_and_foreign_folders(quantized_dir, tmp_path):
    with pytest.raises(HearmaskError, match="kind 'rpi'"):
        export_cortex_m_bundle(quantized_dir, "rpi4", tmp_path / "pi")
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(HearmaskError, match="not empty"):
        export_cortex_m_bundle(quantized_dir, HARDWARE_TARGET, tmp_path / "busy")
    assert (tmp_path / "busy" / "notes.txt").read_text() == "mine"


def test_cli_export_writes_the_cortex_m_bundle(quantized_dir, tmp_path, capsys):
    from hearmask.cli import main

    assert main(["export", str(quantized_dir), "--target", HARDWARE_TARGET, "--out", str(tmp_path / "b"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["kind"] == "cortex-m" and "tflm/hm_op_resolver.h" in result["files"]


def test_board_without_qemu_or_tflm_gets_the_c_and_the_protocol(quantized_dir, tmp_path):
    generic = dataclasses.replace(load_target("cortex-m55-qemu"), name="cortex-m-generic", qemu_machine=None,
                                  emulated=False)
    out = export_cortex_m_bundle(quantized_dir, generic, tmp_path / "generic")
    bundle = json.loads((out / BUNDLE_FILE).read_text())
    assert "firmware" not in bundle and "tflm" not in bundle and not (out / "build").exists()
    assert (out / "firmware" / "protocol" / "hm_proto.c").read_bytes() == \
        (FIRMWARE_DIR / "protocol" / "hm_proto.c").read_bytes()
    assert (out / "model_c" / "hm_model.h").is_file()


def test_qemu_bundle_without_building_says_so(quantized_dir, tmp_path):
    out = export_cortex_m_bundle(quantized_dir, "cortex-m3-qemu", tmp_path / "m3", build=False)
    firmware = json.loads((out / BUNDLE_FILE).read_text())["firmware"]
    assert firmware["elf"] is None and firmware["not_built"] == "export asked not to build"
    assert "hearmask profile` builds it" in (out / "README.md").read_text()
