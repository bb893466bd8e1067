"""``hearmask export MODEL_DIR --target NAME --out DIR``: a deployment bundle for one target.

The target's kind picks the exporter (:data:`EXPORTERS`, the one dispatch point):
``rpi`` -> :func:`hearmask.targets.bundle_rpi.export_rpi_bundle`; ``cortex-m`` ->
:func:`hearmask.targets.bundle_cortex_m.export_cortex_m_bundle` (QEMU boards: generated C + built
firmware; hardware boards: the TFLM firmware template).
"""

from __future__ import annotations

import argparse
import importlib
from pathlib import Path

from hearmask.cli.reporting import add_report_arguments, emit_result

# target kind -> (module, function(model_dir, target, out_dir, **options) -> Path)
EXPORTERS = {
    "rpi": ("hearmask.targets.bundle_rpi", "export_rpi_bundle"),
    "cortex-m": ("hearmask.targets.bundle_cortex_m", "export_cortex_m_bundle"),
}
# Options that only the Raspberry Pi bundle takes (argparse dest -> export_rpi_bundle keyword).
RPI_OPTIONS = {"audiogram": "audiogram", "nr": "nr_strength", "hlc": "hlc_strength", "port": "port", "baud": "baud",
               "runtime": "runtime", "threads": "threads", "power_backend": "power_backend",
               "install_dir": "install_dir", "service_user": "service_user"}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export",
        help="write a deployment bundle of a quantized model for a target (Raspberry Pi, Cortex-M)",
        description="Write DIR, the bundle of a model folder written by hearmask quantize for --target (see hearmask "
        "targets list). Raspberry Pi: the int8 .tflite and manifest, the device agent (numpy + pyserial + LiteRT "
        "only), config.json (serial port, audiogram, strengths), a systemd unit (hearmask-agent.service), "
        "requirements.txt and a README with the commands to run it on the Pi. Cortex-M: the generated int8 C "
        "(bit-exact with TFLM); QEMU boards add the firmware sources and built ELFs (plain and per-op profiling) "
        "with text/data/bss in bundle.json; hardware boards add the TFLM template (model_data.h/.cc, the exact "
        "op resolver, the measured arena, main.cc on the shared protocol code, CMakeLists.txt/Makefile taking "
        "TFLM_DIR and CMSIS_NN_DIR).",
    )
    parser.add_argument("model_dir", type=Path, metavar="MODEL_DIR", help="a folder written by hearmask quantize")
    parser.add_argument("--target", required=True, metavar="NAME", help="target name, e.g. rpi4, rpi5, cortex-m55-qemu")
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="bundle folder (new, empty or an earlier bundle)")
    parser.add_argument("--targets-dir", type=Path, action="append", default=[], metavar="DIR",
                        help="folder with more target TOML files (repeatable)")
    pi = parser.add_argument_group("Raspberry Pi bundle")
    pi.add_argument("--audiogram", default=None, metavar="NAME|FILE",
                    help="the listener at the agent's start: profile name (N3) or audiogram file (default NH)")
    pi.add_argument("--nr", type=float, default=None, metavar="ALPHA", help="noise-reduction strength (default 1)")
    pi.add_argument("--hlc", type=float, default=None, metavar="BETA", help="compensation strength (default 1)")
    pi.add_argument("--allow-exaggeration", action="store_true", help="accept strengths above 1 (up to 4)")
    pi.add_argument("--port", default=None, metavar="DEVICE",
                    help="serial device on the Pi (default /dev/ttyGS0, USB gadget serial)")
    pi.add_argument("--baud", type=int, default=None, help="baud rate (default 115200)")
    pi.add_argument("--runtime", choices=("litert", "litert-reference"), default=None,
                    help="LiteRT kernels on the Pi: litert (optimised, default) or litert-reference (bit-exact golden)")
    pi.add_argument("--threads", type=int, default=None, help="LiteRT interpreter threads (default 1)")
    pi.add_argument("--power-backend", default=None, metavar="SPEC",
                    help="the agent's power sensor: rpi5-pmic or ina219[:ADDRESS[:SHUNT_OHMS]] (default none)")
    pi.add_argument("--install-dir", default=None, metavar="PATH",
                    help="where the README installs the bundle on the Pi (default /opt/hearmask-agent)")
    pi.add_argument("--service-user", default=None, metavar="USER", help="user of the systemd unit (default hearmask)")
    add_report_arguments(parser)
    parser.set_defaults(handler=run)


def export_bundle(model_dir: Path, target, out_dir: Path, **options) -> Path:
    """Dispatch on ``target.kind`` to the exporter of :data:`EXPORTERS`."""
    from hearmask.errors import HearmaskError

    if target.kind not in EXPORTERS:
        raise HearmaskError(f"target {target.name!r} has kind {target.kind!r}; export knows {', '.join(EXPORTERS)}")
    module_name, function_name = EXPORTERS[target.kind]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name != module_name:
            raise
        raise HearmaskError(f"Cortex-M export not available yet (target {target.name!r}: {module_name} is not part of "
                            "this hearmask); Raspberry Pi targets export now (rpi3b+, rpi4, rpi5)") from None
    return getattr(module, function_name)(model_dir, target, out_dir, **options)


def run(args: argparse.Namespace) -> int:
    from hearmask.errors import HearmaskError
    from hearmask.targets.descriptors import load_target

    target = load_target(args.target, args.targets_dir)
    given = {keyword: getattr(args, dest) for dest, keyword in RPI_OPTIONS.items() if getattr(args, dest) is not None}
    if target.kind == "rpi":
        options = {**given, "allow_exaggeration": args.allow_exaggeration}
    elif given or args.allow_exaggeration:
        flags = ", ".join("--" + dest.replace("_", "-") for dest in RPI_OPTIONS if getattr(args, dest) is not None)
        raise HearmaskError(f"{flags or '--allow-exaggeration'} apply to Raspberry Pi targets only; "
                            f"{target.name!r} is of kind {target.kind!r}")
    else:
        options = {}
    out_dir = export_bundle(args.model_dir, target, args.out, **options)
    files = sorted(str(p.relative_to(out_dir)) for p in out_dir.rglob("*") if p.is_file())
    result = {"target": target.name, "kind": target.kind, "out_dir": str(out_dir), "files": files}
    emit_result(args, result, f"{target.kind} bundle for {target.name} in {out_dir} ({len(files)} files)")
    return 0
