"""Cortex-M deployment bundles (``hearmask export MODEL_DIR --target NAME --out DIR``).

Two kinds, chosen by the target's runtime:

- ``hearmask-c`` (the QEMU boards ``cortex-m3-qemu``, ``cortex-m33-qemu``, ``cortex-m55-qemu``):
  the generated int8 C (:func:`hearmask.targets.codegen.generate_c_model`, bit-exact with the
  TFLM reference kernels) in ``model_c/``, the firmware sources (``firmware/``), the built
  ELF and a per-op profiling ELF (``build/``), ``bundle.json`` with text/data/bss.
  ``hearmask profile --port qemu://cortex-m55 --bundle DIR`` boots ``build/`` in QEMU.
- ``tflm-cmsis-nn`` (hardware boards): the TFLM firmware template in ``tflm/`` — the
  ``.tflite`` as an aligned C array (``model_data.h/.cc``), an op resolver registering exactly
  the model's ops, the arena size hearmask measured, ``main.cc`` speaking the protocol through
  the shared ``hm_proto.{h,c}`` (unchanged copies), timing by DWT cycle counter where the
  descriptor says ``has_dwt`` else SysTick, and a CMakeLists.txt/Makefile taking TFLM_DIR and
  CMSIS_NN_DIR. TFLM and CMSIS-NN are not obtainable here, so only the protocol part is
  compile-checked. The generated C (``model_c/``) comes along as the interpreter-free option.

Every bundle also holds the model's ``.tflite`` and ``manifest.json`` unchanged, so the bundle
folder is a model folder for ``hearmask profile --bundle``.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections import Counter
from importlib import resources
from pathlib import Path
from typing import Any

from hearmask.errors import HearmaskError
from hearmask.targets.descriptors import target_of_kind

BUNDLE_FILE = "bundle.json"
BUNDLE_FORMAT = "hearmask-cortex-m-bundle"
BUNDLE_VERSION = 1
MODEL_C_DIR = "model_c"
FIRMWARE_DIR = "firmware"
BUILD_DIR = "build"
TFLM_DIR = "tflm"
TFLM_TEMPLATE_FILES = ("main.cc", "hm_timing.h", "hm_board_port.h", "hm_timing_check.c", "CMakeLists.txt", "Makefile")
MODEL_ARRAY_ALIGN_BYTES = 16  # TFLM reads the flatbuffer in place: 16-byte alignment as its examples use
# Builtin op name (tflite_inspect) -> MicroMutableOpResolver method.
RESOLVER_METHODS = {
    "ADD": "AddAdd", "SUB": "AddSub", "MUL": "AddMul", "FULLY_CONNECTED": "AddFullyConnected",
    "LOGISTIC": "AddLogistic", "TANH": "AddTanh", "CONCATENATION": "AddConcatenation",
    "STRIDED_SLICE": "AddStridedSlice", "RESHAPE": "AddReshape", "QUANTIZE": "AddQuantize",
    "DEQUANTIZE": "AddDequantize", "SPLIT": "AddSplit", "SPLIT_V": "AddSplitV", "SLICE": "AddSlice",
    "RELU": "AddRelu", "RELU6": "AddRelu6", "SOFTMAX": "AddSoftmax", "PACK": "AddPack", "UNPACK": "AddUnpack",
    "CONV_2D": "AddConv2D", "DEPTHWISE_CONV_2D": "AddDepthwiseConv2D", "MEAN": "AddMean",
}
# gcc -mcpu per descriptor cpu (the hardware boards' cores).
GCC_CPUS = {"cortex-m4f": "cortex-m4", "cortex-m4": "cortex-m4", "cortex-m7": "cortex-m7",
            "cortex-m33": "cortex-m33", "cortex-m55": "cortex-m55", "cortex-m3": "cortex-m3"}


def export_cortex_m_bundle(model_dir: str | Path, target, out_dir: str | Path, build: bool = True) -> Path:
    """Write the Cortex-M bundle of ``model_dir`` for ``target`` (a descriptor or its name) into ``out_dir``.

    ``build``: build the firmware ELFs of QEMU targets (needs ``arm-none-eabi-gcc``; without it the
    bundle has the sources and ``hearmask profile`` builds them). Returns ``out_dir``.
    Raises :class:`HearmaskError` for a non-Cortex-M target, a cascade model, a model changed
    since ``hearmask quantize``, or a model the generated C cannot reproduce exactly.
    """
    from hearmask.targets.codegen import generate_c_model

    target = target_of_kind(target, "cortex-m", "a Cortex-M bundle")
    model_dir, out_dir = Path(model_dir), Path(out_dir)
    manifest, network, model_path = _read_model(model_dir)
    model_bytes = model_path.read_bytes()
    sha256 = hashlib.sha256(model_bytes).hexdigest()
    if out_dir.exists() and any(out_dir.iterdir()) and not (out_dir / BUNDLE_FILE).is_file():
        raise HearmaskError(f"{str(out_dir)!r} is not empty and holds no {BUNDLE_FILE}; give a new or empty folder, or "
                            "an earlier bundle to overwrite")
    for stale in (MODEL_C_DIR, FIRMWARE_DIR, BUILD_DIR, TFLM_DIR):
        shutil.rmtree(out_dir / stale, ignore_errors=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(model_path, out_dir / model_path.name)
    shutil.copyfile(model_dir / "manifest.json", out_dir / "manifest.json")
    generated = generate_c_model(model_bytes, out_dir / MODEL_C_DIR)
    bundle: dict[str, Any] = {
        "format": BUNDLE_FORMAT, "version": BUNDLE_VERSION,
        "target": {"name": target.name, "kind": target.kind, "runtime": target.runtime, "cpu": target.cpu,
                   "clock_hz": target.clock_hz, "has_dwt": target.has_dwt, "emulated": target.emulated,
                   "qemu_machine": target.qemu_machine},
        "source_model_dir": str(model_dir.resolve()),
        "source_checkpoint": manifest.get("source_checkpoint"),
        "model": {"file": model_path.name, "sha256": sha256, "variant": manifest.get("variant"),
                  "op_counts": dict(sorted(Counter(generated.op_names).items()))},
        "generated_c": {"dir": MODEL_C_DIR, "arena_bytes": generated.arena_bytes, "const_bytes": generated.const_bytes},
    }
    if target.qemu_machine:
        bundle["firmware"] = _qemu_firmware(target, out_dir, sha256, build)
    elif target.runtime == "tflm-cmsis-nn":
        bundle["tflm"] = _tflm_template(target, out_dir, network, model_bytes, sha256)
    else:  # a board without QEMU or TFLM (e.g. a generic Cortex-M descriptor): the C and the protocol code
        from hearmask.targets.firmware_build import FIRMWARE_DIR as SOURCE_DIR

        (out_dir / FIRMWARE_DIR / "protocol").mkdir(parents=True)
        for name in ("hm_proto.h", "hm_proto.c"):
            shutil.copyfile(SOURCE_DIR / "protocol" / name, out_dir / FIRMWARE_DIR / "protocol" / name)
        bundle["protocol"] = {"dir": f"{FIRMWARE_DIR}/protocol"}
    (out_dir / "README.md").write_text(_readme(target, bundle, out_dir.name))
    files = sorted(str(p.relative_to(out_dir)) for p in out_dir.rglob("*") if p.is_file() and p.name != BUNDLE_FILE)
    bundle["sha256"] = {name: hashlib.sha256((out_dir / name).read_bytes()).hexdigest() for name in files}
    (out_dir / BUNDLE_FILE).write_text(json.dumps(bundle, indent=2) + "\n")
    return out_dir


def read_bundle(bundle_dir: str | Path) -> dict[str, Any] | None:
    """``bundle.json`` of a Cortex-M bundle, or None when the folder is not one."""
    path = Path(bundle_dir) / BUNDLE_FILE
    if not path.is_file():
        return None
    try:
        bundle = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise HearmaskError(f"{str(path)!r} is not valid JSON: {error}") from None
    return bundle if bundle.get("format") == BUNDLE_FORMAT else None


def qemu_firmware_for(board, model_dir: str | Path, work_dir: str | Path, profile: bool = False) -> Path:
    """The ELF for ``board`` (a :class:`~hearmask.targets.qemu.QemuBoard` or name) running the model of ``model_dir``.

    A Cortex-M bundle for that board supplies its built ELF (checked against the model's SHA-256);
    otherwise the generated C and the firmware are built into ``work_dir/firmware`` (reused when
    they are already there for the same model).
    """
    from hearmask.targets.firmware_build import build_firmware
    from hearmask.targets.qemu import resolve_board

    board = resolve_board(board)
    model_dir = Path(model_dir)
    _, _, model_path = _read_model(model_dir)
    sha256 = hashlib.sha256(model_path.read_bytes()).hexdigest()
    bundle = read_bundle(model_dir)
    if bundle is not None and bundle["model"]["sha256"] == sha256:
        key = "profile_elf" if profile else "elf"
        firmware = bundle.get("firmware", {})
        if firmware.get("machine") == board.machine and firmware.get(key) and (model_dir / firmware[key]).is_file():
            return model_dir / firmware[key]
        if (model_dir / MODEL_C_DIR / "hm_model.h").is_file():  # a bundle for another board: reuse its C
            return build_firmware(board, model_dir / MODEL_C_DIR, Path(work_dir) / "firmware", profile=profile,
                                  model_sha256=sha256).elf_path
    from hearmask.targets.codegen import generate_c_model

    work = Path(work_dir) / "firmware"
    c_dir = work / f"model_c-{sha256[:16]}"
    if not (c_dir / "hm_model.h").is_file():
        generate_c_model(model_path, c_dir)
    elf = work / f"{sha256[:16]}" / f"firmware-{board.machine}{'-profile' if profile else ''}.elf"
    if not elf.is_file():
        elf = build_firmware(board, c_dir, elf.parent, profile=profile, model_sha256=sha256).elf_path
    return elf


# --------------------------------------------------------------------------- model folder



def _read_model(model_dir: Path) -> tuple[dict[str, Any], dict[str, Any], Path]:
    from hearmask.quantize.manifest import read_manifest
    from hearmask.quantize.tflite_inspect import read_tflite

    manifest = read_manifest(model_dir)
    networks = manifest.get("networks") or []
    if len(networks) != 1:
        raise HearmaskError(f"model {str(model_dir)!r} is a {manifest.get('variant')!r} model with {len(networks)} "
                            "networks; the Cortex-M firmware runs one network (a joint, nr or hlc model)")
    network = networks[0]
    model_path = model_dir / network["files"]["int8_tflite"]
    if not model_path.is_file():
        raise HearmaskError(f"no int8 model {model_path.name!r} in {str(model_dir)!r} (named by its manifest.json)")
    expected = network.get("sha256", {}).get("int8_tflite")
    actual = hashlib.sha256(model_path.read_bytes()).hexdigest()
    if expected and expected != actual:
        raise HearmaskError(f"{str(model_path)!r} has SHA-256 {actual}, its manifest says {expected}: the model changed "
                            "after hearmask quantize wrote it; re-run hearmask quantize")
    read_tflite(model_path, manifest=network)
    return manifest, network, model_path


# --------------------------------------------------------------------------- QEMU boards (generated C)


def _qemu_firmware(target, out_dir: Path, sha256: str, build: bool) -> dict[str, Any]:
    from hearmask.targets.firmware_build import FIRMWARE_DIR as SOURCE_DIR
    from hearmask.targets.firmware_build import build_firmware, toolchain_available
    from hearmask.targets.qemu import resolve_board

    board = resolve_board(target.qemu_machine)
    for part, patterns in (("src", ("*.c", "*.h")), ("protocol", ("*.c", "*.h")), ("boards", ("*.ld",))):
        (out_dir / FIRMWARE_DIR / part).mkdir(parents=True, exist_ok=True)
        for pattern in patterns:
            for source in sorted((SOURCE_DIR / part).glob(pattern)):
                shutil.copyfile(source, out_dir / FIRMWARE_DIR / part / source.name)
    entry: dict[str, Any] = {"machine": board.machine, "cpu": board.cpu, "define": board.define,
                             "linker_script": f"{FIRMWARE_DIR}/boards/{board.linker_script}",
                             "elf": None, "profile_elf": None, "sizes_bytes": None}
    if not (build and toolchain_available()):
        entry["not_built"] = "arm-none-eabi-gcc is not installed" if build else "export asked not to build"
        return entry
    images = {profile: build_firmware(board, out_dir / MODEL_C_DIR, out_dir / BUILD_DIR, profile=profile,
                                      model_sha256=sha256) for profile in (False, True)}
    for image in images.values():
        image.map_path.unlink(missing_ok=True)  # linker maps hold absolute build paths; not part of a bundle
    plain = images[False]
    entry.update(elf=str(plain.elf_path.relative_to(out_dir)), profile_elf=str(images[True].elf_path.relative_to(out_dir)),
                 sizes_bytes={"text": plain.text_bytes, "data": plain.data_bytes, "bss": plain.bss_bytes,
                              "flash": plain.flash_bytes, "static_ram": plain.static_ram_bytes},
                 profile_sizes_bytes={"text": images[True].text_bytes, "data": images[True].data_bytes,
                                      "bss": images[True].bss_bytes})
    return entry


# --------------------------------------------------------------------------- hardware boards (TFLM template)


def model_data_sources(model_bytes: bytes, symbol: str = "g_hm_model_data") -> tuple[str, str]:
    """(model_data.h, model_data.cc): the ``.tflite`` as a ``const unsigned char`` array aligned to 16 bytes."""
    header = (f"/* model_data.h -- the int8 .tflite as a C array (written by hearmask export). */\n"
              f"#ifndef HM_MODEL_DATA_H\n#define HM_MODEL_DATA_H\n\n"
              f"#define HM_MODEL_DATA_BYTES {len(model_bytes)}u\n"
              f"extern const unsigned char {symbol}[HM_MODEL_DATA_BYTES];\n\n#endif\n")
    rows = [", ".join(f"0x{b:02x}" for b in model_bytes[i:i + 16]) for i in range(0, len(model_bytes), 16)]
    source = (f"/* model_data.cc -- {len(model_bytes)} bytes, SHA-256 {hashlib.sha256(model_bytes).hexdigest()}. */\n"
              f"#include \"model_data.h\"\n\n"
              f"alignas({MODEL_ARRAY_ALIGN_BYTES}) const unsigned char {symbol}[HM_MODEL_DATA_BYTES] = {{\n    "
              + ",\n    ".join(rows) + "\n};\n")
    return header, source


def op_resolver_header(op_names) -> str:
    """``hm_op_resolver.h``: ``hm_register_ops`` adding exactly these builtin ops to a MicroMutableOpResolver."""
    ops = sorted(set(op_names))
    unknown = [op for op in ops if op not in RESOLVER_METHODS]
    if unknown:
        raise HearmaskError(f"the model uses op(s) {unknown} that the TFLM bundle has no resolver entry for; "
                            f"known: {', '.join(sorted(RESOLVER_METHODS))}")
    lines = "\n".join(f"    resolver.{RESOLVER_METHODS[op]}();  // {op}" for op in ops)
    return (f"/* hm_op_resolver.h -- exactly the model's {len(ops)} op types (written by hearmask export). */\n"
            "#ifndef HM_OP_RESOLVER_H\n#define HM_OP_RESOLVER_H\n\n"
            "#include \"tensorflow/lite/micro/micro_mutable_op_resolver.h\"\n\n"
            f"#define HM_MODEL_NUM_OP_TYPES {len(ops)}\n\n"
            "template <unsigned int N>\n"
            "inline void hm_register_ops(tflite::MicroMutableOpResolver<N> &resolver)\n{\n"
            f"    static_assert(N >= HM_MODEL_NUM_OP_TYPES, \"resolver too small for the model's ops\");\n"
            f"{lines}\n}}\n\n#endif\n")


def _config_header(target, network: dict[str, Any], summary, arena_bytes: int, sha256: str) -> str:
    names = lambda entries: "{" + ", ".join(f'"{e.name}"' for e in sorted(entries, key=lambda e: e.position)) + "}"
    digest = bytes.fromhex(sha256)
    return ("/* hm_model_config.h -- the board and model constants of this bundle (written by hearmask export). */\n"
            "#ifndef HM_MODEL_CONFIG_H\n#define HM_MODEL_CONFIG_H\n\n"
            f"#define HM_TARGET_NAME \"{target.name}\"\n"
            f"#define HM_CLOCK_HZ {target.clock_hz}u\n"
            f"/* TFLM arena measured by hearmask quantize (host interpreter, 64-bit; 32-bit targets need a little\n"
            f" * less): {network['tflm_arena_bytes']} bytes, rounded up to 16 with 1 KiB headroom. */\n"
            f"#ifndef HM_TFLM_ARENA_BYTES\n#define HM_TFLM_ARENA_BYTES {arena_bytes}u\n#endif\n"
            f"#define HM_MODEL_NUM_INPUTS {len(summary.inputs)}\n#define HM_MODEL_NUM_OUTPUTS {len(summary.outputs)}\n"
            f"#define HM_MODEL_INPUT_NAMES {names(summary.inputs)}\n"
            f"#define HM_MODEL_OUTPUT_NAMES {names(summary.outputs)}\n"
            "#define HM_MODEL_SHA256_INIT {" + ", ".join(f"0x{b:02x}" for b in digest) + "}\n\n#endif\n")


def _tflm_template(target, out_dir: Path, network: dict[str, Any], model_bytes: bytes, sha256: str) -> dict[str, Any]:
    from hearmask.quantize.tflite_inspect import inspect_tflite
    from hearmask.targets.firmware_build import FIRMWARE_DIR as SOURCE_DIR

    summary = inspect_tflite(model_bytes)
    if "tflm_arena_bytes" not in network:
        raise HearmaskError("the model's manifest has no tflm_arena_bytes; re-run hearmask quantize to measure it")
    arena_bytes = -(-(int(network["tflm_arena_bytes"]) + 1024) // 16) * 16
    cpu = GCC_CPUS.get(target.cpu.lower())
    if cpu is None:
        raise HearmaskError(f"target {target.name!r} has cpu {target.cpu!r}; the TFLM bundle knows {sorted(GCC_CPUS)}")
    tflm = out_dir / TFLM_DIR
    tflm.mkdir(parents=True)
    template = resources.files("hearmask.targets") / "tflm_template"
    for name in TFLM_TEMPLATE_FILES:
        (tflm / name).write_text((template / name).read_text())
    for name in ("hm_proto.h", "hm_proto.c"):  # the shared protocol, unchanged
        shutil.copyfile(SOURCE_DIR / "protocol" / name, tflm / name)
    header, source = model_data_sources(model_bytes)
    (tflm / "model_data.h").write_text(header)
    (tflm / "model_data.cc").write_text(source)
    (tflm / "hm_op_resolver.h").write_text(op_resolver_header(op.name for op in summary.ops))
    (tflm / "hm_model_config.h").write_text(_config_header(target, network, summary, arena_bytes, sha256))
    timing_define = "HM_TIMING_DWT" if target.has_dwt else ""
    (tflm / "hm_target.cmake").write_text(f"set(HM_CPU {cpu})\nset(HM_TIMING_DEFINE {timing_define})\n")
    (tflm / "hm_target.mk").write_text(f"HM_CPU = {cpu}\nHM_TIMING_DEFINE = {'-D' + timing_define if timing_define else ''}\n")
    return {"dir": TFLM_DIR, "gcc_cpu": cpu, "arena_bytes": arena_bytes,
            "measured_arena_bytes": int(network["tflm_arena_bytes"]),
            "timing": "DWT cycle counter" if target.has_dwt else "SysTick",
            "op_resolver": sorted({op.name for op in summary.ops}),
            "compile_checked": "protocol part only (hm_proto.c, hm_timing.h): TFLM and CMSIS-NN are not available "
                               "on the machine that wrote this bundle"}


# --------------------------------------------------------------------------- README


def _readme(target, bundle: dict[str, Any], folder: str) -> str:
    model = bundle["model"]
    lines = [f"# hearmask Cortex-M bundle: {target.title}", "",
             f"Model `{model['file']}` (SHA-256 `{model['sha256']}`), ops: {', '.join(f'{op} x{n}' for op, n in model['op_counts'].items())}.",
             f"`{MODEL_C_DIR}/`: hearmask's generated int8 C (no interpreter, no malloc), bit-exact with the TFLite "
             f"Micro reference kernels; static activation arena {bundle['generated_c']['arena_bytes']} bytes. "
             "Interface: `hm_model_step(inputs[], outputs[])` in `hm_model.h`.", ""]
    if "firmware" in bundle:
        fw = bundle["firmware"]
        lines += ["## Emulated board (QEMU)", "",
                  f"`{FIRMWARE_DIR}/` holds the firmware sources for QEMU `{fw['machine']}` ({fw['cpu']}), "
                  f"`{BUILD_DIR}/` the ELFs built with Debian's arm-none-eabi-gcc (`-O2`, soft-float ABI).", ""]
        if fw["sizes_bytes"]:
            sizes = fw["sizes_bytes"]
            lines += [f"Sizes (arm-none-eabi-size): text {sizes['text']} B, data {sizes['data']} B, bss {sizes['bss']} B "
                      f"(flash {sizes['flash']} B, static RAM {sizes['static_ram']} B; the 16 KiB stack is extra). Most of "
                      "bss is the firmware's, not the model's: 64 KiB receive and transmit buffers and a 64 KiB tensor "
                      "pool (-DHM_FIRMWARE_MAX_PAYLOAD_BYTES / -DHM_FIRMWARE_TENSOR_POOL_BYTES shrink them) and 64 KiB "
                      "of BENCH samples.", "",
                      "Rebuild: `python -c \"from hearmask.targets.firmware_build import build_firmware; "
                      f"build_firmware('{fw['cpu']}', '{MODEL_C_DIR}', '{BUILD_DIR}', model_sha256='{model['sha256']}')\"`.",
                      ""]
        else:
            lines += [f"Not built ({fw.get('not_built')}); `hearmask profile` builds it on first use.", ""]
        lines += ["Profile it (INFER bit-exact against the TFLM host interpreter, BENCH instruction counts):", "",
                  "```", f"hearmask profile --port qemu://{fw['cpu']} --bundle {folder} --report {folder}-report", "```",
                  "", "Counts are QEMU instruction counts (`-icount shift=0`), not cycles and not time on hardware.", ""]
    if "protocol" in bundle:
        lines += ["## Your own firmware", "",
                  f"`{FIRMWARE_DIR}/protocol/hm_proto.h/.c`: the protocol in C99 (no malloc). The QEMU firmware "
                  "(hearmask's targets/firmware/src/main.c) shows the loop: feed received bytes to "
                  "`hm_device_push_byte`, answer HELLO/INFER/BENCH/RESET by calling `hm_model_step`.", ""]
    if "tflm" in bundle:
        tflm = bundle["tflm"]
        lines += ["## TensorFlow Lite Micro firmware template", "",
                  f"`{TFLM_DIR}/`: `model_data.h/.cc` (the .tflite as a 16-byte aligned array), `hm_op_resolver.h` "
                  f"(exactly {', '.join(tflm['op_resolver'])}), `hm_model_config.h` (arena {tflm['arena_bytes']} B "
                  f"from the measured {tflm['measured_arena_bytes']} B), `main.cc` (protocol loop: HELLO/INFO, INFER, "
                  f"BENCH, RESET; timing by {tflm['timing']}, in cycles at {target.clock_hz} Hz), and "
                  "`hm_proto.h/.c` (the shared protocol code).", "",
                  "Implement the three functions of `hm_board_port.h` (serial port and clocks), then:", "",
                  "```", "make TFLM_DIR=/path/to/tflite-micro CMSIS_NN_DIR=/path/to/CMSIS-NN "
                  "BOARD_SOURCES=\"port.c startup.c\" LINKER_SCRIPT=board.ld",
                  "# or: cmake -B build -DTFLM_DIR=... -DCMSIS_NN_DIR=... -DHM_BOARD_SOURCES=\"port.c;startup.c\" "
                  "-DHM_LINKER_SCRIPT=board.ld -DCMAKE_TOOLCHAIN_FILE=arm-gcc.cmake", "```", "",
                  "**Not built here.** TensorFlow Lite Micro and CMSIS-NN are not packaged in Debian or PyPI and were "
                  "not available where this bundle was written, so only the protocol part is compile-checked "
                  "(`make protocol-check`: hm_proto.c and hm_timing.h with arm-none-eabi-gcc). The generated C in "
                  f"`{MODEL_C_DIR}/` needs neither and compiles for this core as is.", "",
                  "Profile the flashed board: `hearmask profile --port /dev/ttyACM0 --bundle "
                  f"{folder} --report {folder}-report` (golden: the TFLM host interpreter; INFER reports cycles "
                  "of the DWT/SysTick counter, converted to us with INFO clock_hz).", ""]
    return "\n".join(lines)
