"""The evaluation runner: held-out set, plan, latency alignment, report files, resume."""

import json

import numpy as np
import pytest
import torch

from hearmask.errors import HearmaskError
from hearmask.model import evaluate as ev
from hearmask.model.stft_config import shipped_stft_config
from hearmask.model.system import HearingAidSystem, build_masknet_configs
from hearmask.model.system_io import save_system
from hearmask.profiles.standard import standard_audiogram

TINY = {"hidden_size": 16, "encoder_size": 16}
# One real 1 s utterance in pink noise: fast, and no speech synthesis needed.
FAST = dict(num_utterances=1, max_seconds=1.0, noise_kinds=("pink",), workers=1)


def tiny_system(variant="joint"):
    """An untrained system small enough to run in milliseconds."""
    torch.manual_seed(0)
    stft_config = shipped_stft_config("default")
    return HearingAidSystem(variant, stft_config, build_masknet_configs(variant, stft_config, "default", TINY))


def save_tiny_system(path, variant="joint"):
    system = tiny_system(variant)
    return save_system(path, system)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return save_tiny_system(tmp_path_factory.mktemp("model") / "checkpoint.json")


@pytest.fixture(scope="module")
def shared_run(checkpoint, tmp_path_factory):
    """unprocessed, NAL-R and the tiny model at zero strengths, for NH and N3, at 0 and 20 dB SNR."""
    config = ev.EvaluationConfig(snrs_db=(0.0, 20.0), audiograms=("NH", "N3"),
                                 metrics=("pesq", "estoi", "si_sdr", "haspi", "auditory_loss"), **FAST)
    report_dir = tmp_path_factory.mktemp("report")
    result = ev.evaluate([ev.ModelSpec("tiny", checkpoint, ((0.0, 0.0),))], report_dir, config, progress=False)
    return result, report_dir


def rows_of(rows, system):
    return {(row["audiogram"], row["snr_db"]): row for row in rows if row["system"] == system}


def test_report_holds_one_row_per_system_audiogram_and_snr(shared_run):
    result, report_dir = shared_run
    report = json.loads((report_dir / "report.json").read_text())
    keys = {(row["system"], row["audiogram"], row["snr_db"]) for row in report["rows"]}
    assert len(report["rows"]) == len(keys) == 3 * 2 * 2
    assert {key[0] for key in keys} == {"unprocessed", "nalr", "tiny (alpha=0, beta=0)"}
    for row in report["rows"]:
        assert set(ev.METRIC_NAMES) <= set(row) and row["utterances"] == 1
        assert all(isinstance(row[name], float) for name in ("pesq", "estoi", "si_sdr", "haspi"))
        assert row["hasqi"] is None  # not selected in this run
    conditions = report["conditions"]
    assert conditions["presentation_level_db_spl"] == 65.0 and conditions["speech_level_dbfs"] == -35.0
    assert conditions["config"]["snrs_db"] == [0.0, 20.0] and len(conditions["utterances"]) == 1
    assert {"pyclarity", "torch", "hearmask"} <= set(conditions["versions"])
    assert len((report_dir / "results.csv").read_text().splitlines()) == 1 + 12
    markdown = (report_dir / "results.md").read_text()
    assert "| System | α (NR) | β (HLC) | PESQ | ESTOI | SI-SDR (dB) | HASPI v2 |" in markdown
    assert "## HASPI v2 per audiogram" in markdown and "| NAL-R |" in markdown
    assert (report_dir / "masks.png").stat().st_size > 10_000
    assert result.computed_rows == 12 and result.skipped_rows == 0


def test_unprocessed_is_better_at_high_snr(shared_run):
    rows = rows_of(shared_run[0].rows, "unprocessed")
    for audiogram in ("NH", "N3"):
        high, low = rows[(audiogram, 20.0)], rows[(audiogram, 0.0)]
        assert high["estoi"] > low["estoi"] + 0.2
        assert high["si_sdr"] == pytest.approx(20.0, abs=0.5) and low["si_sdr"] == pytest.approx(0.0, abs=0.5)


def test_identity_model_scores_like_unprocessed(shared_run):
    """Both strengths 0 give the input delayed by the latency: equal scores prove the alignment."""
    unprocessed, identity = rows_of(shared_run[0].rows, "unprocessed"), rows_of(shared_run[0].rows,
                                                                                 "tiny (alpha=0, beta=0)")
    for key, reference in unprocessed.items():
        assert identity[key]["si_sdr"] == pytest.approx(reference["si_sdr"], abs=0.05)
        assert identity[key]["estoi"] == pytest.approx(reference["estoi"], abs=1e-3)
        assert identity[key]["pesq"] == pytest.approx(reference["pesq"], abs=0.02)
        assert identity[key]["haspi"] == pytest.approx(reference["haspi"], abs=0.01)
        assert identity[key]["auditory_loss"] == pytest.approx(reference["auditory_loss"], abs=1e-3)


