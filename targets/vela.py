"""Arm's Vela compiler (``ethos-u-vela``) for Ethos-U targets: its cycle and memory estimate.

Vela compiles an int8 ``.tflite`` for an Ethos-U NPU and reports, per network, the NPU
cycles, the total cycles including memory transfers, the inference time at the NPU clock
of the chosen system configuration, and the SRAM and flash it uses. These are Vela's own
**estimates** (its performance model), not measurements.

Vela runs in a child process (``python -m ethosu.vela``) into a temporary folder, and its
summary CSV is parsed. When Vela is not installed, or fails on a model, the outcome says
``Vela unavailable: <reason>``; no number is ever made up in its place.
"""

from __future__ import annotations

import csv
import importlib.metadata
import importlib.util
import re
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

from hearmask.errors import HearmaskError
from hearmask.targets.descriptors import TargetDescriptor

VELA_MODULE = "ethosu.vela"  # the importable package of the ethos-u-vela distribution
VELA_DISTRIBUTION = "ethos-u-vela"
VELA_CONFIG_FILE = "Arm/vela.ini"  # Vela's bundled configuration file (vela --list-config-files)
# Vela system configs and memory mode used when the descriptor names none (sections of Arm/vela.ini).
DEFAULT_SYSTEM_CONFIGS = {"ethos-u55": "Ethos_U55_High_End_Embedded", "ethos-u65": "Ethos_U65_Embedded",
                          "ethos-u85": "Ethos_U85_SYS_DRAM_Mid"}
DEFAULT_MEMORY_MODE = "Shared_Sram"
VELA_TIMEOUT_S = 300.0
VELA_LABEL = "estimate (Vela performance model)"


class VelaError(HearmaskError):
    """Vela could not run or failed on a model; the message is the reason."""


@dataclass(frozen=True)
class VelaEstimate:
    """Vela's summary for one network (units in names; all estimates of Vela's model)."""

    network: str  # the .tflite file name
    accelerator: str  # e.g. "ethos-u55-128"
    system_config: str
    memory_mode: str
    npu_clock_hz: float  # the NPU clock of the system config (Vela's, not the target's CPU clock)
    cycles_npu: int  # NPU compute cycles
    cycles_total: int  # including memory transfers
    inference_time_us: float  # cycles_total / npu_clock_hz
    sram_bytes: int  # SRAM Vela allocates (tensor arena on the NPU side)
    flash_bytes: int  # on- plus off-chip flash Vela uses (weights, command stream)
    npu_ops: int | None  # operators on the NPU
    cpu_ops: int | None  # operators left on the CPU (fall back to TFLM kernels)
    nn_macs: int  # MACs Vela counts


@dataclass(frozen=True)
class VelaOutcome:
    """Vela's estimates for every network of a model, or why there are none."""

    available: bool
    reason: str  # "" when available, else "Vela unavailable: ..."
    version: str | None
    estimates: tuple[VelaEstimate, ...] = ()

    @property
    def inference_time_us(self) -> float | None:
        """Sum over the networks (the cascade runs both per hop); None when unavailable."""
        return sum(item.inference_time_us for item in self.estimates) if self.available else None

    def to_dict(self) -> dict[str, Any]:
        return {"available": self.available, "reason": self.reason, "version": self.version, "label": VELA_LABEL,
                "inference_time_us": self.inference_time_us,
                "networks": [asdict(item) for item in self.estimates]}


