"""Training configuration from TOML: defaults, overrides, and errors that name the key."""

import pytest

from hearmask.errors import HearmaskError
from hearmask.model.train_config import TrainConfig, load_train_config, train_config_from_dict


def test_empty_file_gives_defaults(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("")
    assert load_train_config(path) == TrainConfig()


def test_values_and_model_overrides(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[task]\nvariant = "cascade"\n[model]\nsize = "large"\nhidden_size = 32\n'
                    '[data]\nsnr_db = [0, 10]\n[train]\nlearning_rate = 1\nsteps = 5\n'.replace("= 1\n", "= 0.5\n"))
    config = load_train_config(path)
    assert config.task.variant == "cascade"
    assert config.model.size == "large" and config.model.overrides == {"hidden_size": 32}
    assert config.data.snr_db == (0, 10) and config.train.steps == 5 and config.train.learning_rate == 0.5


@pytest.mark.parametrize("document, fragment", [
    ({"trian": {}}, "unknown section(s) ['trian']"),
    ({"train": {"stepz": 3}}, "unknown key(s) ['stepz'] in [train]"),
    ({"train": {"steps": "many"}}, "[train] steps must be int, got 'many'"),
    ({"task": {"variant": "both"}}, "accepted: joint, nr, hlc, cascade"),
    ({"data": {"snr_db": [10, 0]}}, "low <= high"),
    ({"train": {"batch_size": 0}}, "batch_size must be >= 1"),
    ({"data": {"noise_dir": "/x"}}, "need clean_dir"),
    ({"task": {"combined_weight": -1.0}}, "combined_weight must be >= 0, got -1.0"),
    ({"task": {"variant": "nr", "combined_weight": 1.0}}, "applies to variant 'joint' only, got variant 'nr'"),
])
def test_bad_values_name_the_key(document, fragment):
    with pytest.raises(HearmaskError) as info:
        train_config_from_dict(document, "my.toml")
    assert fragment in str(info.value) and "my.toml" in str(info.value)


def test_bad_toml_and_missing_file(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[train\nsteps = 3")
    with pytest.raises(HearmaskError, match="is not valid TOML"):
        load_train_config(path)
    with pytest.raises(HearmaskError, match="does not exist"):
        load_train_config(tmp_path / "none.toml")


def test_auditory_section_selects_the_drnl_filterbank():
    from hearmask.model.train_config import auditory_model_config

    config = train_config_from_dict({"auditory": {"filterbank": "drnl", "ohc_max_loss_db": [30, 55]}})
    auditory = auditory_model_config(config, 16000)
    assert auditory.filterbank == "drnl" and auditory.ohc_max_loss_db == (30, 55)
    assert auditory_model_config(train_config_from_dict({}), 16000).filterbank == "gammatone"


@pytest.mark.parametrize("auditory, message", [
    ({"filterbank": "drln"}, "filterbank must be one of gammatone, drnl, got 'drln'"),
    ({"channels": 32}, r"unknown key\(s\) \['channels'\] in \[auditory\]; accepted: \[.*num_channels"),
    ({"sample_rate_hz": 8000}, "comes from the STFT"),
])
def test_bad_auditory_section_is_a_clear_error(auditory, message):
    with pytest.raises(HearmaskError, match=message):
        train_config_from_dict({"auditory": auditory}, "my.toml")


def test_resume_compares_configs_with_missing_keys_at_their_defaults():
    from hearmask.model.trainer import _without_steps

    current = train_config_from_dict({"train": {"steps": 10}}).to_dict()
    older = {name: value for name, value in current.items() if name != "auditory"}  # before [auditory] existed
    older["train"] = {**older["train"], "steps": 5}
    assert _without_steps(older) == _without_steps(current)
    changed = train_config_from_dict({"auditory": {"filterbank": "drnl"}}).to_dict()
    assert _without_steps(changed) != _without_steps(current)


def test_data_source_config_uses_this_machines_data_and_no_workers():
    from hearmask.model.train_config import data_source_config

    trained = train_config_from_dict({"data": {"speech_pack": "/gpu/pack"},
                                      "train": {"data_workers": 14, "init_from": "/gpu/start.json"}})
    local = data_source_config(trained, 1.0, 4)
    assert (local.data.speech_pack, local.train.data_workers, local.train.init_from) == ("", 0, "")
    assert (local.data.segment_seconds, local.train.batch_size) == (1.0, 4)


def test_speech_pack_and_clean_dir_together_are_refused():
    with pytest.raises(HearmaskError, match="give speech_pack .* or clean_dir .*, not both"):
        train_config_from_dict({"data": {"speech_pack": "p", "clean_dir": "c"}})


def test_the_gpu_fine_tune_configs_load():
    from pathlib import Path

    configs = sorted((Path(__file__).parents[2] / "scripts" / "gpu").glob("*.toml"))
    assert len(configs) == 2
    for path in configs:
        config = load_train_config(path)
        assert config.data.speech_pack == ".gpu/pack" and config.train.data_workers > 0
        assert config.train.keep_every % config.train.steps_per_epoch == 0 < config.train.keep_every