def test_nalr_amplifies_only_for_a_hearing_loss(shared_run):
    rows, unprocessed = rows_of(shared_run[0].rows, "nalr"), rows_of(shared_run[0].rows, "unprocessed")
    assert rows[("NH", 20.0)]["haspi"] == pytest.approx(unprocessed[("NH", 20.0)]["haspi"], abs=0.01)
    # NAL-R brings the impaired ear closer to a normal ear hearing clean speech.
    assert rows[("N3", 20.0)]["auditory_loss"] < unprocessed[("N3", 20.0)]["auditory_loss"] - 0.1


def test_model_outputs_are_the_input_at_zero_strengths():
    system = tiny_system()
    noisy = (0.01 * np.random.default_rng(0).standard_normal(8000)).astype(np.float32)
    nr_output, full_output = ev.model_outputs(system.eval(), standard_audiogram("N3"), noisy, 0.0, 0.0)
    for output in (nr_output, full_output):
        error_db = 10 * np.log10(np.sum(noisy.astype(np.float64) ** 2) / np.sum((output - noisy) ** 2))
        assert output.shape == noisy.shape and error_db > 60


def test_default_points_per_variant():
    assert ev.default_points("joint", (0.0, 0.5, 1.0)) == (
        [(1.0, 1.0), (1.0, 0.0), (0.0, 1.0)], [(0.5, 1.0), (1.0, 0.5)])
    assert ev.default_points("nr", (0.0, 1.0)) == ([(1.0, 0.0)], [])
    assert ev.default_points("hlc", (0.0, 1.0)) == ([(0.0, 1.0)], [])
    assert ev.default_points("cascade", (0.0, 1.0)) == ([(1.0, 1.0)], [])


def test_plan_runs_sweep_points_on_the_sweep_audiograms_only():
    config = ev.EvaluationConfig()
    systems = ev.plan_systems([ev.ModelSpec("j", "x"), ev.ModelSpec("c", "y")], {"j": "joint", "c": "cascade"}, config)
    tasks = ev.plan_rows(systems, list(config.audiograms), ["N1", "N3", "S2"], config.snrs_db)
    main = [task for task in tasks if not task.system.sweep]
    sweep = [task for task in tasks if task.system.sweep]
    assert len(main) == (2 + 3 + 1) * 11 * 3 and len(sweep) == 2 * 3 * 3
    assert {task.audiogram for task in sweep} == {"N1", "N3", "S2"}
    assert len({task.key for task in tasks}) == len(tasks)


def test_default_evaluation_covers_every_standard_listener():
    config = ev.EvaluationConfig()
    assert config.audiograms == ("NH", "N1", "N2", "N3", "N4", "N5", "N6", "N7", "S1", "S2", "S3")
    assert config.snrs_db == (0.0, 5.0, 10.0) and set(config.metrics) >= {"pesq", "estoi", "si_sdr", "haspi", "hasqi"}


def test_held_out_set_is_deterministic_and_mixed_as_stated(tmp_path, monkeypatch):
    monkeypatch.setenv("HEARMASK_CACHE_DIR", str(tmp_path / "cache"))
    from hearmask.model.data.mixer import active_speech_power

    config = ev.EvaluationConfig(num_utterances=4, snrs_db=(0.0, 10.0), max_seconds=2.0, noise_kinds=("white", "pink"))
    first, second = ev.build_held_out_set(config), ev.build_held_out_set(config)
    assert [item.source for item in first[::2]] == ["pocketsphinx", "espeak", "pocketsphinx", "espeak"]
    assert [item.noise_kind for item in first[::2]] == ["white", "pink", "white", "pink"]
    for item in first[2::4]:  # synthetic: held-out espeak-ng variants only
        assert item.utterance_id.split("+")[1] in ev.HELD_OUT_ESPEAK_VARIANTS
    for a, b in zip(first, second):
        assert a.utterance_id == b.utterance_id and np.array_equal(a.noisy, b.noisy)
    for item in first:
        noise = item.noisy.astype(np.float64) - item.clean
        snr_db = 10 * np.log10(active_speech_power(item.clean) / np.mean(noise**2))
        assert snr_db == pytest.approx(item.snr_db, abs=0.01)
        assert 10 * np.log10(active_speech_power(item.clean)) == pytest.approx(-35.0, abs=0.01)
        assert item.clean.size == 2 * ev.SAMPLE_RATE_HZ  # every utterance lasts >= 2 s, cut to max_seconds
    # The same noise at every SNR: the two mixtures of an utterance differ only in the noise gain.
    noise_0, noise_10 = (item.noisy.astype(np.float64) - item.clean for item in first[:2])
    np.testing.assert_allclose(noise_0 * 10 ** (-10 / 20), noise_10, atol=1e-6)


