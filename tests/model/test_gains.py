"""Combining NR and HLC gains; strength validation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from hearmask.errors import HearmaskError
from hearmask.model.gains import combine_gains_db, db_to_linear, validate_strength

NR_DB = np.array([-25.0, -3.0, 0.0])
HLC_DB = np.array([-10.0, 12.0, 50.0])


def test_zero_strengths_give_zero_db_for_numpy_and_torch():
    np.testing.assert_array_equal(combine_gains_db(NR_DB, HLC_DB, 0.0, 0.0), 0.0)
    combined = combine_gains_db(torch.as_tensor(NR_DB), torch.as_tensor(HLC_DB), 0, 0)
    assert isinstance(combined, torch.Tensor)
    assert torch.equal(combined, torch.zeros(3, dtype=torch.float64))
    np.testing.assert_array_equal(db_to_linear(combine_gains_db(NR_DB, HLC_DB, 0.0, 0.0)), 1.0)


def test_combination_is_the_weighted_sum_and_the_product_of_powered_masks():
    combined_db = combine_gains_db(NR_DB, HLC_DB, 0.5, 1.0)
    np.testing.assert_allclose(combined_db, 0.5 * NR_DB + HLC_DB)
    np.testing.assert_allclose(
        db_to_linear(combined_db), db_to_linear(NR_DB) ** 0.5 * db_to_linear(HLC_DB) ** 1.0, rtol=1e-12
    )


def test_db_to_linear_reference_values():
    np.testing.assert_allclose(db_to_linear(np.array([0.0, 20.0, -6.0206])), [1.0, 10.0, 0.5], rtol=1e-5)
    assert torch.allclose(db_to_linear(torch.tensor([40.0])), torch.tensor([100.0]))


@given(st.floats(0.0, 1.0), st.floats(0.0, 1.0))
def test_strengths_in_unit_interval_are_accepted_and_scale_each_mask(alpha, beta):
    combined_db = combine_gains_db(NR_DB, HLC_DB, alpha, beta)
    np.testing.assert_allclose(combined_db, alpha * NR_DB + beta * HLC_DB)


@pytest.mark.parametrize("name_value", [("alpha", 1.5), ("beta", 1.0001)])
def test_strength_above_one_needs_explicit_exaggeration(name_value):
    name, value = name_value
    strengths = {"alpha": 0.5, "beta": 0.5, name: value}
    expected = rf"{name} = {value} is above 1; accepted range is \[0, 1\].*allow_exaggeration=True"
    with pytest.raises(HearmaskError, match=expected):
        combine_gains_db(NR_DB, HLC_DB, strengths["alpha"], strengths["beta"])
    combined_db = combine_gains_db(NR_DB, HLC_DB, strengths["alpha"], strengths["beta"], allow_exaggeration=True)
    np.testing.assert_allclose(combined_db, strengths["alpha"] * NR_DB + strengths["beta"] * HLC_DB)


@pytest.mark.parametrize("allow_exaggeration", [False, True])
@pytest.mark.parametrize("bad", [-0.1, math.nan, math.inf, "0.5", None, True])
def test_negative_or_non_numeric_strengths_are_rejected(bad, allow_exaggeration):
    with pytest.raises(HearmaskError, match="strength alpha must"):
        validate_strength("alpha", bad, allow_exaggeration)


def test_numpy_scalar_strengths_are_accepted():
    assert validate_strength("beta", np.float32(0.25)) == 0.25