def vela_version() -> str | None:
    """The installed ethos-u-vela version, or None when it is not importable."""
    if importlib.util.find_spec(VELA_MODULE.split(".")[0]) is None or importlib.util.find_spec(VELA_MODULE) is None:
        return None
    try:
        return importlib.metadata.version(VELA_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def vela_settings(target: TargetDescriptor) -> tuple[str, str, str]:
    """``(accelerator, system_config, memory_mode)`` for an Ethos-U target."""
    if target.ethos_u is None:
        raise HearmaskError(f"target {target.name!r} has no Ethos-U NPU (no 'ethos_u' field)")
    family = target.ethos_u.rsplit("-", 1)[0]
    system_config = target.vela_system_config or DEFAULT_SYSTEM_CONFIGS[family]
    return target.ethos_u, system_config, target.vela_memory_mode or DEFAULT_MEMORY_MODE


def run_vela(tflite_path: str | Path, accelerator: str, system_config: str, memory_mode: str, *,
             timeout_s: float = VELA_TIMEOUT_S) -> VelaEstimate:
    """Compile one ``.tflite`` with Vela and parse its summary; raises :class:`VelaError`."""
    tflite_path = Path(tflite_path).resolve()
    if vela_version() is None:
        raise VelaError(f"the {VELA_DISTRIBUTION} package is not installed (pip install {VELA_DISTRIBUTION})")
    with tempfile.TemporaryDirectory(prefix="hearmask-vela-") as out_dir:
        command = [sys.executable, "-m", VELA_MODULE, str(tflite_path), "--accelerator-config", accelerator,
                   "--config", VELA_CONFIG_FILE, "--system-config", system_config, "--memory-mode", memory_mode,
                   "--output-dir", out_dir]
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, cwd=out_dir)
        except subprocess.TimeoutExpired:
            raise VelaError(f"vela did not finish on {tflite_path.name} within {timeout_s:g} s") from None
        if result.returncode != 0:
            lines = [line for line in (result.stderr + result.stdout).splitlines() if line.strip()]
            raise VelaError(f"vela exited with status {result.returncode} on {tflite_path.name}: "
                            f"{lines[-1] if lines else 'no output'}")
        summaries = sorted(Path(out_dir).glob("*_summary_*.csv"))
        if not summaries:
            raise VelaError(f"vela wrote no summary CSV for {tflite_path.name} (its output format changed?)")
        with summaries[0].open(newline="") as handle:
            rows = list(csv.DictReader(handle))
    return _parse_summary(rows, result.stdout, tflite_path.name, accelerator, system_config, memory_mode)


def _parse_summary(rows: list[dict[str, str]], stdout: str, network: str, accelerator: str, system_config: str,
                   memory_mode: str) -> VelaEstimate:
    if len(rows) != 1:
        raise VelaError(f"vela's summary for {network} has {len(rows)} rows; expected 1")
    row = rows[0]
    try:
        npu_clock_hz = float(row["core_clock"])
        cycles_total = int(float(row["cycles_total"]))
        kib = 1024.0
        flash_kib = float(row.get("on_chip_flash_memory_used") or 0) + float(row.get("off_chip_flash_memory_used") or 0)
        return VelaEstimate(
            network=network, accelerator=accelerator, system_config=system_config, memory_mode=memory_mode,
            npu_clock_hz=npu_clock_hz, cycles_npu=int(float(row["cycles_npu"])), cycles_total=cycles_total,
            inference_time_us=1e6 * cycles_total / npu_clock_hz,
            sram_bytes=int(round(float(row["sram_memory_used"]) * kib)), flash_bytes=int(round(flash_kib * kib)),
            npu_ops=_operator_count(stdout, "NPU"), cpu_ops=_operator_count(stdout, "CPU"),
            nn_macs=int(float(row["nn_macs"])))
    except (KeyError, ValueError, ZeroDivisionError) as error:
        raise VelaError(f"could not read vela's summary for {network}: {error!r} "
                        "(its output format changed?)") from None


def _operator_count(stdout: str, kind: str) -> int | None:
    match = re.search(rf"^{kind} operators\s*=\s*(\d+)", stdout, re.MULTILINE)
    return int(match.group(1)) if match else None


def estimate_ethos_u(tflite_paths: Sequence[str | Path], target: TargetDescriptor) -> VelaOutcome:
    """Vela's estimate for each network of a model on ``target``, or the reason there is none."""
    version = vela_version()
    accelerator, system_config, memory_mode = vela_settings(target)
    try:
        estimates = tuple(run_vela(path, accelerator, system_config, memory_mode) for path in tflite_paths)
    except VelaError as error:
        return VelaOutcome(available=False, reason=f"Vela unavailable: {error}", version=version)
    return VelaOutcome(available=True, reason="", version=version, estimates=estimates)
