"""The live hearing-aid pipeline for one hop, on the int8 model (numpy + LiteRT only: runs on a Pi).

Per hop of ``R`` samples at the model rate (DESIGN.md "Signal chain")::

    hop -> StreamingStft.analyze_hop -> BandFeatures -> int8 step (LiteRT, explicit state)
        -> nr_fraction, hlc_fraction -> dB (the manifest's "output_db" rule)
        -> gain_db = alpha·nr_db + beta·hlc_db, capped at max_gain_db
        -> synthesize_hop -> OutputLimiter -> hop out (delayed by N_s − R samples)

The dB map is :func:`hearmask.model.network.mask_db_from_fractions` with
:func:`hearmask.model.network.hlc_span_db`, computed here from the manifest (rule + the
audiogram -> bin matrix) because device code has no torch; a test checks they agree.

Listener controls (:meth:`LiveProcessor.set_strengths`, :meth:`LiveProcessor.set_audiogram`,
:meth:`LiveProcessor.apply_settings` for the serial protocol's SET messages) may be called
from any thread. The audio thread picks the new target up at the next hop and ramps
alpha, beta and every audiogram threshold linearly from their current values to the
target over ``ramp_hops`` hops, so a change never switches the gain in one step (no
click). For fixed masks the applied gain in dB then changes by exactly
``(Δalpha·nr_db + Δbeta·hlc_db) / ramp_hops`` per hop.

Variants (manifest ``variant``): ``joint`` uses both outputs, ``nr`` only the NR mask,
``hlc`` only the HLC gain, ``cascade`` runs the NR stage, then the HLC stage on the
features of the NR-masked spectrum (as :class:`hearmask.model.streaming.StreamingEnhancer`).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hearmask.errors import HearmaskError
from hearmask.firmware_bridge.live_limiter import LimiterConfig, OutputLimiter
from hearmask.firmware_bridge.runtime import InferenceRuntime
from hearmask.model.features import BandFeatures, FeatureConfig
from hearmask.model.gains import combine_gains_db, validate_strength
from hearmask.model.stft_config import StftConfig
from hearmask.model.stft_stream import StreamingStft
from hearmask.quantize.quant_spec import QuantSpec

AUDIOGRAM_POINTS = 8  # thresholds at 250, 500, 1k, 2k, 3k, 4k, 6k, 8k Hz (the model's audiogram input)
AUDIOGRAM_INPUT_SCALE_DB = 100.0  # the network's audiogram input is dB HL / 100
DEFAULT_RAMP_HOPS = 8  # 32 ms at the default hop of 4 ms
MIN_THRESHOLD_DB_HL, MAX_THRESHOLD_DB_HL = -10.0, 120.0
MAX_EXAGGERATED_STRENGTH = 4.0  # the protocol's limit (PROTOCOL.md SET_STRENGTHS)

# The manifest contract of hearmask.quantize.manifest (not imported: that module imports torch).
MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = "hearmask-model-manifest"
MANIFEST_VERSION = 1

RuntimeFactory = Callable[[Path], InferenceRuntime]


@dataclass(frozen=True)
class ListenerTarget:
    """What the listener asked for last: strengths and audiogram (8 thresholds, dB HL)."""

    alpha: float
    beta: float
    audiogram_db_hl: tuple[float, ...]


@dataclass
class HopTrace:
    """What the last hop applied (for tests, meters and the accounting)."""

    alpha: float = 0.0
    beta: float = 0.0
    audiogram_db_hl: np.ndarray | None = None
    nr_db: np.ndarray | None = None  # (num_bins,)
    hlc_db: np.ndarray | None = None  # (num_bins,)
    gain_db: np.ndarray | None = None  # applied, after the cap, (num_bins,)
    requested_gain_db: np.ndarray | None = None  # before the cap
    limiter_gain: float = 1.0


def validate_audiogram_db_hl(thresholds_db_hl: Sequence[float]) -> tuple[float, ...]:
    """8 finite thresholds in [-10, 120] dB HL, else :class:`HearmaskError`."""
    try:
        values = tuple(float(v) for v in thresholds_db_hl)
    except (TypeError, ValueError):
        raise HearmaskError(f"an audiogram must be {AUDIOGRAM_POINTS} numbers in dB HL, got {thresholds_db_hl!r}") from None
    if len(values) != AUDIOGRAM_POINTS or not all(np.isfinite(values)):
        raise HearmaskError(f"an audiogram must be {AUDIOGRAM_POINTS} finite thresholds in dB HL at 250, 500, 1k, 2k, "
                            f"3k, 4k, 6k, 8k Hz, got {thresholds_db_hl!r}")
    for value in values:
        if not MIN_THRESHOLD_DB_HL <= value <= MAX_THRESHOLD_DB_HL:
            raise HearmaskError(f"audiogram threshold {value} dB HL is outside the accepted "
                                f"{MIN_THRESHOLD_DB_HL:g}..{MAX_THRESHOLD_DB_HL:g} dB HL")
    return values


class MaskDbMap:
    """The manifest's ``output_db`` rule: sigmoid fractions -> ``nr_db``, ``hlc_db`` per bin (numpy)."""

    def __init__(self, output_db: dict):
        try:
            nr, hlc = output_db["nr_fraction"], output_db["hlc_fraction"]
            self.nr_offset_db, self.nr_span_db = float(nr["db_offset"]), float(nr["db_span"])
            self.hlc_offset_db, self.hlc_max_db = float(hlc["db_offset"]), float(hlc["max_db"])
            self.ceiling_offset_db = float(hlc["ceiling_offset_db"])
            self.ceiling_loss_fraction = float(hlc["ceiling_loss_fraction"])
            self.loss_to_bin = np.asarray(hlc["loss_to_bin"], dtype=np.float64)  # (num_bins, 8)
        except (KeyError, TypeError, ValueError) as error:
            raise HearmaskError(f"the manifest's output_db entry is incomplete or malformed ({error!r}); "
                                "re-run hearmask quantize") from None
        if self.loss_to_bin.ndim != 2 or self.loss_to_bin.shape[1] != AUDIOGRAM_POINTS:
            raise HearmaskError(f"output_db loss_to_bin must be (num_bins, {AUDIOGRAM_POINTS}), got {self.loss_to_bin.shape}")
        self._span_key: bytes | None = None
        self._span_db: np.ndarray | None = None

    def hlc_span_db(self, audiogram_db_hl: np.ndarray) -> np.ndarray:
        """Per-bin HLC span ``ceiling_db − db_offset`` (num_bins,), as :func:`hearmask.model.network.hlc_span_db`.

        Cached for the last audiogram: it only changes while an audiogram change ramps in.
        """
        key = np.asarray(audiogram_db_hl, dtype=np.float64).tobytes()
        if key != self._span_key:
            self._span_key, self._span_db = key, self._compute_span_db(audiogram_db_hl)
        return self._span_db

    def _compute_span_db(self, audiogram_db_hl: np.ndarray) -> np.ndarray:
        loss_db = self.loss_to_bin @ np.maximum(np.asarray(audiogram_db_hl, dtype=np.float64), 0.0)
        ceiling_db = np.minimum(self.ceiling_offset_db + self.ceiling_loss_fraction * loss_db, self.hlc_max_db)
        return ceiling_db - self.hlc_offset_db

    def nr_db(self, nr_fraction: np.ndarray) -> np.ndarray:
        return self.nr_offset_db + self.nr_span_db * nr_fraction

    def hlc_db(self, hlc_fraction: np.ndarray, span_db: np.ndarray) -> np.ndarray:
        return self.hlc_offset_db + span_db * hlc_fraction


