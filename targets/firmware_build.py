"""Build the hearmask firmware for a QEMU Cortex-M board with Debian's ``arm-none-eabi-gcc``.

    image = build_firmware("cortex-m55", model_c_dir, out_dir, profile=True)
    image.elf_path, image.text_bytes, image.data_bytes, image.bss_bytes

Sources: the protocol (``firmware/protocol``), the board support and protocol loop
(``firmware/src``), and every ``*.c`` of ``model_c_dir`` (the generated ``hm_model.c`` and
``hm_kernels.c``, whose ``hm_model.h`` follows the interface in firmware/README.md).
Linked with newlib-nano and nosys stubs, no start files (``firmware/src/startup.c`` is the
start-up code), with the board's linker script from ``firmware/boards``. Sizes come from
``arm-none-eabi-size`` (Berkeley format): ``text`` (code + constants, in the CODE/flash
region), ``data`` (initialised RAM, whose image also sits in flash), ``bss`` (zeroed RAM,
stack not included).
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from hearmask.errors import HearmaskError
from hearmask.targets.qemu import QemuBoard, resolve_board

FIRMWARE_DIR = Path(__file__).resolve().parent / "firmware"
GCC = "arm-none-eabi-gcc"
SIZE = "arm-none-eabi-size"
SHA256_BYTES = 32
# -O2 as a release build would use; soft-float: the int8 kernels need no FPU, and one ABI for all three cores.
BASE_CFLAGS = ("-std=c99", "-mthumb", "-mfloat-abi=soft", "-O2", "-g", "-Wall", "-Wextra",
               "-ffunction-sections", "-fdata-sections")
LDFLAGS = ("-nostartfiles", "--specs=nano.specs", "--specs=nosys.specs", "-Wl,--gc-sections")


@dataclass(frozen=True)
class FirmwareImage:
    """A linked firmware ELF and its section sizes in bytes (``arm-none-eabi-size``)."""

    board: QemuBoard
    elf_path: Path
    map_path: Path
    text_bytes: int  # code + constants (weights): flash
    data_bytes: int  # initialised variables: RAM, and their image in flash
    bss_bytes: int  # zeroed variables: RAM (the 16 KiB stack is extra)
    profile: bool  # built with -DHM_MODEL_PROFILE (per-op counts; timings include the hooks)

    @property
    def flash_bytes(self) -> int:
        return self.text_bytes + self.data_bytes

    @property
    def static_ram_bytes(self) -> int:
        return self.data_bytes + self.bss_bytes


def toolchain_available() -> bool:
    return shutil.which(GCC) is not None and shutil.which(SIZE) is not None


def _sha256_define(model_sha256: bytes | str | None) -> list[str]:
    if model_sha256 is None:
        return []
    digest = bytes.fromhex(model_sha256) if isinstance(model_sha256, str) else bytes(model_sha256)
    if len(digest) != SHA256_BYTES:
        raise HearmaskError(f"model_sha256 must be {SHA256_BYTES} bytes (64 hex digits), got {len(digest)} bytes")
    return ["-DHM_MODEL_SHA256_INIT={" + ",".join(f"0x{b:02x}" for b in digest) + "}"]


def _base_cflags(extra_cflags: tuple[str, ...]) -> tuple[str, ...]:
    if any(flag.startswith("-mfloat-abi=") for flag in extra_cflags):
        return tuple(flag for flag in BASE_CFLAGS if not flag.startswith("-mfloat-abi="))
    return BASE_CFLAGS


def build_firmware(board: str | QemuBoard, model_c_dir: str | Path, out_dir: str | Path, profile: bool = False,
                   model_sha256: bytes | str | None = None, extra_cflags: tuple[str, ...] = ()) -> FirmwareImage:
    """Compile and link the firmware for ``board`` around the model C sources in ``model_c_dir``.

    Args:
        board: ``mps2-an385``/``cortex-m3``, ``mps2-an505``/``cortex-m33``, ``mps3-an547``/``cortex-m55``.
        model_c_dir: folder with ``hm_model.h`` and the model's ``*.c`` files.
        out_dir: where ``firmware-<machine>.elf`` and its ``.map`` go (created).
        profile: build with ``-DHM_MODEL_PROFILE`` so BENCH can return per-op counts.
        model_sha256: digest of the model's ``.tflite`` reported in INFO (all zero if None).
        extra_cflags: more compiler flags (e.g. ``-Werror``, ``-DHM_FIRMWARE_TENSOR_POOL_BYTES=N``).

    Raises :class:`HearmaskError` when the toolchain is missing, the model folder is not
    usable, or the compiler fails (its message included).
    """
    board = resolve_board(board)
    model_c_dir = Path(model_c_dir)
    out_dir = Path(out_dir)
    if not toolchain_available():
        raise HearmaskError(
            f"{GCC} is not installed; on Debian/Ubuntu: apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi"
        )
    if not (model_c_dir / "hm_model.h").is_file():
        raise HearmaskError(
            f"model folder {str(model_c_dir)!r} has no hm_model.h; "
            "expected the generated hm_model.h/.c and hm_kernels.c"
        )
    model_sources = sorted(model_c_dir.glob("*.c"))
    if not model_sources:
        raise HearmaskError(f"model folder {str(model_c_dir)!r} has no .c files; expected hm_model.c and hm_kernels.c")
    out_dir.mkdir(parents=True, exist_ok=True)
    elf_path = out_dir / f"firmware-{board.machine}{'-profile' if profile else ''}.elf"
    map_path = elf_path.with_suffix(".map")
    sources = [*sorted((FIRMWARE_DIR / "src").glob("*.c")), FIRMWARE_DIR / "protocol" / "hm_proto.c", *model_sources]
    command = [
        # A float ABI in extra_cflags (e.g. -mfloat-abi=softfp for Helium/MVE kernels) replaces the
        # base soft-float one: gcc needs exactly one to pick a matching newlib multilib.
        GCC, f"-mcpu={board.cpu}", *_base_cflags(extra_cflags), f"-D{board.define}",
        *(["-DHM_MODEL_PROFILE"] if profile else []), *_sha256_define(model_sha256), *extra_cflags,
        f"-I{FIRMWARE_DIR / 'protocol'}", f"-I{FIRMWARE_DIR / 'src'}", f"-I{model_c_dir}",
        *map(str, sources),
        f"-T{board.linker_script}", f"-L{FIRMWARE_DIR / 'boards'}", *LDFLAGS, f"-Wl,-Map={map_path}",
        "-o", str(elf_path),
    ]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise HearmaskError(
            f"building the {board.machine} firmware with the model in {str(model_c_dir)!r} failed "
            f"({GCC} exit {result.returncode}):\n{result.stderr.strip()[-4000:]}"
        )
    text_bytes, data_bytes, bss_bytes = section_sizes(elf_path)
    return FirmwareImage(board, elf_path, map_path, text_bytes, data_bytes, bss_bytes, profile)


def section_sizes(elf_path: str | Path) -> tuple[int, int, int]:
    """(text, data, bss) bytes of an ELF, from ``arm-none-eabi-size`` (Berkeley format)."""
    result = subprocess.run([SIZE, "--format=berkeley", str(elf_path)], capture_output=True, text=True)
    lines = result.stdout.strip().splitlines()
    if result.returncode != 0 or len(lines) < 2:
        raise HearmaskError(f"{SIZE} could not read {str(elf_path)!r}: {result.stderr.strip() or result.stdout}")
    fields = lines[1].split()
    return int(fields[0]), int(fields[1]), int(fields[2])