def test_resume_skips_finished_rows(checkpoint, tmp_path):
    config = ev.EvaluationConfig(snrs_db=(0.0, 10.0), audiograms=("NH", "N2"), metrics=("si_sdr",), **FAST)
    models = [ev.ModelSpec("tiny", checkpoint, ((1.0, 1.0),))]
    first = ev.evaluate(models, tmp_path, config, progress=False)
    assert first.computed_rows == 12
    rows_path = tmp_path / "rows.jsonl"
    lines = rows_path.read_text().splitlines(keepends=True)
    rows_path.write_text("".join(lines[:-2]) + lines[-2][:25])  # two rows lost, the second one torn mid-write
    with pytest.raises(HearmaskError, match="--resume"):
        ev.evaluate(models, tmp_path, config, progress=False)
    resumed = ev.evaluate(models, tmp_path, config, resume=True, progress=False)
    assert resumed.computed_rows == 2 and resumed.skipped_rows == 10
    assert [row["si_sdr"] for row in resumed.rows] == [row["si_sdr"] for row in first.rows]
    assert len(rows_path.read_text().splitlines()) == 12
    changed = ev.EvaluationConfig(snrs_db=(0.0, 5.0), audiograms=("NH", "N2"), metrics=("si_sdr",), **FAST)
    with pytest.raises(HearmaskError, match="other conditions"):
        ev.evaluate(models, tmp_path, changed, resume=True, progress=False)


def test_joint_model_gets_a_sweep_plot(checkpoint, tmp_path):
    config = ev.EvaluationConfig(snrs_db=(5.0,), audiograms=("N3",), metrics=("estoi", "si_sdr"), **FAST)
    result = ev.evaluate([ev.ModelSpec("joint", checkpoint)], tmp_path, config, progress=False)
    systems = [row["system"] for row in result.rows]
    assert systems == ["unprocessed", "nalr", "joint (alpha=1, beta=1)", "joint (alpha=1, beta=0)",
                       "joint (alpha=0, beta=1)", "joint (alpha=0.5, beta=1)", "joint (alpha=1, beta=0.5)"]
    assert (tmp_path / "sweep_joint.png").stat().st_size > 10_000
    assert "## Strength sweep" in (tmp_path / "results.md").read_text()
    # The NR metrics of (alpha, beta) use the output at (alpha, 0): equal for both beta at alpha=1.
    by_system = {row["system"]: row for row in result.rows}
    assert by_system["joint (alpha=1, beta=1)"]["si_sdr"] == by_system["joint (alpha=1, beta=0)"]["si_sdr"]


@pytest.mark.parametrize("models, match", [
    ([ev.ModelSpec("a", "/nonexistent/run")], "model 'a': no checkpoint"),
    ([ev.ModelSpec("nalr", "/x")], "not accepted"),
    ([ev.ModelSpec("a", "/x"), ev.ModelSpec("a", "/y")], "repeat"),
])
def test_bad_models_give_clear_errors(models, match, tmp_path):
    with pytest.raises(HearmaskError, match=match):
        ev.evaluate(models, tmp_path, ev.EvaluationConfig(**FAST), progress=False)
    assert not (tmp_path / "rows.jsonl").exists()


@pytest.mark.parametrize("field, value, match", [
    ("num_utterances", 0, "utterances"), ("snrs_db", (0.0, 0.0), "repeat"), ("metrics", ("mos",), "unknown"),
    ("noise_kinds", ("rain",), "unknown"), ("audiograms", (), "no audiograms"), ("sweep_strengths", (2.0,), "[0, 1]"),
])
def test_bad_configuration_gives_clear_errors(field, value, match):
    with pytest.raises(HearmaskError, match=match):
        ev.EvaluationConfig(**{field: value})


@pytest.mark.slow
def test_all_metrics_with_parallel_workers(checkpoint, tmp_path):
    config = ev.EvaluationConfig(num_utterances=2, max_seconds=1.5, snrs_db=(5.0,), audiograms=("NH", "N4"),
                                 noise_kinds=("pink",), workers=2)
    result = ev.evaluate([ev.ModelSpec("tiny", checkpoint, ((1.0, 1.0),))], tmp_path, config, progress=False)
    assert len(result.rows) == 6
    for row in result.rows:
        assert all(isinstance(row[name], float) for name in ev.METRIC_NAMES) and row["utterances"] == 2
    nalr, unprocessed = rows_of(result.rows, "nalr"), rows_of(result.rows, "unprocessed")
    assert nalr[("N4", 5.0)]["haspi"] > unprocessed[("N4", 5.0)]["haspi"]


def test_a_failing_metric_is_recorded_and_left_out_of_the_mean():
    rng = np.random.default_rng(1)
    long_clean, short_clean = (0.02 * rng.standard_normal(n).astype(np.float32) for n in (16000, 4000))
    items = [ev.HeldOutItem(0, "long", "test", "white", 10.0, long_clean, long_clean + 0.002),
             ev.HeldOutItem(1, "short", "test", "white", 10.0, short_clean, short_clean + 0.002)]
    evaluator = ev.RowEvaluator(items, {"NH": standard_audiogram("NH")}, {}, ("estoi", "si_sdr"), 65.0)
    row = evaluator.row(ev.RowTask(ev.SystemPoint("unprocessed"), "NH", 10.0))
    assert row["per_utterance"]["estoi"][1] is None and row["estoi"] == row["per_utterance"]["estoi"][0]
    assert row["si_sdr"] == pytest.approx(np.mean(row["per_utterance"]["si_sdr"]))  # SI-SDR has no minimum length
    assert len(row["errors"]) == 1 and row["errors"][0].startswith("estoi on short: ESTOI: signals are 0.250 s long")
