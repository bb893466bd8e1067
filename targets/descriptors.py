"""Target descriptors: one TOML file per board, loaded into a frozen :class:`TargetDescriptor`.

The shipped boards live in ``targets/boards/*.toml`` (package data; the field reference,
with what each field means and where the shipped numbers come from, is
``targets/boards/README.md``). Users add their own board by dropping a TOML file with
the same fields into a folder they name: ``--targets-dir DIR`` on the command line
(repeatable), ``extra_dirs`` here, or the environment variable ``HEARMASK_TARGETS_DIR``
(folders separated by ``os.pathsep``). Every folder is read in full, so a malformed file
or a name used twice is reported instead of silently shadowed.

Every problem raises :class:`HearmaskError` naming the file, the field, the value and
what is accepted. Parsing uses :mod:`tomllib` (Python >= 3.11).
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Sequence

from hearmask.errors import HearmaskError

BOARDS_DIR = Path(__file__).resolve().parent / "boards"
TARGETS_DIR_ENV = "HEARMASK_TARGETS_DIR"

KINDS = ("rpi", "cortex-m")
RUNTIMES = ("litert", "tflm-cmsis-nn", "hearmask-c")
# Which runtimes each kind of board runs (DESIGN.md "Deployment targets").
RUNTIMES_BY_KIND = {"rpi": ("litert",), "cortex-m": ("tflm-cmsis-nn", "hearmask-c")}
# Accelerator configurations Vela accepts (``vela --help``, ethos-u-vela 5.2.0).
ETHOS_U_CONFIGS = ("ethos-u55-32", "ethos-u55-64", "ethos-u55-128", "ethos-u55-256", "ethos-u65-256",
                   "ethos-u65-512", "ethos-u85-128", "ethos-u85-256", "ethos-u85-512", "ethos-u85-1024",
                   "ethos-u85-2048")
# Names: lower-case letters, digits and ``+ . _ -`` (``rpi3b+``); they appear in file and folder names.
_NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9+._-]{0,62}$")


@dataclass(frozen=True)
class TargetDescriptor:
    """One deployment target. Field meanings and sources: ``targets/boards/README.md``."""

    name: str  # identifier used on the command line (``--target NAME``)
    title: str  # human description (board, SoC, core)
    kind: str  # one of KINDS
    runtime: str  # one of RUNTIMES_BY_KIND[kind]
    cpu: str  # core type, e.g. "Cortex-M4F"
    cores: int  # cores of that type; the per-hop estimate uses one (the streaming loop is sequential)
    clock_hz: int  # core clock the estimates use
    ram_bytes: int  # on-chip RAM (Cortex-M) or the smallest memory variant (Raspberry Pi)
    mac_per_cycle: float  # int8 MACs per cycle of one core, an estimate (see each board's comment)
    has_dwt: bool  # DWT cycle counter (CYCCNT) present: firmware times with it, else with SysTick
    has_fpu: bool  # hardware floating point (the DSP front end runs in float32)
    has_mve: bool  # M-profile Vector Extension (Helium)
    emulated: bool  # a QEMU machine, not hardware: timings there are QEMU instruction counts
    flash_bytes: int | None = None  # on-chip non-volatile memory for code + model; required for cortex-m
    qemu_machine: str | None = None  # ``qemu-system-arm -M`` name; required when emulated
    ethos_u: str | None = None  # Ethos-U NPU configuration (one of ETHOS_U_CONFIGS), absent if none
    vela_system_config: str | None = None  # Vela system config (vela.ini section); ethos_u targets only
    vela_memory_mode: str | None = None  # Vela memory mode (vela.ini section); ethos_u targets only
    sources: str = ""  # where the numbers come from (datasheets, TRMs, QEMU machine models)
    source_file: str = field(default="", compare=False)  # the TOML file it was read from (not a TOML field)

    @property
    def hardware_label(self) -> str:
        """``"emulated"`` for QEMU boards, else ``"hardware"`` (the label every figure on it carries)."""
        return "emulated" if self.emulated else "hardware"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# Accepted TOML type per field: (python types, words for the error message).
_INT = ((int,), "an integer")
_FLOAT = ((int, float), "a number")
_BOOL = ((bool,), "true or false")
_STR = ((str,), "a string")
_FIELD_TYPES: dict[str, tuple[tuple[type, ...], str]] = {
    "name": _STR, "title": _STR, "kind": _STR, "runtime": _STR, "cpu": _STR, "cores": _INT, "clock_hz": _INT,
    "ram_bytes": _INT, "mac_per_cycle": _FLOAT, "has_dwt": _BOOL, "has_fpu": _BOOL, "has_mve": _BOOL,
    "emulated": _BOOL, "flash_bytes": _INT, "qemu_machine": _STR, "ethos_u": _STR, "vela_system_config": _STR,
    "vela_memory_mode": _STR, "sources": _STR,
}
TOML_FIELDS = tuple(f.name for f in fields(TargetDescriptor) if f.name != "source_file")
REQUIRED_FIELDS = tuple(f.name for f in fields(TargetDescriptor) if f.default is MISSING)
assert set(_FIELD_TYPES) == set(TOML_FIELDS)


def load_target_file(path: str | Path) -> TargetDescriptor:
    """Read and check one descriptor file."""
    path = Path(path)
    where = str(path)
    try:
        values = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise HearmaskError(f"no target descriptor at {where!r}") from None
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise HearmaskError(f"target descriptor {where!r} is not valid TOML: {error}") from None
    unknown = sorted(set(values) - set(TOML_FIELDS))
    if unknown:
        raise HearmaskError(f"target descriptor {where!r}: unknown field(s) {unknown}; accepted: {list(TOML_FIELDS)}")
    missing = [name for name in REQUIRED_FIELDS if name not in values]
    if missing:
        raise HearmaskError(f"target descriptor {where!r}: missing required field(s) {missing}")
    for name, value in values.items():
        types, words = _FIELD_TYPES[name]
        # bool is an int subclass in Python: "cores = true" must not pass as 1.
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            raise HearmaskError(f"target descriptor {where!r}: field {name!r} must be {words}, "
                                f"got {value!r} ({_toml_type(value)})")
    descriptor = TargetDescriptor(**{**values, "mac_per_cycle": float(values["mac_per_cycle"])}, source_file=where)
    _check_values(descriptor, where)
    return descriptor


def _toml_type(value: Any) -> str:
    return {bool: "boolean", int: "integer", float: "float", str: "string", list: "array",
            dict: "table"}.get(type(value), type(value).__name__)


def _check_values(target: TargetDescriptor, where: str) -> None:
    def bad(field_name: str, accepted: str) -> HearmaskError:
        return HearmaskError(f"target descriptor {where!r}: field {field_name!r} = "
                             f"{getattr(target, field_name)!r} is not accepted; accepted: {accepted}")

    if not _NAME_PATTERN.match(target.name):
        raise bad("name", "1-63 characters of lower-case letters, digits and + . _ - (starting with a letter or digit)")
    if target.kind not in KINDS:
        raise bad("kind", " | ".join(KINDS))
    if target.runtime not in RUNTIMES_BY_KIND[target.kind]:
        raise bad("runtime", f"{' | '.join(RUNTIMES_BY_KIND[target.kind])} for kind {target.kind!r}")
    for field_name in ("cores", "clock_hz", "ram_bytes"):
        if getattr(target, field_name) <= 0:
            raise bad(field_name, "an integer > 0")
    if not 0 < target.mac_per_cycle <= 4096:
        raise bad("mac_per_cycle", "a number > 0 and <= 4096 (int8 MACs per cycle of one core)")
    if target.kind == "cortex-m" and target.flash_bytes is None:
        raise HearmaskError(f"target descriptor {where!r}: missing required field 'flash_bytes' (Cortex-M targets "
                            "need their flash size)")
    if target.flash_bytes is not None and target.flash_bytes <= 0:
        raise bad("flash_bytes", "an integer > 0")
    if target.emulated and not target.qemu_machine:
        raise HearmaskError(f"target descriptor {where!r}: emulated = true needs field 'qemu_machine' "
                            "(a qemu-system-arm -M name such as 'mps2-an385')")
    if target.qemu_machine is not None and not target.emulated:
        raise bad("qemu_machine", "only on emulated targets (set emulated = true, or remove qemu_machine)")
    if target.ethos_u is not None:
        if target.ethos_u not in ETHOS_U_CONFIGS:
            raise bad("ethos_u", " | ".join(ETHOS_U_CONFIGS))
        if target.kind != "cortex-m":
            raise bad("ethos_u", "only on cortex-m targets")
    for field_name in ("vela_system_config", "vela_memory_mode"):
        value = getattr(target, field_name)
        if value is not None and target.ethos_u is None:
            raise bad(field_name, "only with ethos_u set")
        if value is not None and not re.fullmatch(r"[A-Za-z0-9_]+", value):
            raise bad(field_name, "a vela.ini section name (letters, digits, _), e.g. 'Ethos_U55_High_End_Embedded'")


def target_dirs(extra_dirs: Sequence[str | Path] = ()) -> list[Path]:
    """Folders searched, in order: the shipped boards, ``$HEARMASK_TARGETS_DIR``, then ``extra_dirs``."""
    env_dirs = [Path(item) for item in os.environ.get(TARGETS_DIR_ENV, "").split(os.pathsep) if item.strip()]
    folders = [BOARDS_DIR]
    for folder in [*env_dirs, *(Path(item) for item in extra_dirs)]:
        if not folder.is_dir():
            source = f" (from ${TARGETS_DIR_ENV})" if folder in env_dirs else ""
            raise HearmaskError(f"targets folder {str(folder)!r}{source} does not exist or is not a folder; "
                                "give a folder holding one <name>.toml file per board")
        if folder.resolve() not in {existing.resolve() for existing in folders}:
            folders.append(folder)
    return folders


def list_targets(extra_dirs: Sequence[str | Path] = ()) -> list[TargetDescriptor]:
    """Every descriptor in :func:`target_dirs`, sorted by name; a name used twice is an error."""
    by_name: dict[str, TargetDescriptor] = {}
    for folder in target_dirs(extra_dirs):
        for path in sorted(folder.glob("*.toml")):
            target = load_target_file(path)
            if target.name in by_name:
                first = by_name[target.name].source_file
                raise HearmaskError(f"target name {target.name!r} is defined twice: in {first!r} and {str(path)!r}; "
                                    "names must be unique across all targets folders")
            by_name[target.name] = target
    return [by_name[name] for name in sorted(by_name)]


def load_target(name: str, extra_dirs: Sequence[str | Path] = ()) -> TargetDescriptor:
    """The descriptor called ``name`` (shipped or from a user folder)."""
    targets = list_targets(extra_dirs)
    for target in targets:
        if target.name == name:
            return target
    raise HearmaskError(f"unknown target {name!r}; accepted: {', '.join(t.name for t in targets)} "
                        f"(or add <name>.toml to a folder given with --targets-dir or ${TARGETS_DIR_ENV})")


def target_of_kind(target: "TargetDescriptor | str", kind: str, needed_by: str) -> TargetDescriptor:
    """``target`` (a descriptor or a shipped board's name) checked to be of ``kind``; a clear error
    naming what needs it (``needed_by``, e.g. "the Raspberry Pi bundle") otherwise."""
    if isinstance(target, str):
        target = load_target(target)
    if getattr(target, "kind", None) != kind:
        raise HearmaskError(f"target {getattr(target, 'name', target)!r} is of kind {getattr(target, 'kind', None)!r}; "
                            f"{needed_by} needs a target of kind {kind!r} (hearmask targets list)")
    return target
