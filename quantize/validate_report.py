"""The Markdown form of a validation report (the JSON written by :func:`hearmask.quantize.validate.write_report`)."""

from __future__ import annotations

from typing import Any

from hearmask.quantize.validate_audio import METRICS
from hearmask.quantize.validate_compare import STAGES


def _stage_table(stages: dict[str, dict[str, dict]]) -> list[str]:
    lines = ["| stage | output | vs | in arithmetic | SNR dB | max LSB | mean LSB | cosine |",
             "|---|---|---|---|---:|---:|---:|---:|"]
    for stage in STAGES:
        if stage not in stages:
            continue
        for name, values in stages[stage].items():
            arithmetic = "float" if values["reference"] == "float" else values["arithmetic"]
            lines.append(f"| {stage} | {name} | {values['reference']} | {arithmetic} | {values['snr_db']:.1f} | "
                         f"{values['max_abs_lsb']:.1f} | {values['mean_abs_lsb']:.3f} | {values['cosine']:.6f} |")
    return lines


def markdown_report(report: dict[str, Any]) -> str:
    inputs = report["inputs"]
    lines = [f"# Validation of {report['model_dir']}", "",
             f"**{'PASSED' if report['passed'] else 'FAILED'}**  ({inputs['utterances']} utterances, {inputs['hops']} "
             f"hops, {inputs['source']}). SNR thresholds apply to the "
             f"**{report['thresholds_apply_to'].replace('_', ' ')}**"
             " comparison (every stage starts each hop from the fake-quant state); free-running figures (each stage "
             "feeds back its own state) are reported, and their audible effect is bounded by the audio check. "
             "Each int8 runtime is compared with fake-quant computed in that runtime's requantization arithmetic "
             "(FULLY_CONNECTED / MUL rounded once or twice, as its kernels do; every value checked below); "
             "against the float-rounded fake-quant it was trained as, see \"Rounding effect\".", ""]
    lines += [f"- {failure}" for failure in report["failures"]]
    lines += [f"- why: {explanation}" for explanation in report["explanations"]]
    for mode, title in (("per_step", "Per step (thresholded)"), ("free_running", "Free-running (reported)")):
        lines += ["", f"## {title}", "", *_stage_table(report["stages"][mode])]
    lines += ["", "## Rounding effect (reported): each runtime vs fake-quant as trained", "",
              "The same runtimes against Brevitas's float-rounded fake-quant: the difference their kernels' "
              "requantization rounding makes, compounded through a step (per step) or an utterance (free-running).",
              ""]
    for mode in ("per_step", "free_running"):
        lines += ["", f"{mode.replace('_', ' ')}:", "", *_stage_table(report["rounding_effect"][mode])]
    lines += ["", "## TFLM vs LiteRT reference kernels", "", "Per step, identical inputs and state (whole model):", ""]
    for key, values in report["tflm_vs_litert_ref"]["per_step"].items():
        lines += [f"- {key} {name}: max {lsb['max_abs_lsb']} LSB, {100 * lsb['fraction_of_steps_differing']:.1f} % "
                  "of steps differ" for name, lsb in values.items()]
    lines += ["", "Per op type, applications with bit-identical inputs (thresholded):", ""]
    for key, values in report["tflm_vs_litert_ref"]["per_op"].items():
        lines += [f"- {key} {op}: max {lsb['max_abs_lsb']} LSB, {100 * lsb['fraction_differing']:.3f} % of values "
                  f"differ ({lsb['cases']} applications)" for op, lsb in values.items()]
    lines += ["", "## Kernel arithmetic (every output value checked)", "",
              "FULLY_CONNECTED / MUL: requantization with one rounding (`single`, what Brevitas and an exact "
              "computation give), two (`double`, gemmlowp high multiply then rounding shift) or in float32 "
              "(`fp32`, XNNPACK: float32 scale, half to even). ADD / SUB: TFLite's left shift 20 and per-input "
              "multipliers, rounded twice (`double`) or once (`single`), or XNNPACK's 21-bit multipliers and one "
              "rounding shift (`xnnpack`). LOGISTIC / TANH: "
              "gemmlowp fixed point (`fixed_point`) or the float-rounded table (`float_rounded`).", "",
              "| runtime | op | values | matches | follows |", "|---|---|---:|---|---|"]
    for runtime, ops in report["kernel_arithmetic"].items():
        for op, entry in ops.items():
            matches = ", ".join(f"{model} {count}" for model, count in entry.items()
                                if model not in ("values", "follows"))
            lines.append(f"| {runtime} | {op} | {entry['values']} | {matches} | {entry['follows']} |")
    audio = report["audio"]
    lines += ["", "## Audio (int8 streaming in LiteRT and TFLM vs float streaming)", ""]
    lines += _audio_lines(audio) if audio["computed"] else [f"Not computed: {audio['note']}."]
    masks = report["mask_comparison"]
    lines += ["", f"Masks of the first utterance, float vs int8 (free-running): NR mean |difference| "
              f"{masks['nr_db']['mean_abs_difference_db']:.3f} dB (max {masks['nr_db']['max_abs_difference_db']:.2f}), "
              f"HLC {masks['hlc_db']['mean_abs_difference_db']:.3f} dB "
              f"(max {masks['hlc_db']['max_abs_difference_db']:.2f}).",
              "", *[f"![{name}]({file})" for name, file in report.get("plots", {}).items()]]
    for key, entries in report["layers"].items():
        first = report["first_diverging_layer"][key]
        lines += ["", f"## Per layer, {key} vs fake-quant (first diverging: {first})", "",
                  "| point | op | max LSB | mean LSB | SNR dB | same inputs: max LSB, % differing (hops) |",
                  "|---|---|---:|---:|---:|---:|"]
        lines += [f"| {layer['point']} | {layer['op']} | {layer['max_abs_lsb']:.1f} | {layer['mean_abs_lsb']:.3f} | "
                  f"{layer['snr_db']:.1f} | {layer['same_inputs_max_abs_lsb']}, "
                  f"{100 * layer['same_inputs_fraction_differing']:.2f} % ({layer['same_inputs_hops']}) |"
                  for layer in entries]
    return "\n".join(lines) + "\n"