class Int8StepModel:
    """One network of the manifest in an :class:`InferenceRuntime`: float features in, fractions out, int8 state kept."""

    def __init__(self, runtime: InferenceRuntime, entry: dict):
        self.runtime = runtime
        self.role = entry.get("role", "joint")
        self.uses = tuple(entry.get("uses") or ("nr_fraction", "hlc_fraction"))
        self.db_map = MaskDbMap(entry["output_db"])
        specs = {spec.name: spec for spec in runtime.input_specs}
        outputs = {spec.name: spec for spec in runtime.output_specs}
        needed_in, needed_out = {"features", "audiogram", "state"}, {"nr_fraction", "hlc_fraction", "new_state"}
        if not needed_in <= set(specs) or not needed_out <= set(outputs):
            raise HearmaskError(f"model inputs {sorted(specs)} / outputs {sorted(outputs)} are not the hearmask step "
                                f"model's (inputs {sorted(needed_in)}, outputs {sorted(needed_out)})")
        for name, spec in {**specs, **outputs}.items():
            if np.dtype(spec.dtype) != np.int8:
                raise HearmaskError(f"tensor {name!r} is {np.dtype(spec.dtype)}; the live loop runs the int8 model")
        self._features_spec = QuantSpec(specs["features"].scale, specs["features"].zero_point)
        self._audiogram_spec = QuantSpec(specs["audiogram"].scale, specs["audiogram"].zero_point)
        self._nr_spec = QuantSpec(outputs["nr_fraction"].scale, outputs["nr_fraction"].zero_point)
        self._hlc_spec = QuantSpec(outputs["hlc_fraction"].scale, outputs["hlc_fraction"].zero_point)
        self._features_shape = specs["features"].shape
        self._audiogram_shape = specs["audiogram"].shape
        state, new_state = specs["state"], outputs["new_state"]
        # hearmask exports share one quantization for both (quant_spec: the tanh parameters), so the
        # codes are fed back unchanged; anything else is requantized.
        self._state_passthrough = (state.scale, state.zero_point) == (new_state.scale, new_state.zero_point)
        self._state_spec = QuantSpec(state.scale, state.zero_point)
        self._new_state_spec = QuantSpec(new_state.scale, new_state.zero_point)
        self._state_shape = state.shape
        self.state_codes = np.full(state.shape, self._state_spec.quantize(np.zeros(1))[0], np.int8)
        self._initial_state = self.state_codes.copy()
        self._audiogram_codes = np.zeros(self._audiogram_shape, np.int8)
        self._audiogram_key: bytes | None = None

    def reset(self) -> None:
        self.state_codes = self._initial_state.copy()

    def step(self, features: np.ndarray, audiogram_db_hl: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``features`` (num_bands,), audiogram (8,) dB HL -> ``nr_fraction``, ``hlc_fraction`` (num_bins,) float."""
        key = audiogram_db_hl.tobytes()
        if key != self._audiogram_key:  # quantize the audiogram only when it changes
            self._audiogram_codes = self._audiogram_spec.quantize(
                (audiogram_db_hl / AUDIOGRAM_INPUT_SCALE_DB).reshape(self._audiogram_shape))
            self._audiogram_key = key
        inputs = {"features": self._features_spec.quantize(features.reshape(self._features_shape)),
                  "audiogram": self._audiogram_codes, "state": self.state_codes}
        self.runtime.set_inputs(inputs)
        self.runtime.invoke()
        outputs = self.runtime.get_outputs()
        new_state = outputs["new_state"]
        if self._state_passthrough:
            self.state_codes = new_state.astype(np.int8, copy=False).reshape(self._state_shape)
        else:
            self.state_codes = self._state_spec.quantize(self._new_state_spec.dequantize(new_state)).reshape(self._state_shape)
        return (self._nr_spec.dequantize(outputs["nr_fraction"]).reshape(-1),
                self._hlc_spec.dequantize(outputs["hlc_fraction"]).reshape(-1))


def default_runtime_factory(reference_kernels: bool = False, threads: int = 1) -> RuntimeFactory:
    def factory(path: Path) -> InferenceRuntime:
        from hearmask.firmware_bridge.errors import BridgeError
        from hearmask.firmware_bridge.runtime import LiteRTRuntime

        try:
            return LiteRTRuntime(path, num_threads=threads, reference_kernels=reference_kernels)
        except BridgeError as error:
            raise HearmaskError(str(error)) from None

    return factory


def read_model_manifest(model_dir: str | Path) -> dict:
    """``manifest.json`` of a ``hearmask quantize`` folder or bundle, with the checks the live loop needs.

    Read here rather than with :func:`hearmask.quantize.manifest.read_manifest`, whose module
    imports the network (torch) for the writer side; the format checks are the same.
    """
    path = Path(model_dir)
    path = path / MANIFEST_NAME if path.is_dir() else path
    if not path.is_file():
        raise HearmaskError(f"no model manifest at {str(path)!r}; give the folder written by hearmask quantize "
                            "(or a Raspberry Pi bundle)")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise HearmaskError(f"manifest {str(path)!r} is not readable JSON: {error}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        raise HearmaskError(f"{str(path)!r} is not a hearmask model manifest (expected \"format\": \"{MANIFEST_FORMAT}\")")
    if manifest.get("version") != MANIFEST_VERSION:
        raise HearmaskError(f"manifest {str(path)!r} has version {manifest.get('version')!r}; the live loop reads "
                            f"version {MANIFEST_VERSION}")
    networks = manifest.get("networks")
    if not isinstance(networks, list) or not 1 <= len(networks) <= 2:
        raise HearmaskError(f"manifest in {str(model_dir)!r} lists {networks!r} networks; expected 1 (joint, nr, hlc) "
                            "or 2 (cascade)")
    return manifest


class LiveProcessor:
    """Stateful per-hop int8 pipeline with listener controls, a gain cap and an output limiter.

    Args:
        manifest: the model manifest (:func:`read_model_manifest`).
        runtimes: one :class:`InferenceRuntime` per manifest network, in order.
        audiogram_db_hl: 8 thresholds (dB HL) at 250, 500, 1k, 2k, 3k, 4k, 6k, 8k Hz.
        alpha, beta: NR and HLC strengths; in [0, 1], up to 4 with ``allow_exaggeration``.
        limiter: output ceiling and gain cap (:class:`LimiterConfig`, on by default).
        ramp_hops: hops over which a control change ramps linearly (>= 1; 1 = next hop).
    """

    def __init__(self, manifest: dict, runtimes: Sequence[InferenceRuntime], audiogram_db_hl: Sequence[float],
                 alpha: float = 1.0, beta: float = 1.0, *, allow_exaggeration: bool = False,
                 limiter: LimiterConfig = LimiterConfig(), ramp_hops: int = DEFAULT_RAMP_HOPS):
        if isinstance(ramp_hops, bool) or not isinstance(ramp_hops, int) or ramp_hops < 1:
            raise HearmaskError(f"ramp_hops must be an integer >= 1, got {ramp_hops!r}")
        networks = manifest["networks"]
        if len(runtimes) != len(networks):
            raise HearmaskError(f"{len(runtimes)} runtimes for a manifest with {len(networks)} networks")
        self.manifest = manifest
        self.variant = manifest.get("variant", "joint")
        self.stft_config = StftConfig.from_dict(manifest["stft"])
        self.feature_config = FeatureConfig.from_dict(manifest["features"])
        self.stft = StreamingStft(self.stft_config)
        self.features = BandFeatures(self.stft_config, self.feature_config)
        self.models = [Int8StepModel(runtime, entry) for runtime, entry in zip(runtimes, networks)]
        num_bins = self.stft_config.num_bins
        for model in self.models:
            if model.db_map.loss_to_bin.shape[0] != num_bins:
                raise HearmaskError(f"the model's output_db has {model.db_map.loss_to_bin.shape[0]} bins, the STFT "
                                    f"{num_bins}: inconsistent manifest")
        self.allow_exaggeration = allow_exaggeration
        self.limiter_config = limiter
        self.limiter = OutputLimiter(limiter, self.stft_config.sample_rate_hz)
        self.ramp_hops = ramp_hops
        target = self._checked_target(alpha, beta, audiogram_db_hl)
        self._lock = threading.Lock()
        self._target = target
        self._target_generation = 0
        self._applied_generation = 0
        self._current = np.array([target.alpha, target.beta, *target.audiogram_db_hl], dtype=np.float64)
        self._ramp_from = self._current.copy()
        self._ramp_to = self._current.copy()
        self._ramp_position = ramp_hops
        self.trace = HopTrace()
        self.hops_processed = 0
        self._last_stream_settings = None

    @classmethod
    def from_model_dir(cls, model_dir: str | Path, audiogram_db_hl: Sequence[float], alpha: float = 1.0,
                       beta: float = 1.0, *, runtime_factory: RuntimeFactory | None = None, **options) -> "LiveProcessor":
        """Load ``model_dir`` (``hearmask quantize`` output or a Pi bundle) with LiteRT (optimised kernels)."""
        model_dir = Path(model_dir)
        manifest = read_model_manifest(model_dir)
        factory = runtime_factory or default_runtime_factory()
        runtimes = []
        for entry in manifest["networks"]:
            path = model_dir / entry["files"]["int8_tflite"]
            if not path.is_file():
                raise HearmaskError(f"the manifest names {str(path)!r}, which does not exist; give the folder written by "
                                    "hearmask quantize (or a bundle)")
            runtimes.append(factory(path))
        return cls(manifest, runtimes, audiogram_db_hl, alpha, beta, **options)

    # ------------------------------------------------------------------ facts

    @property
    def hop_samples(self) -> int:
        return self.stft_config.hop_samples

    @property
    def sample_rate_hz(self) -> int:
        return self.stft_config.sample_rate_hz

    @property
    def hop_delay_samples(self) -> int:
        """Delay of :meth:`process_hop`'s output behind its input hop, ``N_s − R`` samples."""
        return self.stft_config.synthesis_window_samples - self.stft_config.hop_samples

    @property
    def target(self) -> ListenerTarget:
        return self._target

    # ------------------------------------------------------------------ controls (any thread)

    def _checked_target(self, alpha: float, beta: float, audiogram_db_hl: Sequence[float]) -> ListenerTarget:
        alpha = validate_strength("alpha (NR strength)", alpha, self.allow_exaggeration)
        beta = validate_strength("beta (HLC strength)", beta, self.allow_exaggeration)
        for name, value in (("alpha", alpha), ("beta", beta)):
            if value > MAX_EXAGGERATED_STRENGTH:
                raise HearmaskError(f"strength {name} = {value} is above {MAX_EXAGGERATED_STRENGTH:g}, the most accepted")
        return ListenerTarget(alpha, beta, validate_audiogram_db_hl(audiogram_db_hl))

    def _set_target(self, target: ListenerTarget) -> None:
        with self._lock:
            self._target = target
            self._target_generation += 1

    def set_strengths(self, alpha: float, beta: float) -> None:
        """New NR/HLC strengths; ramped in from the next hop."""
        with self._lock:
            audiogram = self._target.audiogram_db_hl
        self._set_target(self._checked_target(alpha, beta, audiogram))

    def set_audiogram(self, audiogram_db_hl: Sequence[float]) -> None:
        """New audiogram (8 thresholds, dB HL); every threshold is ramped in from the next hop."""
        with self._lock:
            alpha, beta = self._target.alpha, self._target.beta
        self._set_target(self._checked_target(alpha, beta, audiogram_db_hl))

    def apply_settings(self, settings) -> None:
        """A :class:`hearmask.firmware_bridge.plugins.ListenerSettings` from the serial protocol (SET_*, RESET).

        ``audiogram_db_hl=None`` (no SET_AUDIOGRAM yet, or after RESET) keeps the current audiogram.
        """
        audiogram = settings.audiogram_db_hl if settings.audiogram_db_hl is not None else self._target.audiogram_db_hl
        self._set_target(self._checked_target(settings.alpha, settings.beta, audiogram))

    def reset(self) -> None:
        """Forget the streaming state (STFT, recurrent state, limiter); the controls stay."""
        self.stft.reset()
        for model in self.models:
            model.reset()
        self.limiter.reset()

    # ------------------------------------------------------------------ audio thread

    def _advance_controls(self) -> np.ndarray:
        """This hop's [alpha, beta, 8 thresholds]: a linear step towards the latest target."""
        if self._target_generation != self._applied_generation:
            with self._lock:
                target, self._applied_generation = self._target, self._target_generation
            self._ramp_from = self._current.copy()
            self._ramp_to = np.array([target.alpha, target.beta, *target.audiogram_db_hl], dtype=np.float64)
            self._ramp_position = 0
        if self._ramp_position < self.ramp_hops:
            self._ramp_position += 1
            fraction = self._ramp_position / self.ramp_hops
            self._current = self._ramp_from + (self._ramp_to - self._ramp_from) * fraction
        return self._current

    def masks_db(self, spectrum: np.ndarray, audiogram_db_hl: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One frame's spectrum (num_bins,) -> ``nr_db``, ``hlc_db`` (num_bins,); advances the model state."""
        first = self.models[0]
        nr_fraction, hlc_fraction = first.step(self.features(spectrum), audiogram_db_hl)
        db_map = first.db_map
        nr_db = db_map.nr_db(nr_fraction)
        hlc_db = db_map.hlc_db(hlc_fraction, db_map.hlc_span_db(audiogram_db_hl))
        if self.variant == "cascade":
            second = self.models[1]
            denoised = spectrum * 10.0 ** (nr_db / 20.0)
            _, hlc_fraction = second.step(self.features(denoised), audiogram_db_hl)
            hlc_db = second.db_map.hlc_db(hlc_fraction, second.db_map.hlc_span_db(audiogram_db_hl))
        elif self.variant == "nr":
            hlc_db = np.zeros_like(hlc_db)
        elif self.variant == "hlc":
            nr_db = np.zeros_like(nr_db)
        return nr_db, hlc_db

    def process_hop(self, hop: np.ndarray, settings=None) -> np.ndarray:
        """``R`` samples at the model rate in [-1, 1] -> ``R`` processed samples (float32), delayed by ``N_s − R``.

        ``settings`` (optional): a ListenerSettings, as the agent's STREAM passes with every hop
        (:mod:`hearmask.firmware_bridge.agent_stream`); applied (ramped in) when it changes.
        """
        if settings is not None and settings != self._last_stream_settings:
            self._last_stream_settings = settings
            self.apply_settings(settings)
        controls = self._advance_controls()
        alpha, beta, audiogram_db_hl = controls[0], controls[1], controls[2:]
        spectrum = self.stft.analyze_hop(hop)
        nr_db, hlc_db = self.masks_db(spectrum, audiogram_db_hl)
        requested_db = combine_gains_db(nr_db, hlc_db, alpha, beta, allow_exaggeration=True)
        gain_db = np.minimum(requested_db, self.limiter_config.max_gain_db) if self.limiter_config.enabled else requested_db
        output = self.limiter.process(self.stft.synthesize_hop(spectrum * 10.0 ** (gain_db / 20.0)))
        trace = self.trace
        trace.alpha, trace.beta, trace.audiogram_db_hl = float(alpha), float(beta), audiogram_db_hl
        trace.nr_db, trace.hlc_db, trace.gain_db, trace.requested_gain_db = nr_db, hlc_db, gain_db, requested_db
        trace.limiter_gain = self.limiter.gain
        self.hops_processed += 1
        return output

    def process_signal(self, signal: np.ndarray, on_hop: Callable[[int, "LiveProcessor"], None] | None = None) -> np.ndarray:
        """Offline: a mono signal ``(T,)`` at the model rate through consecutive :meth:`process_hop` calls.

        Returns float32 ``(T,)``: exactly what the live loop plays for this input when a block
        is one hop (delayed by :attr:`hop_delay_samples`; the tail is zero-padded to whole hops).
        ``on_hop(index, self)`` runs before each hop (tests change controls there).
        """
        signal = np.asarray(signal, dtype=np.float32)
        if signal.ndim != 1:
            raise HearmaskError(f"process_signal takes a mono signal of shape (T,), got {signal.shape}")
        hop_samples = self.hop_samples
        hops = -(-len(signal) // hop_samples)
        padded = np.zeros(hops * hop_samples, np.float32)
        padded[: len(signal)] = signal
        output = np.empty_like(padded)
        for index in range(hops):
            if on_hop is not None:
                on_hop(index, self)
            output[index * hop_samples:(index + 1) * hop_samples] = self.process_hop(
                padded[index * hop_samples:(index + 1) * hop_samples])
        return output[: len(signal)]

