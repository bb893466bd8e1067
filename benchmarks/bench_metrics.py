"""Cost of each evaluation metric per call, and what it means for ``hearmask evaluate``.

Usage: python benchmarks/bench_metrics.py [--seconds 3] [--repeats 3] [--audiogram N3]

Scores real speech (pocketsphinx-testdata, cut to ``--seconds``) in pink noise at 5 dB SNR.
Reports, per metric, the median wall time and CPU time per call over ``--repeats`` calls
after one untimed warm-up call (pyclarity compiles/caches on first use), and the CPU
seconds per second of audio. Wall time exceeds CPU time when other processes share the
cores; CPU time is the figure to size a run with. Finally it estimates the default
evaluation's CPU time for two models (joint + cascade) from the per-second costs.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import numpy as np

from hearmask.model import metrics
from hearmask.model.data.mixer import mix
from hearmask.model.data.noise import make_noise
from hearmask.model.data.speech import PocketsphinxSpeech
from hearmask.profiles.io import load_audiogram

SAMPLE_RATE_HZ = 16000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="length of the scored signal")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--audiogram", default="N3")
    args = parser.parse_args()

    source = PocketsphinxSpeech()
    clip = next(source.load(i) for i in source.utterance_ids() if "librivox" in i and source.load(i).size
                >= args.seconds * SAMPLE_RATE_HZ)[: int(args.seconds * SAMPLE_RATE_HZ)]
    noise = make_noise("pink", clip.size, SAMPLE_RATE_HZ, np.random.default_rng(0))
    mixture = mix(clip, noise, 5.0, -35.0)
    clean, noisy = mixture.clean.astype(np.float64), mixture.noisy.astype(np.float64)
    listener = load_audiogram(args.audiogram)
    calls = {
        "pesq": lambda: metrics.pesq_wb(clean, noisy),
        "estoi": lambda: metrics.estoi(clean, noisy, SAMPLE_RATE_HZ),
        "si_sdr": lambda: metrics.si_sdr_db(clean, noisy),
        "haspi": lambda: metrics.haspi_v2(clean, noisy, SAMPLE_RATE_HZ, listener),
        "hasqi": lambda: metrics.hasqi_v2(clean, noisy, SAMPLE_RATE_HZ, listener),
    }
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.2f}; {args.seconds:g} s of speech, audiogram {args.audiogram}, "
          f"median of {args.repeats} calls after 1 warm-up")
    cpu_per_audio_s = {}
    for name, call in calls.items():
        call()
        walls, cpus = [], []
        for _ in range(args.repeats):
            wall, cpu = time.perf_counter(), time.process_time()
            value = call()
            walls.append(time.perf_counter() - wall)
            cpus.append(time.process_time() - cpu)
        cpu_per_audio_s[name] = statistics.median(cpus) / args.seconds
        print(f"{name:7s} wall {statistics.median(walls):7.3f} s  cpu {statistics.median(cpus):7.3f} s  "
              f"({cpu_per_audio_s[name]:.3f} s per s of audio)  value {value:.3f}")

    from hearmask.model.evaluate import (DEFAULT_MAX_SECONDS, DEFAULT_NUM_UTTERANCES, EvaluationConfig, ModelSpec,
                                         plan_rows, plan_systems)

    config = EvaluationConfig()
    systems = plan_systems([ModelSpec("joint", ""), ModelSpec("cascade", "")], {"joint": "joint", "cascade": "cascade"},
                           config)
    sweep = [name for name in config.sweep_audiograms if name in config.audiograms]
    rows = len(plan_rows(systems, list(config.audiograms), sweep, config.snrs_db))
    # Utterances are cut to DEFAULT_MAX_SECONDS; most held-out utterances are longer.
    audio_s_per_row = DEFAULT_NUM_UTTERANCES * DEFAULT_MAX_SECONDS
    cpu_s = rows * audio_s_per_row * sum(cpu_per_audio_s.values())
    print(f"default evaluation, joint + cascade: {rows} rows x {audio_s_per_row:g} s of audio -> about "
          f"{cpu_s / 60:.0f} CPU-minutes ({cpu_s / 120:.0f} min on 2 free cores)")


if __name__ == "__main__":
    main()