def _int8_cell(entry: dict[str, Any]) -> str:
    error = entry.get("standard_error")
    spread = "" if error is None else f" ± {error:.4f}"
    return f"{entry['int8_mean']:.4f} ({entry['mean_delta']:+.4f}{spread})"


def _audio_lines(audio: dict[str, Any]) -> list[str]:
    conditions = audio["conditions"]
    runtimes = conditions["int8_runtimes"]
    lines = [f"{conditions['utterances']} held-out mixtures at {conditions['snr_db']:g} dB SNR, at most "
             f"{conditions['max_seconds']:g} s, listener {conditions['audiogram']}; {conditions['path']}.", "",
             "| metric | float | " + " | ".join(f"int8 {name} (delta ± standard error)" for name in runtimes)
             + " | max drop |", "|---|---:|" + "---:|" * len(runtimes) + "---:|"]
    lines += [f"| {metric} | {audio[metric]['float_mean']:.4f} | " + " | ".join(
        _int8_cell(audio[metric]['by_runtime'][name]) for name in runtimes)
        + f" | {audio[metric]['max_drop']:g} |" for metric in METRICS]
    lines += ["", "| utterance | noise | " + " | ".join(f"{metric.upper()} float / " + " / ".join(runtimes)
                                                     for metric in METRICS) + " |",
              "|---|---|" + "---|" * len(METRICS)]
    lines += [f"| {row['utterance_id']} | {row['noise_kind']} | " + " | ".join(
        " / ".join([f"{row['float'][metric]:.3f}"] + [f"{row['int8'][name][metric]:.3f}" for name in runtimes])
        for metric in METRICS) + " |" for row in audio["per_utterance"]]
    return lines
