"""How far below its ceiling does a model's HLC gain sit? Per audiogram, on held-out speech in noise.

Usage: python benchmarks/measure_hlc_ceiling.py [--model model/default_model/checkpoint.json]
       [--utterances 4] [--snrs 0 5] [--seed 11] [--audiograms NH N1 N2 N3 N4 N7 S1 S3]

The HLC head's output is ``hlc_db = hlc_min_db + span_db · p`` with ``p`` a sigmoid and
``span_db`` the per-bin span up to the ceiling (:mod:`hearmask.model.network`). ``p`` near 1
everywhere means the gain is the ceiling rule itself, time- and signal-independent, and the
head's gradient has vanished (why session 7's validation HLC loss stayed flat). Prints the
conditions, then per audiogram: the median and 1st percentile of ``p`` over every frame and
bin, the share of values above 0.99, and the mean distance below the ceiling in dB.

``--loss-fractions F ...`` also prints why: the training HLC loss (L1 between the impaired ear
hearing ``x`` with a fixed gain ``offset + F·HL`` dB per bin, and the normal ear hearing ``x``;
:mod:`hearmask.model.losses`) for each ``F``, on the same noisy inputs. If it keeps falling
past the model's own fraction, the objective pushes the head against its ceiling.
"""

from __future__ import annotations

import argparse
import dataclasses
import platform

import numpy as np
import torch

from hearmask.model.auditory import AuditoryModel, AuditoryModelConfig
from hearmask.model.evaluate import EvaluationConfig, build_held_out_set
from hearmask.model.losses import auditory_distance, delay_signal
from hearmask.model.network import hlc_span_db
from hearmask.model.system_io import load_system
from hearmask.profiles.standard import standard_audiogram


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="model/default_model/checkpoint.json", help="checkpoint or run folder")
    parser.add_argument("--utterances", type=int, default=4)
    parser.add_argument("--snrs", type=float, nargs="+", default=[0.0, 5.0], help="SNRs in dB")
    parser.add_argument("--seed", type=int, default=11, help="held-out set seed (11: the development set)")
    parser.add_argument("--max-seconds", type=float, default=2.0)
    parser.add_argument("--audiograms", nargs="+", default=["NH", "N1", "N2", "N3", "N4", "N7", "S1", "S3"])
    parser.add_argument("--loss-fractions", type=float, nargs="*", default=[],
                        help="ceiling fractions (dB gain per dB HL) to score with the training HLC loss")
    arguments = parser.parse_args()
    torch.set_num_threads(1)

    system, metadata = load_system(arguments.model)
    if system.variant not in ("joint", "hlc"):
        parser.error(f"{arguments.model} is a {system.variant!r} model; it has no HLC head")
    network = system.networks[-1]
    items = build_held_out_set(EvaluationConfig(num_utterances=arguments.utterances, snrs_db=tuple(arguments.snrs),
                                                max_seconds=arguments.max_seconds, seed=arguments.seed))
    print(f"model {arguments.model} (step {metadata.get('progress', {}).get('step')}, "
          f"ceiling {network.config.hlc_ceiling_offset_db:g} dB + {network.config.hlc_ceiling_loss_fraction:g} x HL, "
          f"max {network.config.hlc_max_db:g} dB, min {network.config.hlc_min_db:g} dB)")
    print(f"held-out set: {arguments.utterances} utterances x SNR {arguments.snrs} dB, seed {arguments.seed}, "
          f"{arguments.max_seconds:g} s each; {platform.machine()}, torch {torch.__version__}")
    print(f"{'audiogram':>9} {'median p':>9} {'p1 p':>7} {'p > 0.99':>9} {'below ceiling (dB)':>19} {'median span (dB)':>17}")
    for name in arguments.audiograms:
        audiogram = torch.as_tensor(standard_audiogram(name).model_input(), dtype=torch.float32)[None]
        span_db = network.hlc_span_db(audiogram)  # (1, bins)
        fractions, below_db = [], []
        for item in items:
            with torch.inference_mode():
                _, hlc_db = system.masks_db(system.stft.stft(torch.as_tensor(item.noisy)[None]), audiogram)
            fraction = (hlc_db - network.config.hlc_min_db) / span_db[:, None, :]
            fractions.append(fraction.numpy().ravel())
            below_db.append(((1.0 - fraction) * span_db[:, None, :]).numpy().ravel())
        fraction, below = np.concatenate(fractions), np.concatenate(below_db)
        print(f"{name:>9} {np.median(fraction):9.4f} {np.percentile(fraction, 1):7.4f} {np.mean(fraction > 0.99):9.3f} "
              f"{np.mean(below):19.3f} {float(span_db.median()):17.1f}")
    if arguments.loss_fractions:
        print_hlc_loss_by_fraction(system, network, items, arguments.audiograms, arguments.loss_fractions)


def print_hlc_loss_by_fraction(system, network, items, audiogram_names, fractions) -> None:
    """The training HLC loss with the gain fixed at the ceiling rule for each fraction in ``fractions``."""
    hear = AuditoryModel(AuditoryModelConfig(sample_rate_hz=system.stft_config.sample_rate_hz))
    latency = system.stft_config.algorithmic_latency_samples
    noisy = torch.stack([torch.as_tensor(item.noisy, dtype=torch.float32) for item in items])
    print(f"training HLC loss (L1, lower is better) with hlc_db = {network.config.hlc_ceiling_offset_db:g} dB + "
          f"F x HL (<= {network.config.hlc_max_db:g} dB); the model uses F = {network.config.hlc_ceiling_loss_fraction:g}")
    print(f"{'audiogram':>9} " + " ".join(f"{f'F={fraction:g}':>8}" for fraction in fractions))
    with torch.inference_mode():
        spectrum = system.stft.stft(noisy)
        target = hear(delay_signal(noisy, latency))
        for name in audiogram_names:
            audiogram = standard_audiogram(name)
            loss_db = hear.channel_loss_db(audiogram.frequencies_hz, audiogram.thresholds_db_hl)
            model_input = torch.as_tensor(audiogram.model_input(), dtype=torch.float32)[None]
            losses = []
            for fraction in fractions:
                config = dataclasses.replace(network.config, hlc_ceiling_loss_fraction=fraction)
                gain_db = config.hlc_min_db + hlc_span_db(config, model_input, network.audiogram_to_bin)  # (1, bins)
                compensated = system.synthesize(spectrum, gain_db[:, None, :], noisy.shape[-1])
                heard = hear(compensated, loss_db[None].expand(noisy.shape[0], -1))
                losses.append(float(auditory_distance(heard, target, "l1")))
            print(f"{name:>9} " + " ".join(f"{loss:8.4f}" for loss in losses))


if __name__ == "__main__":
    main()
