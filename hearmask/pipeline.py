"""The main job, end to end on the embedded defaults (``hearmask pipeline``).

Stages:

1. ``sample``: a noisy speech sample — a real recorded utterance from Debian's
   ``pocketsphinx-testdata`` (held-out evaluation speech, never trained on) mixed with
   procedural babble at a chosen SNR.
2. ``nalr``: the NAL-R prescription for a standard listener, applied causally in the
   streaming frame engine.
3. ``model``: the trained network (the shipped default, or ``model_path``) on the same
   sample through its step form, with masks plotted and ESTOI / SI-SDR / HASPI v2 beside
   NAL-R's (:mod:`hearmask.pipeline_model`). Skipped, and said so, when no model exists.
4. ``plot``: the listener's audiogram and the prescribed gain curve.
5. ``quantize``: the shipped int8 model rebuilt from its QAT checkpoint (conversion, checks,
   manifest; byte-compared with the shipped files) into ``OUT_DIR/int8``
   (:mod:`hearmask.pipeline_quantize`). Only with the shipped model (no ``model_path`` or
   ``int8_dir``).
6. ``deploy``: that int8 model (or ``int8_dir``) validated against float, fitted to boards,
   exported as a Raspberry Pi bundle and profiled on an emulated Pi
   (:mod:`hearmask.pipeline_deploy`). Skipped, and said so, when there is no int8 model.
7. ``report``: ``report.json`` and ``report.md`` with every figure and how it was made.

Each stage writes its files into ``OUT_DIR`` and records them in the report.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from hearmask import __version__
from hearmask.model.audio_io import Audio, write_audio
from hearmask.model.baselines.nalr import NalrProcessor
from hearmask.model.data.mixer import mix
from hearmask.model.data.noise import make_noise
from hearmask.model.data.speech import PocketsphinxSpeech
from hearmask.model.default_model import DEFAULT_MODEL_DIR, default_model_checkpoint
from hearmask.model.stft_config import shipped_stft_config
from hearmask.profiles.standard import standard_audiogram


def _snr_db(reference: np.ndarray, estimate: np.ndarray) -> float:
    error = estimate - reference
    return float(10 * np.log10(np.sum(reference**2) / max(np.sum(error**2), 1e-30)))


def _plot_audiogram_and_gain(audiogram, processor: NalrProcessor, path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from hearmask.profiles.plot import plot_audiogram

    figure = Figure(figsize=(10, 4))
    FigureCanvasAgg(figure)
    audiogram_axes, gain_axes = figure.subplots(1, 2)
    plot_audiogram(audiogram, ax=audiogram_axes)
    frequencies_hz = processor.stft_config.bin_frequencies_hz()
    visible = frequencies_hz >= 125
    gain_axes.semilogx(frequencies_hz[visible], processor.gains_db[visible], color="tab:green")
    gain_axes.set(xlabel="frequency (Hz)", ylabel="insertion gain (dB)", title=f"NAL-R gain for {audiogram.name}")
    ticks_hz = [250, 500, 1000, 2000, 4000, 8000]
    gain_axes.set_xticks(ticks_hz, [f"{t} Hz" if t < 1000 else f"{t // 1000} kHz" for t in ticks_hz])
    gain_axes.set_xticks([], minor=True)
    gain_axes.grid(True, alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def run_pipeline(out_dir: str | Path, audiogram_name: str = "N3", snr_db: float = 5.0, seed: int = 0,
                 stft_name: str = "default", model_path: str | Path | None = None,
                 int8_dir: str | Path | None = None, deploy: bool = True,
                 audio_utterances: int | None = None) -> dict:
    """Run every stage into ``out_dir``; return the report (also written as JSON and Markdown).

    ``model_path``: a RUN_DIR or checkpoint for the model stage; default: the shipped model.
    ``int8_dir``: a ``hearmask quantize`` folder for the deploy stages; default: the shipped
    model's, when neither ``model_path`` nor ``int8_dir`` is given. ``deploy=False`` skips them.
    ``audio_utterances``: mixtures of the validate stage's audio check (None: ``hearmask validate``'s default).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    stft_config = shipped_stft_config(stft_name)
    sample_rate_hz = stft_config.sample_rate_hz
    rng = np.random.default_rng(seed)

    # 1. sample: real held-out speech + procedural babble.
    speech_source = PocketsphinxSpeech()
    utterance_ids = speech_source.utterance_ids()
    utterance_id = utterance_ids[int(rng.integers(len(utterance_ids)))]
    speech = speech_source.load(utterance_id)
    noise = make_noise("babble", len(speech), sample_rate_hz, rng)
    mixture = mix(speech, noise, snr_db, level_dbfs=-30.0)
    write_audio(out_dir / "clean.wav", Audio(mixture.clean[:, None], sample_rate_hz))
    write_audio(out_dir / "noisy.wav", Audio(mixture.noisy[:, None], sample_rate_hz))

    # 2. nalr: compensation for the listener in the streaming frame engine.
    audiogram = standard_audiogram(audiogram_name)
    processor = NalrProcessor(audiogram, stft_config)
    compensated = processor.process(mixture.noisy.astype(np.float64)).astype(np.float32)
    write_audio(out_dir / "nalr.wav", Audio(compensated[:, None], sample_rate_hz))
    delay = stft_config.algorithmic_latency_samples
    bands_hz = [250, 500, 1000, 2000, 4000, 6000]
    gains_at_bands = np.interp(bands_hz, stft_config.bin_frequencies_hz(), processor.gains_db)

    # 3. model: the network on the same sample (scored with NAL-R aligned to the clean speech).
    model_checkpoint = Path(model_path) if model_path is not None else default_model_checkpoint()
    model_report, model_files = None, ()
    if model_checkpoint is not None:
        from hearmask.pipeline_model import run_model_stage

        padded = np.concatenate([mixture.noisy, np.zeros(delay, dtype=mixture.noisy.dtype)]).astype(np.float64)
        nalr_aligned = NalrProcessor(audiogram, stft_config).process(padded)[delay:]
        model_report = run_model_stage(model_checkpoint, audiogram, mixture.clean.astype(np.float64),
                                       mixture.noisy.astype(np.float64), nalr_aligned, out_dir)
        model_files = ("model.wav", "model_nr_only.wav", "masks.png")

    # 4. plot.
    _plot_audiogram_and_gain(audiogram, processor, out_dir / "audiogram_gain.png")

    # 5. quantize: the shipped int8 model rebuilt from its QAT checkpoint.
    quantize_report = None
    if int8_dir is None and model_path is None and (DEFAULT_MODEL_DIR / "qat_checkpoint.json").is_file() and deploy:
        from hearmask.pipeline_quantize import run_quantize_stage

        quantize_report = run_quantize_stage(DEFAULT_MODEL_DIR, out_dir / "int8")
        int8_dir = out_dir / "int8"

    # 6. deploy: validate -> fit -> export -> profile (emulated Pi).
    if int8_dir is None and model_path is None and (DEFAULT_MODEL_DIR / "model_int8.tflite").is_file():
        int8_dir = DEFAULT_MODEL_DIR
    deploy_report = None
    if int8_dir is not None and deploy:
        from hearmask.pipeline_deploy import run_deploy_stages

        deploy_report = run_deploy_stages(Path(int8_dir), out_dir, audiogram_name, audio_utterances=audio_utterances)

    report = {
        "hearmask_version": __version__,
        "stages": ["sample", "nalr", *(["model"] if model_report else []), "plot",
                   *(["quantize"] if quantize_report else []),
                   *(["validate", "fit", "export", "profile", "cortex-m55"] if deploy_report else []), "report"],
        "sample": {
            "speech": f"pocketsphinx-testdata:{utterance_id}",
            "noise": "babble (procedural)",
            "snr_db": round(mixture.snr_db, 2),
            "level_dbfs": round(mixture.level_dbfs, 2),
            "duration_s": round(len(speech) / sample_rate_hz, 3),
            "seed": seed,
        },
        "listener": audiogram.to_json_dict(),
        "stft": {**stft_config.to_dict(), "algorithmic_latency_ms": stft_config.algorithmic_latency_ms},
        "nalr": {
            "gain_db_at_hz": {str(f): round(float(g), 2) for f, g in zip(bands_hz, gains_at_bands)},
            "output_peak_dbfs": round(float(20 * np.log10(np.max(np.abs(compensated)) + 1e-12)), 2),
            "latency_samples": delay,
        },
        "model": model_report or {"skipped": f"no model given and none shipped in {DEFAULT_MODEL_DIR}"},
        "quantize": quantize_report or {"skipped": "not the shipped model, or no deploy stages, or no shipped QAT "
                                                   "checkpoint"},
        "deploy": deploy_report or {"skipped": "not asked for (--skip-deploy)" if not deploy else
                                    "no int8 model: give --int8-dir (a `hearmask quantize` folder) "
                                    "or run without --model to use the shipped one"},
        "files": {name: str(out_dir / name) for name in
                  ("clean.wav", "noisy.wav", "nalr.wav", *model_files, "audiogram_gain.png", "report.json",
                   "report.md")},
        "labels": {"nalr.gain_db_at_hz": "prescription (NAL-R formula), not a measurement"},
        "elapsed_s": round(time.perf_counter() - started, 2),
    }
    (out_dir / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    (out_dir / "report.md").write_text(_markdown(report))
    return report


def _markdown(report: dict) -> str:
    sample, nalr, stft = report["sample"], report["nalr"], report["stft"]
    gains = " | ".join(f"{g:+.1f}" for g in nalr["gain_db_at_hz"].values())
    return "\n".join([
        f"# hearmask pipeline report (hearmask {report['hearmask_version']})",
        "",
        f"- Sample: {sample['speech']} + {sample['noise']} at {sample['snr_db']} dB SNR, "
        f"{sample['level_dbfs']} dBFS, {sample['duration_s']} s (seed {sample['seed']}).",
        f"- Listener: {report['listener']['name']}.",
        f"- STFT: {stft['analysis_window_samples']}/{stft['synthesis_window_samples']}-sample analysis/synthesis "
        f"windows, hop {stft['hop_samples']}; algorithmic latency {stft['algorithmic_latency_ms']} ms.",
        "",
        "## NAL-R gain (prescription)",
        "",
        "| " + " | ".join(f"{f} Hz" for f in nalr["gain_db_at_hz"]) + " |",
        "|" + "---|" * len(nalr["gain_db_at_hz"]),
        f"| {gains} |",
        "",
        f"Output peak {nalr['output_peak_dbfs']} dBFS (written as 32-bit float, never clipped).",
        "",
        *_model_markdown(report["model"]),
        *_quantize_markdown(report["quantize"]),
        *_deploy_markdown(report["deploy"]),
        "## Files",
        "",
        *[f"- `{name}`: {path}" for name, path in report["files"].items()],
        "",
    ])


def _model_markdown(model: dict) -> list[str]:
    if "skipped" in model:
        return ["## Model", "", f"Skipped: {model['skipped']}.", ""]
    nr, haspi = model["noise_reduction"], model["haspi_v2"]
    return [
        f"## Model ({model['variant']}, {model['parameters']:,} parameters)",
        "",
        f"`{model['model']}`, step form hop by hop. {model['labels']['metrics']}.",
        "",
        "| | Unprocessed | NAL-R | Model |",
        "|---|---:|---:|---:|",
        f"| ESTOI (NR only) | {nr['estoi']['unprocessed']:.3f} | – | {nr['estoi']['model']:.3f} |",
        f"| SI-SDR (dB, NR only) | {nr['si_sdr_db']['unprocessed']:.1f} | – | {nr['si_sdr_db']['model']:.1f} |",
        f"| HASPI v2 | {haspi['unprocessed']:.3f} | {haspi['nalr']:.3f} | {haspi['model']:.3f} |",
        "",
        "Masks over time: `masks.png`.",
        "",
    ]


def _quantize_markdown(quantize: dict) -> list[str]:
    if "skipped" in quantize:
        return ["## int8 model (quantize)", "", f"Skipped: {quantize['skipped']}.", ""]
    same = all(quantize["reproduces_shipped"].values())
    return [
        "## int8 model (quantize)",
        "",
        f"Rebuilt in `{quantize['dir']}` from the shipped QAT checkpoint ({quantize['labels']['qat']}): "
        f"{quantize['int8_model_bytes'][0]:,} bytes, TFLM arena {quantize['tflm_arena_bytes'][0]:,} bytes (measured); "
        f"ops {', '.join(quantize['ops'])}. "
        + ("Every file equals the shipped one byte for byte." if same else
           "DIFFERS from the shipped files: " + ", ".join(name for name, ok in quantize["reproduces_shipped"].items()
                                                         if not ok) + "."),
        "",
    ]


def _deploy_markdown(deploy: dict) -> list[str]:
    if "skipped" in deploy:
        return ["## int8 model on devices", "", f"Skipped: {deploy['skipped']}.", ""]
    validation, profile = deploy["validation"], deploy["profile"]
    snr = ", ".join(f"{stage} {value:.1f} dB" for stage, value in validation["snr_db_per_step"].items()
                    if value is not None)
    deltas = ", ".join(f"{metric} {value:+.3f}" for metric, value in validation["audio_deltas"].items()
                       if value is not None)
    latency = profile.get("latency_us") or {}
    check = profile.get("validation") or {}
    return [
        "## int8 model on devices",
        "",
        f"- Validation ({'passed' if validation['passed'] else 'FAILED'}; thresholds apply "
        f"{str(validation['thresholds_apply_to']).replace('_', ' ')}): lowest SNR vs fake-quant in each runtime's "
        f"arithmetic {snr}; audio int8 − float over {validation.get('audio_utterances')} mixtures: {deltas}. "
        f"Details: `{validation['report']}`.",
        "- Fit: " + "; ".join(f"{name}: {entry['verdict']}" for name, entry in deploy["fit"].items())
        + " (compute figures are estimates).",
        f"- Raspberry Pi bundle: `{deploy['export']['bundle']}`.",
        f"- Profile on an **emulated** Raspberry Pi ({profile['device'].get('name')}): inference median "
        f"{latency.get('median', float('nan')):.0f} µs, p99 {latency.get('p99', float('nan')):.0f} µs per hop; "
        f"device output vs host golden: bit-exact {check.get('bit_exact')} over {check.get('frames')} hops. "
        f"Details: `{profile['report']}`.",
        _cortex_m55_line(deploy["cortex_m55"]),
        "",
    ]


def _cortex_m55_line(m55: dict) -> str:
    if "skipped" in m55:
        return f"- Cortex-M55 in QEMU: skipped ({m55['skipped']})."
    counts, check = m55.get("instructions_per_hop") or {}, m55.get("validation") or {}
    return (f"- Cortex-M55 in QEMU (generated C): {counts.get('median')} instructions per hop (median; "
            f"{m55['label']}); output vs TFLM host interpreter: bit-exact {check.get('bit_exact')} over "
            f"{check.get('frames')} hops. Details: `{m55['report']}`.")
