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
