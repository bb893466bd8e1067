"""Does a quantized model fit a target? Flash, RAM, compute per hop and latency, each with a verdict.

Input: a folder written by ``hearmask quantize`` (``manifest.json`` and one int8
``.tflite`` per network; the cascade has two) and a :class:`TargetDescriptor`.

Budgets (every figure carries a label, see :data:`LABELS`):

- **flash** = int8 model bytes (measured: the file sizes) + runtime code (estimate per
  runtime, :data:`RUNTIME_CODE_ESTIMATES`) + application code (estimate) + the DSP front
  end's constant tables (estimate from the STFT/feature configuration).
- **RAM** = TFLM arena (measured with the TFLM host interpreter, from the manifest) +
  recurrent state kept between hops + audio I/O buffers + serial frame buffers + the DSP
  front end's working buffers (from the STFT/feature configuration: window lengths, FFT
  size, bins, bands).
- **compute** = MACs per hop / (mac_per_cycle · clock_hz), an estimate from the
  descriptor's stated MAC/cycle figure, against a share (:data:`COMPUTE_BUDGET_FRACTION`,
  0.75) of the hop duration ``hop_samples / sample_rate``. The rest of the hop is the
  stated headroom for what the MAC count leaves out: the FFT and inverse FFT, band
  features and gains, element-wise ops, audio and serial I/O, interrupts. For Ethos-U
  targets with Vela installed, Vela's inference-time estimate replaces the CPU estimate.
- **latency** = algorithmic latency (synthesis window, from the manifest) + the compute
  estimate, against :data:`DEFAULT_LATENCY_BUDGET_MS` (hearing-aid delays above about
  10 ms become objectionable: Stone & Moore, Ear Hear. 20(3), 1999; 24(2), 2003).

Raspberry Pi targets: flash and RAM are not binding (the model lives on the microSD card
and needs a few MB of at least 1 GB), so their verdict is "not applicable"; compute and
latency still apply.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hearmask.errors import HearmaskError
from hearmask.targets.descriptors import TargetDescriptor
from hearmask.targets.vela import VELA_LABEL, estimate_ethos_u

FIT_FORMAT = "hearmask-fit-report"
FIT_VERSION = 1

LABELS = {
    "measured": "measured on this host from the model files (file sizes, TFLM host-interpreter arena)",
    "exact": "follows exactly from the model's configuration (MAC count from layer shapes, hop, windows)",
    "estimate": "an estimate from stated assumptions, not a measurement on the device",
    "descriptor": "from the target descriptor (public datasheet, product brief or QEMU machine model)",
    VELA_LABEL: "Arm Vela's own cycle/memory estimate for the Ethos-U NPU",
}
VERDICTS = ("fits", "does not fit", "not applicable")

# The network may use at most this fraction of each hop. The other quarter is headroom for
# the DSP front end (a 256-point real FFT and its inverse, band features and gains: roughly
# 30-40 k cycles, about 15 % of a 4 ms hop on a 64 MHz Cortex-M4F — an estimate), audio and
# serial I/O, interrupts. The error of mac_per_cycle is not covered: it is an estimate too.
COMPUTE_BUDGET_FRACTION = 0.75
DEFAULT_LATENCY_BUDGET_MS = 10.0  # total input-to-output delay a hearing aid may add (module docstring)

# Code size of each runtime, in bytes: ESTIMATES, stated so they can be checked against a
# real map file. TFLM: the interpreter core is about 16 KB on a Cortex-M (David et al.,
# "TensorFlow Lite Micro", MLSys 2021, reports 2-16 KB depending on the port); each
# registered kernel with its CMSIS-NN variant adds a few KB. hearmask-c has no interpreter,
# and each op is one small C function. LiteRT on a Pi is an installed library (not binding).
RUNTIME_CODE_ESTIMATES = {
    "tflm-cmsis-nn": {"interpreter_bytes": 16 * 1024, "per_op_kernel_bytes": 4 * 1024},
    "hearmask-c": {"interpreter_bytes": 0, "per_op_kernel_bytes": 1024},
    "litert": {"interpreter_bytes": 0, "per_op_kernel_bytes": 0},
}
# Start-up code, UART/HAL driver, the serial protocol, the DSP front end's code, libm: an estimate.
APPLICATION_CODE_BYTES = 24 * 1024
FLOAT32_BYTES = 4  # the DSP front end runs in float32 on the device
AUDIO_SAMPLE_BYTES = 2  # int16 codec samples
# Serial frames: per-tensor header on the wire (name <= 63 chars, dtype, rank, dims) and the
# frame header + CRC (firmware_bridge.framing.FRAME_OVERHEAD_BYTES = 12), plus COBS's 1 in 254.
WIRE_TENSOR_HEADER_BYTES = 80
WIRE_FRAME_OVERHEAD_BYTES = 12
_DTYPE_BYTES = {"int8": 1, "uint8": 1, "int16": 2, "int32": 4, "float32": 4, "int64": 8, "float64": 8, "bool": 1}


@dataclass(frozen=True)
class FitItem:
    """One term of a budget: ``value`` in ``unit``, with its label (a key of :data:`LABELS`)."""

    name: str
    value: float
    unit: str
    label: str
    source: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "value": self.value, "unit": self.unit, "label": self.label, "source": self.source}


@dataclass(frozen=True)
class Budget:
    """One budget: what the model needs against what the target has, and the verdict."""

    name: str  # "flash" | "ram" | "compute" | "latency"
    unit: str  # "bytes" | "us" | "ms"
    needed: float
    available: float | None  # None when the target states no limit (e.g. flash on a Pi)
    verdict: str  # one of VERDICTS
    label: str  # label of `needed`: "estimate" as soon as any term is one
    items: tuple[FitItem, ...]
    note: str = ""

    @property
    def fits(self) -> bool | None:
        """True / False, or None when not applicable."""
        return None if self.verdict == "not applicable" else self.verdict == "fits"

    def to_dict(self) -> dict[str, Any]:
        return {"needed": self.needed, "available": self.available, "fits": self.fits, "verdict": self.verdict,
                "unit": self.unit, "label": self.label, "note": self.note,
                "breakdown": [item.to_dict() for item in self.items]}


@dataclass(frozen=True)
class FitReport:
    target: TargetDescriptor
    model_dir: str
    variant: str
    networks: tuple[dict[str, Any], ...]  # role, file, sha256, int8 bytes, MACs per hop, arena per network
    budgets: dict[str, Budget]
    compute_budget_fraction: float = COMPUTE_BUDGET_FRACTION
    ethos_u: dict[str, Any] | None = None  # VelaOutcome.to_dict() for Ethos-U targets
    notes: tuple[str, ...] = field(default=())

    @property
    def fits(self) -> bool:
        """False as soon as one budget does not fit."""
        return all(budget.fits is not False for budget in self.budgets.values())

    @property
    def verdict(self) -> str:
        return "fits" if self.fits else "does not fit"

    def to_dict(self) -> dict[str, Any]:
        target = self.target
        return {
            "format": FIT_FORMAT, "version": FIT_VERSION,
            "model_dir": self.model_dir, "variant": self.variant,
            "target": {"name": target.name, "title": target.title, "kind": target.kind, "runtime": target.runtime,
                       "cpu": target.cpu, "clock_hz": target.clock_hz, "mac_per_cycle": target.mac_per_cycle,
                       "flash_bytes": target.flash_bytes, "ram_bytes": target.ram_bytes,
                       "ethos_u": target.ethos_u, "device_kind": target.hardware_label,
                       "qemu_machine": target.qemu_machine, "source_file": target.source_file},
            "fits": self.fits, "verdict": self.verdict,
            "budgets": {name: budget.to_dict() for name, budget in self.budgets.items()},
            "networks": list(self.networks),
            "ethos_u": self.ethos_u,
            "notes": list(self.notes),
            "assumptions": {"compute_budget_fraction": self.compute_budget_fraction,
                            "runtime_code_estimate": RUNTIME_CODE_ESTIMATES[target.runtime],
                            "application_code_bytes": APPLICATION_CODE_BYTES},
            "labels": LABELS,
        }


def _tensor_bytes(entry: dict[str, Any]) -> int:
    count = 1
    for dim in entry["shape"]:
        count *= int(dim)
    try:
        return count * _DTYPE_BYTES[entry["dtype"]]
    except KeyError:
        raise HearmaskError(f"manifest tensor {entry.get('name')!r} has dtype {entry['dtype']!r}; "
                            f"accepted: {', '.join(_DTYPE_BYTES)}") from None


def _field(document: dict[str, Any], key: str, where: str) -> Any:
    if key not in document:
        raise HearmaskError(f"{where} has no {key!r} entry; re-run hearmask quantize to write a current manifest")
    return document[key]


def _read_networks(model_dir: Path, manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """Per network: the manifest entry's figures plus the int8 file's measured size (checked)."""
    from hearmask.quantize.tflite_inspect import read_tflite

    networks = []
    entries = _field(manifest, "networks", "the manifest")
    if not isinstance(entries, list) or not entries:
        raise HearmaskError(f"the manifest in {str(model_dir)!r} lists no networks")
    for entry in entries:
        name = _field(_field(entry, "files", "a manifest network"), "int8_tflite", "a manifest network's files")
        path = model_dir / name
        data, summary = read_tflite(path, manifest=entry)  # int8 target, I/O as the manifest says
        expected_sha = entry.get("sha256", {}).get("int8_tflite")
        if expected_sha is not None and hashlib.sha256(data).hexdigest() != expected_sha:
            raise HearmaskError(f"{str(path)!r} differs from the file hearmask quantize wrote (SHA-256 does not match "
                                "the manifest); re-run hearmask quantize")
        networks.append({
            "role": entry.get("role", ""), "file": name, "sha256": hashlib.sha256(data).hexdigest(),
            "int8_model_bytes": len(data),
            "macs_per_hop": int(_field(entry, "macs_per_hop", "a manifest network")),
            "tflm_arena_bytes": int(_field(entry, "tflm_arena_bytes", "a manifest network")),
            "state_bytes": sum(_tensor_bytes(item) for item in entry["inputs"] if item["name"].startswith("state")),
            "input_bytes": sum(_tensor_bytes(item) for item in entry["inputs"]),
            "output_bytes": sum(_tensor_bytes(item) for item in entry["outputs"]),
            "input_count": len(entry["inputs"]), "output_count": len(entry["outputs"]),
            "op_resolver": sorted(summary.op_counts),  # from the file itself
            "tflm_arena_note": entry.get("tflm_arena_note", ""),
        })
    return networks


def _verdict(needed: float, available: float | None, applicable: bool) -> str:
    if not applicable or available is None:
        return "not applicable"
    return "fits" if needed <= available else "does not fit"


def _label(items: tuple[FitItem, ...]) -> str:
    labels = {item.label for item in items}
    for label in (VELA_LABEL, "estimate"):
        if label in labels:
            return label
    return "measured" if "measured" in labels else "exact"


def _flash_budget(target: TargetDescriptor, networks, stft: dict, audiogram_size: int) -> Budget:
    runtime = RUNTIME_CODE_ESTIMATES[target.runtime]
    ops = sorted({op for network in networks for op in network["op_resolver"]})
    analysis, fft_size = stft["analysis_window_samples"], stft["fft_size"]
    num_bins = fft_size // 2 + 1
    tables = FLOAT32_BYTES * (2 * analysis + 2 * num_bins + 2 * fft_size + num_bins * audiogram_size)
    items = (
        FitItem("int8 model(s)", sum(n["int8_model_bytes"] for n in networks), "bytes", "measured",
                " + ".join(n["file"] for n in networks) + " (file sizes)"),
        FitItem("runtime code", runtime["interpreter_bytes"] + runtime["per_op_kernel_bytes"] * len(ops), "bytes",
                "estimate", f"{target.runtime}: {runtime['interpreter_bytes']} B interpreter + "
                            f"{runtime['per_op_kernel_bytes']} B x {len(ops)} op kernels ({', '.join(ops)})"),
        FitItem("application code", APPLICATION_CODE_BYTES if target.kind == "cortex-m" else 0, "bytes", "estimate",
                "start-up, UART/HAL, serial protocol, DSP front-end code, libm"),
        FitItem("DSP constant tables", tables, "bytes", "estimate",
                f"float32: analysis + synthesis windows (2x{analysis}), band weights (2x{num_bins}), FFT twiddles "
                f"(2x{fft_size}), audiogram-to-bin matrix ({num_bins}x{audiogram_size})"),
    )
    needed = sum(item.value for item in items)
    applicable = target.kind == "cortex-m"
    note = ("" if applicable else "not binding on a Raspberry Pi: the model and runtime live on the microSD card")
    return Budget("flash", "bytes", needed, target.flash_bytes, _verdict(needed, target.flash_bytes, applicable),
                  _label(items), items, note)


def _ram_budget(target: TargetDescriptor, networks, stft: dict, features: dict) -> Budget:
    analysis, fft_size, hop = stft["analysis_window_samples"], stft["fft_size"], stft["hop_samples"]
    num_bins = fft_size // 2 + 1
    num_bands = int(features.get("num_bands", 0))
    dsp_floats = 2 * analysis + 2 * fft_size + 2 * num_bins + num_bands
    largest_tensor_frame = max(max(n["input_bytes"] + WIRE_TENSOR_HEADER_BYTES * n["input_count"],
                                   n["output_bytes"] + WIRE_TENSOR_HEADER_BYTES * n["output_count"]) for n in networks)
    frame_bytes = max(largest_tensor_frame, hop * FLOAT32_BYTES + 4) + WIRE_FRAME_OVERHEAD_BYTES
    frame_bytes += frame_bytes // 254 + 2  # COBS
    arena_note = networks[0]["tflm_arena_note"] or "TFLM host interpreter"
    items = (
        FitItem("TFLM arena", sum(n["tflm_arena_bytes"] for n in networks), "bytes", "measured",
                f"manifest tflm_arena_bytes, sum over {len(networks)} network(s): {arena_note}"
                + ("; the proxy for hearmask-c's activation buffers" if target.runtime == "hearmask-c" else "")),
        FitItem("recurrent state", sum(n["state_bytes"] for n in networks), "bytes", "exact",
                "state inputs kept between hops outside the arena (the arena planner may reuse input buffers)"),
        FitItem("audio I/O buffers", 2 * 2 * hop * AUDIO_SAMPLE_BYTES, "bytes", "estimate",
                f"input and output hop ({hop} samples), double-buffered for DMA, int16"),
        FitItem("serial frame buffers", 2 * frame_bytes, "bytes", "estimate",
                "receive + transmit, each one INFER or STREAM frame of this model (tensors, headers, CRC, COBS)"),
        FitItem("DSP working buffers", FLOAT32_BYTES * dsp_floats, "bytes", "estimate",
                f"float32: analysis frame + overlap-add ({analysis} each), FFT in/out ({fft_size} each), per-bin gain "
                f"and HLC span ({num_bins} each), band features ({num_bands})"),
    )
    needed = sum(item.value for item in items)
    applicable = target.kind == "cortex-m"
    note = "" if applicable else (f"not binding on a Raspberry Pi ({target.ram_bytes / 2**30:g} GiB or more); "
                                  "the TFLM arena is shown as a proxy for LiteRT's tensor memory")
    return Budget("ram", "bytes", needed, target.ram_bytes, _verdict(needed, target.ram_bytes, applicable),
                  _label(items), items, note)


def _compute_budget(target: TargetDescriptor, networks, hop_us: float, vela: dict | None,
                    budget_fraction: float) -> Budget:
    macs = sum(n["macs_per_hop"] for n in networks)
    cycles = macs / target.mac_per_cycle
    cpu_us = 1e6 * cycles / target.clock_hz
    available_us = budget_fraction * hop_us
    items = [
        FitItem("MACs per hop", macs, "MAC", "exact", "manifest macs_per_hop (layer shapes), sum over networks"),
        FitItem("mac_per_cycle", target.mac_per_cycle, "MAC/cycle", "estimate", f"descriptor {target.name}"),
        FitItem("clock", target.clock_hz, "Hz", "descriptor", f"descriptor {target.name}"),
        FitItem("CPU cycles per hop", cycles, "cycles", "estimate", "MACs per hop / mac_per_cycle"),
        FitItem("CPU compute per hop", cpu_us, "us", "estimate", "MACs / (mac_per_cycle x clock_hz), one core"),
        FitItem("hop duration", hop_us, "us", "exact", "hop_samples / sample_rate_hz"),
        FitItem("compute budget", available_us, "us", "exact",
                f"{budget_fraction:g} x hop; the rest is headroom for the FFT/inverse FFT, features and gains, "
                "element-wise ops, I/O and interrupts"),
    ]
    needed = cpu_us
    note = "CPU estimate from the descriptor's MAC/cycle figure; not measured"
    if target.emulated:
        note += ("; for the FPGA board QEMU models, at its clock: QEMU does not model time (its runs give QEMU "
                 "instruction counts)")
    if vela is not None:
        if vela["available"]:
            needed = vela["inference_time_us"]
            items.append(FitItem("Ethos-U inference per hop", needed, "us", VELA_LABEL,
                                 f"Vela {vela['version']}, {target.ethos_u}, sum over networks"))
            note = "Ethos-U NPU time from Vela's performance model (at its system config's NPU clock); not measured"
        else:
            note += f"; {vela['reason']}: the CPU estimate is used"
    items_tuple = tuple(items)
    verdict = _verdict(needed, available_us, True)
    label = VELA_LABEL if vela is not None and vela["available"] else "estimate"
    return Budget("compute", "us", needed, available_us, verdict, label, items_tuple, note)


def _latency_budget(manifest: dict, compute: Budget, latency_budget_ms: float) -> Budget:
    stft = manifest["stft"]
    algorithmic_ms = 1000.0 * stft["synthesis_window_samples"] / stft["sample_rate_hz"]
    compute_ms = compute.needed / 1000.0
    items = (
        FitItem("algorithmic latency", algorithmic_ms, "ms", "exact",
                f"synthesis window {stft['synthesis_window_samples']} samples at {stft['sample_rate_hz']} Hz "
                "(includes the hop of buffering)"),
        FitItem("compute latency", compute_ms, "ms", compute.label, "the compute budget's figure per hop"),
        FitItem("latency budget", latency_budget_ms, "ms", "exact", "stated limit for a hearing aid's added delay"),
    )
    needed = algorithmic_ms + compute_ms
    return Budget("latency", "ms", needed, latency_budget_ms, _verdict(needed, latency_budget_ms, True),
                  compute.label, items, "audio converter and anti-aliasing filter delays are not included")


def fit_model(model_dir: str | Path, target: TargetDescriptor, *,
              latency_budget_ms: float = DEFAULT_LATENCY_BUDGET_MS,
              compute_budget_fraction: float = COMPUTE_BUDGET_FRACTION, run_vela: bool = True) -> FitReport:
    """Check a ``hearmask quantize`` folder against ``target``; see the module docstring for each budget.

    ``latency_budget_ms``: the limit for algorithmic + compute latency.
    ``compute_budget_fraction``: the share of each hop the network may use, in (0, 1].
    ``run_vela``: for Ethos-U targets, run Vela when it is installed (False skips it and
    says so). Raises :class:`HearmaskError` for a missing or inconsistent model folder.
    """
    from hearmask.quantize.manifest import read_manifest

    if not latency_budget_ms > 0:
        raise HearmaskError(f"latency budget must be > 0 ms, got {latency_budget_ms!r}")
    if not 0 < compute_budget_fraction <= 1:
        raise HearmaskError(f"compute budget fraction must be in (0, 1], got {compute_budget_fraction!r}")
    model_dir = Path(model_dir)
    manifest = read_manifest(model_dir)
    stft = _field(manifest, "stft", "the manifest")
    for key in ("sample_rate_hz", "fft_size", "hop_samples", "analysis_window_samples", "synthesis_window_samples"):
        value = _field(stft, key, "the manifest's stft")
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise HearmaskError(f"the manifest's stft {key} must be a positive integer, got {value!r}")
    features = manifest.get("features", {})
    audiogram_size = len(manifest.get("audiogram", {}).get("frequencies_hz", [])) or 8
    networks = _read_networks(model_dir, manifest)
    hop_us = 1e6 * stft["hop_samples"] / stft["sample_rate_hz"]

    notes = []
    vela = None
    if target.ethos_u is not None:
        if run_vela:
            vela = estimate_ethos_u([model_dir / n["file"] for n in networks], target).to_dict()
        else:
            vela = {"available": False, "reason": "Vela unavailable: not run (run_vela=False)", "version": None,
                    "label": VELA_LABEL, "inference_time_us": None, "networks": []}
        if not vela["available"]:
            notes.append(vela["reason"])
    if target.emulated:
        notes.append(f"{target.name} is emulated ({target.qemu_machine}): memory sizes are the QEMU machine's; "
                     "QEMU runs give instruction counts, never cycles or milliseconds")
    compute = _compute_budget(target, networks, hop_us, vela, compute_budget_fraction)
    budgets = {
        "flash": _flash_budget(target, networks, stft, audiogram_size),
        "ram": _ram_budget(target, networks, stft, features),
        "compute": compute,
        "latency": _latency_budget(manifest, compute, latency_budget_ms),
    }
    return FitReport(target=target, model_dir=str(model_dir), variant=str(manifest.get("variant", "")),
                     networks=tuple(networks), budgets=budgets,
                     compute_budget_fraction=compute_budget_fraction, ethos_u=vela, notes=tuple(notes))
