"""``hearmask profile``: latency, correctness and power of a model on a device, over the serial protocol.

One session against any pyserial URL (``/dev/ttyACM0``, ``socket://host:port``) or
``emulate://rpi`` (the real agent on a local pty):

1. HELLO/INFO: who the device is; its ``kind`` labels every figure (see :func:`device_label`).
2. LOAD_MODEL when the device runs another model and can load one (Raspberry Pi agent);
   a device that cannot is stopped with the two SHA-256 digests.
3. SET_AUDIOGRAM and SET_STRENGTHS (the listener of :class:`ProfileConfig`).
4. INFER over held-out utterances: real recorded speech (Debian's ``pocketsphinx-testdata``,
   never used in training) mixed with procedural noise, through the numpy DSP front end
   (:class:`~hearmask.model.stft_stream.StreamingStft` + :class:`~hearmask.model.features.BandFeatures`,
   the device path), quantized with the model's input scales. The state is fed back hop by
   hop, on the device from its own outputs and in the host golden from the golden's. Every
   output is compared with the golden in LSBs (int8 codes).
5. BENCH: device-timed invokes on the last INFER inputs (warm-up, then ``bench_runs``).
6. STREAM (when the device has a stream pipeline): per-hop time of the whole pipeline.
7. POWER (with ``power``): idle readings, then readings between BENCH windows; energy per
   inference is derived from them (an estimate).

Golden (:func:`golden_for`): the host runtime with the same kernels as the device, chosen from
INFO's runtime name: LiteRT reference kernels (bit-exact expected), LiteRT optimised kernels
(bit-exact expected only when emulated on this host with the same LiteRT; a real device's
optimised kernels may round differently: within ``tolerance_lsb``), TFLM (bit-exact expected).

Every result is a JSON line appended and flushed to ``REPORT_DIR/records.jsonl`` as soon as it
exists, so an interrupted profile loses at most the record being written; ``resume=True``
skips the INFER hops and phases already recorded (the host keeps the recurrent state, and the
records carry it). The report (:mod:`hearmask.firmware_bridge.profile_report`) is computed
from the records alone, so a resumed profile reports like an uninterrupted one.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np

from hearmask.errors import HearmaskError
from hearmask.firmware_bridge import messages as msg
from hearmask.firmware_bridge.errors import BridgeError

RECORDS_FILE = "records.jsonl"
RECORDS_FORMAT = "hearmask-profile-records"
EMULATE_SCHEME = "emulate://"
EMULATED_URL_SCHEMES = ("emulate://", "qemu://")
# 65 dB SPL under the auditory model's calibration (RMS 1 = 100 dB SPL), as in hearmask evaluate.
SPEECH_LEVEL_DBFS = -35.0
STATE_PAIRS = {"state": "new_state"}  # recurrent input -> the output fed back into it (manifest convention)


@dataclass(frozen=True)
class ProfileConfig:
    """What a profile measures. Every field is in the records' fingerprint: ``resume`` needs the same.

    Attributes:
        utterances: held-out utterances sent through INFER.
        hops: INFER hops per utterance (each is cut to at most this many; the shortest clip has 273 hops of 4 ms).
        bench_runs: device-timed invokes in BENCH (0 skips BENCH).
        bench_warmup: untimed invokes before them.
        stream_hops: hops sent through STREAM when the device has a stream pipeline (0 skips STREAM).
        audiogram: the listener (profile name or audiogram file) for SET_AUDIOGRAM and the model input.
        nr_strength, hlc_strength: alpha and beta for SET_STRENGTHS.
        snr_db: speech-to-noise ratio of the held-out mixtures.
        noise_kind: procedural noise (see :func:`hearmask.model.data.noise.make_noise`).
        seed: noise seed.
        power: None, or the power backend: for ``emulate://`` URLs it is given to the emulated agent
            (``rpi5-pmic``, ``ina219[:ADDR[:OHMS]]``, ``replay:TRACE.csv``); a real device reads the
            sensor its agent was started with (bundle ``config.json``: ``power_backend``) and the report
            names the source the device reports.
        power_readings: POWER readings at idle and under load each.
        tolerance_lsb: allowed |device - golden| in LSBs where bit-exactness is not expected.
    """

    utterances: int = 2
    hops: int = 200
    bench_runs: int = 200
    bench_warmup: int = 20
    stream_hops: int = 100
    audiogram: str = "N3"
    nr_strength: float = 1.0
    hlc_strength: float = 1.0
    snr_db: float = 5.0
    noise_kind: str = "pink"
    seed: int = 0
    power: str | None = None
    power_readings: int = 10
    tolerance_lsb: int = 1

    def __post_init__(self) -> None:
        for name, low in (("utterances", 1), ("hops", 1), ("bench_runs", 0), ("bench_warmup", 0), ("stream_hops", 0),
                          ("power_readings", 1), ("tolerance_lsb", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise HearmaskError(f"profile {name} must be an integer >= {low}, got {value!r}")
        if self.bench_runs > 100_000 or self.bench_warmup > 100_000:
            raise HearmaskError(f"bench runs and warm-up must be <= 100000 (the protocol's limit), got "
                                f"{self.bench_runs}, {self.bench_warmup}")
        if not math.isfinite(self.snr_db):
            raise HearmaskError(f"profile snr_db must be a finite number of dB, got {self.snr_db!r}")


@dataclass(frozen=True)
class ModelUnderTest:
    """The int8 network of a model folder (``hearmask quantize`` output or a bundle)."""

    model_dir: Path
    manifest: dict[str, Any]
    network: dict[str, Any]
    model_bytes: bytes
    sha256: bytes

    @property
    def file_name(self) -> str:
        return self.network["files"]["int8_tflite"]

    @property
    def hop_us(self) -> float:
        return 1e6 * self.manifest["hop_samples"] / self.manifest["sample_rate_hz"]


def load_model_under_test(model_dir: str | Path) -> ModelUnderTest:
    """Read the manifest and the int8 ``.tflite`` it names; one network only (the agent serves one)."""
    from hearmask.quantize.manifest import read_manifest
    from hearmask.quantize.tflite_inspect import read_tflite

    model_dir = Path(model_dir)
    manifest = read_manifest(model_dir)
    networks = manifest.get("networks") or []
    if len(networks) != 1:
        raise HearmaskError(f"model {str(model_dir)!r} is a {manifest.get('variant')!r} model with {len(networks)} "
                            "networks; profile takes one network (a joint, nr or hlc model)")
    network = networks[0]
    model_bytes, summary = read_tflite(model_dir / network["files"]["int8_tflite"], manifest=network)
    names = {entry.name for entry in summary.inputs}
    if not names <= {"features", "audiogram", *STATE_PAIRS}:
        raise HearmaskError(f"model inputs {sorted(names)} are not the step model's (features, audiogram, state)")
    return ModelUnderTest(model_dir, manifest, network, model_bytes, hashlib.sha256(model_bytes).digest())


# --------------------------------------------------------------------------- labels and golden


def device_label(url: str, info: msg.Info) -> str:
    """``"emulated"`` when the URL names an emulation (``emulate://``, ``qemu://``) or the device says
    it is emulated (INFO ``kind``), else ``"hardware"``. A host-side pyserial URL to a real Pi is hardware."""
    if url.startswith(EMULATED_URL_SCHEMES) or info.kind == msg.DeviceKind.EMULATED:
        return "emulated"
    return "hardware"


LABEL_RULE = ("hardware: device-measured on a device whose INFO says hardware over a real port; emulated: the URL "
              "is emulate:// or qemu:// or INFO says emulated (host-CPU timings, QEMU instruction counts); "
              "estimate: derived from measurements under stated assumptions (energy per inference)")


@dataclass
class Golden:
    """The host reference for the device's runtime and what agreement to expect."""

    runtime: Any  # a hearmask.quantize.runtimes.StepRuntime
    description: str
    bit_exact_expected: bool


def golden_for(info: msg.Info, label: str, model_bytes: bytes) -> Golden:
    """The host runtime with the device's kernels (module docstring)."""
    from hearmask.quantize.runtimes import LiteRtRuntime, TflmRuntime

    name = info.runtime_name.lower()
    # The generated C firmware ("hearmask generated C int8 ...") reproduces the TFLM reference kernels.
    if "tflm" in name or "tflite-micro" in name or "hearmask-c" in name or "hearmask generated c" in name:
        return Golden(TflmRuntime(model_bytes), "TFLM host interpreter (reference kernels)", True)
    if "reference" in name:
        return Golden(LiteRtRuntime(model_bytes, reference_kernels=True), "host LiteRT, reference kernels", True)
    from importlib.metadata import version

    host_litert = f"litert {version('ai-edge-litert')}"
    same_build = label == "emulated" and name.startswith(host_litert)
    return Golden(LiteRtRuntime(model_bytes), f"host {host_litert}, optimised (builtin) kernels", same_build)


def device_url(url: str, config: ProfileConfig) -> str:
    """``emulate://`` URLs get the LiteRT runtime (not the fake test runtime) and the power backend."""
    if not url.startswith(EMULATE_SCHEME):
        return url
    query = parse_qs(urlsplit(url).query)
    extra = []
    if "runtime" not in query:
        extra.append("runtime=litert")
    if config.power and "power_backend" not in query:
        extra.append(f"power_backend={config.power}")
    if not extra:
        return url
    return url + ("&" if "?" in url else "?") + "&".join(extra)


def qemu_urls(url: str, model_dir: Path, report_dir: Path) -> tuple[str, str | None]:
    """``qemu://BOARD`` without ``firmware=``: (the URL with the firmware of ``model_dir``, the URL of its
    per-op profiling build). The firmware comes from a Cortex-M bundle for that board, or is generated
    and built into ``report_dir/firmware`` (:func:`hearmask.targets.bundle_cortex_m.qemu_firmware_for`).
    Other URLs come back unchanged, with no per-op URL."""
    if not url.startswith("qemu://") or "firmware=" in url:
        return url, None
    from hearmask.targets.bundle_cortex_m import qemu_firmware_for
    from hearmask.targets.qemu import resolve_board

    parts = urlsplit(url)
    if parts.query:
        raise HearmaskError(f"unknown option(s) in {url!r}; accepted: qemu://BOARD or qemu://BOARD?firmware=FW.elf")
    board = resolve_board(parts.netloc or parts.path.strip("/"))
    plain = qemu_firmware_for(board, model_dir, report_dir)
    per_op = qemu_firmware_for(board, model_dir, report_dir, profile=True)
    return f"qemu://{board.cpu}?firmware={plain.resolve()}", f"qemu://{board.cpu}?firmware={per_op.resolve()}"


# --------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class Utterance:
    utterance_id: str
    noisy: np.ndarray  # float32 (hops * hop_samples,)
    features: np.ndarray  # float32 (hops, num_features): the front end's output per hop


def held_out_utterances(manifest: dict[str, Any], config: ProfileConfig) -> list[Utterance]:
    """``config.utterances`` pocketsphinx clips, each mixed with noise and cut to ``config.hops`` hops,
    with their per-hop features from the numpy front end (deterministic for the config)."""
    from hearmask.model.data.mixer import mix
    from hearmask.model.data.noise import make_noise
    from hearmask.model.data.speech import PocketsphinxSpeech
    from hearmask.model.features import BandFeatures, FeatureConfig
    from hearmask.model.stft_config import StftConfig
    from hearmask.model.stft_stream import StreamingStft

    stft_config = StftConfig.from_dict(manifest["stft"])
    feature_config = FeatureConfig.from_dict(manifest["features"])
    hop_samples = stft_config.hop_samples
    source = PocketsphinxSpeech()
    utterance_ids = sorted(source.utterance_ids())
    if config.utterances > len(utterance_ids):
        raise HearmaskError(f"profile utterances={config.utterances}, but only {len(utterance_ids)} held-out "
                            "pocketsphinx clips exist")
    utterances = []
    for index, utterance_id in enumerate(utterance_ids[: config.utterances]):
        speech = source.load(utterance_id)[: config.hops * hop_samples]
        noise = make_noise(config.noise_kind, speech.size, stft_config.sample_rate_hz,
                           np.random.default_rng([config.seed, index]))
        noisy = mix(speech, noise, config.snr_db, SPEECH_LEVEL_DBFS).noisy
        num_hops = noisy.size // hop_samples
        noisy = noisy[: num_hops * hop_samples].astype(np.float32)
        stft = StreamingStft(stft_config)
        extractor = BandFeatures(stft_config, feature_config)
        features = np.stack([extractor(stft.analyze_hop(noisy[k * hop_samples:(k + 1) * hop_samples]))
                             for k in range(num_hops)])
        utterances.append(Utterance(utterance_id, noisy, features.astype(np.float32)))
    return utterances


def listener_settings(config: ProfileConfig) -> tuple[tuple[float, ...], np.ndarray]:
    """(8 thresholds in dB HL for SET_AUDIOGRAM, the model's audiogram input (8,) in dB HL / 100)."""
    from hearmask.profiles import MODEL_AUDIOGRAM_FREQUENCIES_HZ, load_audiogram
    from hearmask.profiles.audiogram import MODEL_INPUT_SCALE_DB

    model_input = load_audiogram(config.audiogram).model_input(MODEL_AUDIOGRAM_FREQUENCIES_HZ)
    return tuple(round(float(v) * MODEL_INPUT_SCALE_DB, 1) for v in model_input), model_input


# --------------------------------------------------------------------------- records


class RecordLog:
    """``records.jsonl``: one JSON object per line, flushed and fsynced per record.

    The first line is the ``conditions`` record; ``resume`` requires the same fingerprint.
    A line cut short by an interruption is dropped (and the file truncated) before appending.
    """

    def __init__(self, path: Path, conditions: dict[str, Any], resume: bool):
        self.path = path
        fingerprint = hashlib.sha256(json.dumps(conditions, sort_keys=True).encode()).hexdigest()[:16]
        self.records: list[dict[str, Any]] = []
        if path.exists() and path.stat().st_size:
            self.records = self._read_complete()
            if len(self.records) <= 1 and not resume:  # only the conditions: no device answered; start afresh
                path.write_bytes(b"")
                self.records = []
            elif not resume:
                raise HearmaskError(f"{str(path)!r} holds an earlier profile; pass --resume to continue it or choose "
                                    "another report folder")
            first = self.records[0] if self.records else {"fingerprint": fingerprint, "record": "conditions"}
            if first.get("record") != "conditions" or first.get("fingerprint") != fingerprint:
                raise HearmaskError(f"{str(path)!r} was written for other conditions (model, URL options or profile "
                                    "settings); --resume needs the same ones, or choose another report folder")
        path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = open(path, "a")
        if not self.records:
            self.append({"record": "conditions", "format": RECORDS_FORMAT, "fingerprint": fingerprint, **conditions})

    def _read_complete(self) -> list[dict[str, Any]]:
        data = self.path.read_bytes()
        end = data.rfind(b"\n") + 1
        if end < len(data):  # the last record was cut short: drop it
            with open(self.path, "r+b") as handle:
                handle.truncate(end)
        records = []
        for number, line in enumerate(data[:end].decode().splitlines(), 1):
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                raise HearmaskError(f"{str(self.path)!r} line {number} is not JSON; the records are damaged") from None
        return records

    def append(self, record: dict[str, Any]) -> None:
        self._handle.write(json.dumps(record, default=_json_default) + "\n")
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self.records.append(record)

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [r for r in self.records if r.get("record") == kind]

    def close(self) -> None:
        self._handle.close()


def _json_default(value):
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


def _device_time_fields(device_time: msg.DeviceTime, clock_hz: int) -> dict[str, Any]:
    """Raw value and unit, and µs when it is a time (cycles need the clock; instructions never are)."""
    micros = device_time.microseconds
    if micros is None and device_time.unit == msg.TimeUnit.CYCLES and clock_hz > 0:
        micros = device_time.value / clock_hz * 1e6
    return {"device_time": int(device_time.value), "unit": device_time.unit.name.lower(), "device_time_us": micros}


# --------------------------------------------------------------------------- the session


class ProfileInterrupted(HearmaskError):
    """The device stopped answering or went away mid-profile; the records so far are kept."""


def profile_device(url: str, model_dir: str | Path, report_dir: str | Path, config: ProfileConfig = ProfileConfig(),
                   *, resume: bool = False, progress: bool = True, baudrate: int = 115200,
                   timeout_s: float = 5.0) -> dict[str, Any]:
    """Run the profile (module docstring); writes ``report.json``, ``report.md``, plots; returns the report."""
    from hearmask.firmware_bridge.client import DeviceClient
    from hearmask.firmware_bridge.profile_report import build_report, write_report

    model = load_model_under_test(model_dir)
    report_dir = Path(report_dir)
    url, per_op_url = qemu_urls(url, model.model_dir, report_dir)
    connect_url = device_url(url, config)
    conditions = {"url": connect_url, "model_sha256": model.sha256.hex(), "model_file": model.file_name,
                  "config": asdict(config)}
    log = RecordLog(report_dir / RECORDS_FILE, conditions, resume)
    client = DeviceClient(connect_url, baudrate=baudrate, timeout_s=timeout_s)
    try:
        try:
            info = client.open()
        except BridgeError as error:
            raise ProfileInterrupted(f"cannot start a session with {url}: {error}") from None
        label = device_label(url, info)
        _record_session(log, info, label)
        _run_phases(client, log, model, config, label, progress)
        client.close()  # one QEMU at a time
        if per_op_url and config.bench_runs and not log.of("bench_ops"):
            log.append(_per_op_phase(per_op_url, model, config, baudrate, timeout_s))
    except BridgeError as error:
        raise ProfileInterrupted(f"{error}. {len(log.records)} records are kept in {str(log.path)!r}; run the same "
                                 "command with --resume to continue") from None
    finally:
        client.close()
        log.close()
    report = build_report(log.records, model)
    write_report(report, report_dir, log.records)
    return report


def _record_session(log: RecordLog, info: msg.Info, label: str) -> None:
    session = {"record": "session", "time_unix_s": round(time.time(), 3), "target_name": info.target_name,
               "runtime_name": info.runtime_name, "kind": label, "clock_hz": info.clock_hz,
               "arena_bytes": info.arena_bytes, "max_payload_bytes": info.max_payload_bytes,
               "capabilities": [c.name for c in msg.Capability if c in info.capabilities],
               "model_sha256": info.model_sha256.hex()}
    earlier = log.of("session")
    if earlier and (earlier[0]["target_name"], earlier[0]["kind"]) != (info.target_name, label):
        raise HearmaskError(f"the device is {info.target_name!r} ({label}), but the records in {str(log.path)!r} come "
                            f"from {earlier[0]['target_name']!r} ({earlier[0]['kind']}); resume on the same device")
    log.append(session)


def _run_phases(client, log: RecordLog, model: ModelUnderTest, config: ProfileConfig, label: str,
                progress: bool) -> None:
    info = client.device_info
    caps = info.capabilities
    if info.model_sha256 != model.sha256:
        if msg.Capability.LOAD_MODEL not in caps:
            raise HearmaskError(f"device {info.target_name!r} runs model SHA-256 {info.model_sha256.hex()} and cannot "
                                f"load one; the profiled model {model.file_name} has {model.sha256.hex()}. Flash or "
                                "start the device with this model, or point --model at the device's model")
        start = time.perf_counter()
        client.load_model(model.model_bytes)
        log.append({"record": "load", "bytes": len(model.model_bytes), "seconds": round(time.perf_counter() - start, 4)})
        info = client.device_info
    client.expected_model_sha256 = model.sha256  # every later INFO (a restart) is checked against it
    log.append({"record": "ready", "runtime_name": info.runtime_name, "arena_bytes": info.arena_bytes,
                "model_sha256": info.model_sha256.hex()})
    thresholds_db_hl, audiogram_input = listener_settings(config)
    _apply_settings(client, thresholds_db_hl, config)
    golden = golden_for(info, label, model.model_bytes)
    if not log.of("golden"):
        log.append({"record": "golden", "description": golden.description,
                    "bit_exact_expected": golden.bit_exact_expected, "tolerance_lsb": config.tolerance_lsb})
    utterances = held_out_utterances(model.manifest, config)
    _infer_phase(client, log, golden, utterances, audiogram_input, info.clock_hz, progress)
    if config.bench_runs and msg.Capability.BENCH in caps and not log.of("bench"):
        result = client.bench(config.bench_runs, config.bench_warmup, return_samples=True)
        log.append({"record": "bench", **_bench_fields(result, info.clock_hz)})
    if config.stream_hops and msg.Capability.STREAM in caps and not log.of("stream"):
        log.append(_stream_phase(client, utterances, config, thresholds_db_hl, info.clock_hz, progress))
    if config.power and not log.of("power"):
        if msg.Capability.POWER not in caps:
            raise HearmaskError(f"--power {config.power!r}: device {info.target_name!r} has no power backend; start its "
                                "agent with one (bundle config.json power_backend, or --power-backend)")
        log.append(_power_phase(client, config))


def _apply_settings(client, thresholds_db_hl: tuple[float, ...], config: ProfileConfig) -> None:
    caps = client.device_info.capabilities
    if msg.Capability.SET_AUDIOGRAM in caps:
        client.set_audiogram(thresholds_db_hl)
    if msg.Capability.SET_STRENGTHS in caps:
        client.set_strengths(config.nr_strength, config.hlc_strength)


def _quantize(runtime, name: str, values: np.ndarray) -> np.ndarray:
    return runtime.summary.input(name).tensor.quantization.quantize(np.asarray(values, np.float32))


def _infer_phase(client, log: RecordLog, golden: Golden, utterances: list[Utterance], audiogram_input: np.ndarray,
                 clock_hz: int, progress: bool) -> None:
    from tqdm import tqdm

    runtime = golden.runtime
    input_names = [entry.name for entry in runtime.inputs]
    done = {(r["utterance"], r["hop"]): r for r in log.of("infer")}
    total = sum(u.features.shape[0] for u in utterances)
    audiogram_codes = _quantize(runtime, "audiogram", audiogram_input[None]) if "audiogram" in input_names else None
    with tqdm(total=total, initial=len(done), desc="INFER", unit="hop", disable=not progress) as bar:
        for index, utterance in enumerate(utterances):
            states = {name: _zero_codes(runtime, name) for name in STATE_PAIRS if name in input_names}
            golden_states = dict(states)
            hops = utterance.features.shape[0]
            finished = [k for k in range(hops) if (index, k) in done]
            start = len(finished)
            if finished != list(range(start)):
                raise HearmaskError(f"records of utterance {index} are not a prefix of its hops; start a new profile")
            if start:  # resume: the recurrent state after the last recorded hop
                last = done[(index, start - 1)]
                states = {name: _from_hex(last["device_state"][name], runtime, name) for name in states}
                golden_states = {name: _from_hex(last["golden_state"][name], runtime, name) for name in states}
            for hop in range(start, hops):
                inputs = {"features": _quantize(runtime, "features", utterance.features[hop:hop + 1])}
                if audiogram_codes is not None:
                    inputs["audiogram"] = audiogram_codes
                reply = client.infer({**inputs, **states})
                expected = runtime.invoke_codes({**inputs, **golden_states})
                log.append({"record": "infer", "utterance": index, "utterance_id": utterance.utterance_id, "hop": hop,
                            **_device_time_fields(reply.device_time, clock_hz),
                            "round_trip_us": round(reply.round_trip_us, 1),
                            **_compare_outputs(reply.outputs, expected),
                            "device_state": {n: reply.outputs[STATE_PAIRS[n]].tobytes().hex() for n in states},
                            "golden_state": {n: expected[STATE_PAIRS[n]].tobytes().hex() for n in states}})
                states = {name: reply.outputs[STATE_PAIRS[name]] for name in states}
                golden_states = {name: expected[STATE_PAIRS[name]] for name in states}
                bar.update(1)


def _zero_codes(runtime, name: str) -> np.ndarray:
    """The int8 codes of real value 0 (the zero point), the state at the start of an utterance."""
    tensor = runtime.summary.input(name).tensor
    return np.full(tensor.shape, tensor.quantization.zero_point, dtype=np.int8)


def _from_hex(text: str, runtime, name: str) -> np.ndarray:
    return np.frombuffer(bytes.fromhex(text), dtype=np.int8).reshape(runtime.summary.input(name).tensor.shape).copy()


def _compare_outputs(device: dict[str, np.ndarray], expected: dict[str, np.ndarray]) -> dict[str, Any]:
    """Per output: largest |device - golden| in LSBs (int8 codes) and how many values differ."""
    per_output = {}
    for name, golden_codes in expected.items():
        if name not in device:
            raise HearmaskError(f"the device's INFER reply lacks output {name!r}; it sent {sorted(device)}")
        actual = np.asarray(device[name])
        if actual.size == golden_codes.size and actual.ndim == 1:  # firmware sends tensors flat (same values, in order)
            actual = actual.reshape(golden_codes.shape)
        if actual.shape != golden_codes.shape or actual.dtype != golden_codes.dtype:
            raise HearmaskError(f"device output {name!r} is {actual.shape} {actual.dtype}; the golden's is "
                                f"{golden_codes.shape} {golden_codes.dtype}")
        difference = np.abs(actual.astype(np.int32) - golden_codes.astype(np.int32))
        per_output[name] = {"max_abs_lsb": int(difference.max()), "mismatched": int(np.count_nonzero(difference)),
                            "values": int(difference.size)}
    return {"outputs": per_output}


def _bench_fields(result: msg.BenchResult, clock_hz: int) -> dict[str, Any]:
    unit = result.unit
    scale = {msg.TimeUnit.NANOSECONDS: 1e-3, msg.TimeUnit.MICROSECONDS: 1.0}.get(unit)
    if scale is None and unit == msg.TimeUnit.CYCLES and clock_hz > 0:
        scale = 1e6 / clock_hz
    samples_us = [s * scale for s in result.samples] if scale is not None else None
    return {"runs": result.runs, "unit": unit.name.lower(), "min": result.min, "median": result.median,
            "mean": result.mean, "max": result.max, "samples": list(result.samples), "samples_us": samples_us,
            "op_counts": dict(result.op_counts)}


def _per_op_phase(url: str, model: ModelUnderTest, config: ProfileConfig, baudrate: int,
                  timeout_s: float) -> dict[str, Any]:
    """BENCH with per-op counts on the profiling build (its own session: the hooks add instructions, so
    its per-hop totals are not the plain build's). Runs on zero inputs after RESET: the counts of this
    int8 graph do not depend on the values (no data-dependent loops)."""
    from hearmask.firmware_bridge.client import DeviceClient

    client = DeviceClient(url, baudrate=baudrate, timeout_s=timeout_s)
    try:
        info = client.open()
        if info.model_sha256 != model.sha256:
            raise HearmaskError(f"the profiling firmware {url!r} runs model SHA-256 {info.model_sha256.hex()}, not "
                                f"{model.sha256.hex()}")
        result = client.bench(config.bench_runs, config.bench_warmup, per_op=True)
    finally:
        client.close()
    return {"record": "bench_ops", "runtime_name": info.runtime_name, "runs": result.runs,
            "unit": result.unit.name.lower(), "median": result.median,
            "op_counts": [[name, int(value)] for name, value in result.op_counts]}  # in graph order; names repeat


def _stream_phase(client, utterances: list[Utterance], config: ProfileConfig, thresholds_db_hl, clock_hz: int,
                  progress: bool) -> dict[str, Any]:
    """Hops of the first utterance through the device's whole pipeline, after RESET (fresh stream state)."""
    from tqdm import tqdm

    client.reset()
    _apply_settings(client, thresholds_db_hl, config)  # RESET forgot them
    noisy = utterances[0].noisy
    hop_samples = noisy.size // utterances[0].features.shape[0]
    hops = min(config.stream_hops, utterances[0].features.shape[0])
    times = []
    for hop in tqdm(range(hops), desc="STREAM", unit="hop", disable=not progress):
        reply = client.stream(noisy[hop * hop_samples:(hop + 1) * hop_samples])
        times.append({**_device_time_fields(reply.device_time, clock_hz), "round_trip_us": round(reply.round_trip_us, 1)})
    return {"record": "stream", "hops": hops, "hop_samples": hop_samples, "times": times,
            "audio_check": "not computed: the host has no int8 streaming path to compare the processed audio with yet"}


def _power_phase(client, config: ProfileConfig) -> dict[str, Any]:
    """Idle readings, then readings each right after a BENCH window of ``bench_runs`` invokes."""
    def reading() -> dict[str, Any]:
        result = client.power()
        return {"power_mw": result.power_mw, "voltage_v": _finite_or_none(result.voltage_v),
                "current_ma": _finite_or_none(result.current_ma), "window_us": result.window_us,
                "source": result.source.label, "detail": result.detail}

    idle = []
    for _ in range(config.power_readings):
        idle.append(reading())
        time.sleep(0.05)
    loaded = []
    window_runs = max(config.bench_runs, 1)
    for _ in range(config.power_readings):
        client.bench(window_runs, 0)
        loaded.append(reading())
    return {"record": "power", "idle": idle, "loaded": loaded, "window_runs": window_runs,
            "method": "instantaneous device readings: idle, then right after each BENCH window"}


def _finite_or_none(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None
