"""MaskNet: step vs sequence, ranges, conditioning, causality, budgets, MAC count, export ops."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from hearmask.errors import HearmaskError
from hearmask.model.network import (
    INITIAL_HLC_FRACTION,
    INITIAL_NR_DB,
    MASKNET_SIZES,
    MaskNet,
    MaskNetConfig,
    masknet_config,
)
from hearmask.model.recurrent import PrimitiveGruCell
from hearmask.model.stft_config import SHIPPED_STFT_CONFIGS

CONFIGS = {
    "default": MaskNetConfig(),
    "concat": MaskNetConfig(conditioning="concat"),
    "one_layer_low_latency": MaskNetConfig.for_stft(SHIPPED_STFT_CONFIGS["low_latency"], num_layers=1),
    "large": MASKNET_SIZES["large"],
}
FRAMES_PER_SECOND = 250.0  # 16 kHz, hop 64


def make_net(config: MaskNetConfig, seed: int = 0, head_weight_scale: float = 1.0) -> MaskNet:
    torch.manual_seed(seed)
    net = MaskNet(config).eval()
    with torch.no_grad():  # spread the outputs over their ranges (the init keeps them near 0 dB)
        net.nr_head.weight.mul_(head_weight_scale)
        net.hlc_head.weight.mul_(head_weight_scale)
    return net


def random_inputs(config: MaskNetConfig, batch: int, frames: int, seed: int = 1):
    generator = torch.Generator().manual_seed(seed)
    features = torch.randn(batch, frames, config.num_features, generator=generator)
    audiogram = torch.rand(batch, config.audiogram_size, generator=generator) * 1.05  # 0..105 dB HL
    return features, audiogram


def run_steps(net: MaskNet, features: torch.Tensor, audiogram: torch.Tensor, state: torch.Tensor | None = None):
    state = net.initial_state(features.shape[0]) if state is None else state
    nr_frames, hlc_frames = [], []
    for frame in range(features.shape[1]):
        nr_db, hlc_db, state = net.step(features[:, frame], audiogram, state)
        nr_frames.append(nr_db)
        hlc_frames.append(hlc_db)
    return torch.stack(nr_frames, 1), torch.stack(hlc_frames, 1), state


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_step_form_equals_sequence_form_over_200_frames(name):
    config = CONFIGS[name]
    net = make_net(config, head_weight_scale=10.0)
    features, audiogram = random_inputs(config, batch=3, frames=200)
    with torch.no_grad():
        step_nr_db, step_hlc_db, _ = run_steps(net, features, audiogram)
        for fused_recurrence in (False, True):
            sequence_nr_db, sequence_hlc_db = net(features, audiogram, fused_recurrence=fused_recurrence)
            assert sequence_nr_db.shape == sequence_hlc_db.shape == (3, 200, config.num_bins)
            assert sequence_nr_db.dtype == torch.float32
            assert (sequence_hlc_db.max() - sequence_hlc_db.min()) > 10.0  # a real range was exercised
            assert torch.max(torch.abs(sequence_nr_db - step_nr_db)) <= 1e-5, fused_recurrence
            assert torch.max(torch.abs(sequence_hlc_db - step_hlc_db)) <= 1e-5, fused_recurrence


@pytest.mark.parametrize("fused_recurrence", [False, True])
def test_step_and_sequence_forms_are_the_same_function_in_float64(fused_recurrence):
    # In float64 the two forms agree to rounding: the float32 differences above are
    # rounding only, not a difference in the computation.
    config = CONFIGS["default"]
    net = make_net(config, head_weight_scale=40.0).double()
    features, audiogram = (tensor.double() for tensor in random_inputs(config, batch=2, frames=200))
    with torch.no_grad():
        sequence_nr_db, sequence_hlc_db = net(features, audiogram, fused_recurrence=fused_recurrence)
        step_nr_db, step_hlc_db, _ = run_steps(net, features, audiogram)
    assert (sequence_hlc_db.max() - sequence_hlc_db.min()) > 30.0
    assert torch.max(torch.abs(sequence_nr_db - step_nr_db)) <= 1e-10
    assert torch.max(torch.abs(sequence_hlc_db - step_hlc_db)) <= 1e-10


def test_sequence_form_continues_from_a_state_like_the_step_form():
    config = CONFIGS["default"]
    net = make_net(config)
    features, audiogram = random_inputs(config, batch=2, frames=60)
    with torch.no_grad():
        _, _, state_after_40 = run_steps(net, features[:, :40], audiogram)
        continued_nr_db, continued_hlc_db = net(features[:, 40:], audiogram, state=state_after_40)
        whole_nr_db, whole_hlc_db = net(features, audiogram)
    torch.testing.assert_close(continued_nr_db, whole_nr_db[:, 40:], atol=1e-5, rtol=0)
    torch.testing.assert_close(continued_hlc_db, whole_hlc_db[:, 40:], atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", ["default", "concat"])
def test_masks_stay_in_their_ranges_for_extreme_inputs(name):
    config = CONFIGS[name]
    net = make_net(config, head_weight_scale=100.0)  # drives the sigmoids into saturation
    features, _ = random_inputs(config, batch=4, frames=30)
    features = torch.cat([features * 1e4, -features * 1e4, torch.zeros_like(features), features * 1e-6])
    audiogram = torch.cat(
        [torch.zeros(4, 8), torch.full((4, 8), 1.2), torch.full((4, 8), -1.0), torch.full((4, 8), 50.0)]
    )
    with torch.no_grad():
        nr_db, hlc_db = net(features, audiogram)
    assert torch.isfinite(nr_db).all() and torch.isfinite(hlc_db).all()
    assert nr_db.min() >= config.nr_floor_db and nr_db.max() <= 0.0
    assert hlc_db.min() >= config.hlc_min_db and hlc_db.max() <= config.hlc_max_db
    # Saturated: the extremes of both ranges are actually reached.
    assert nr_db.min() == pytest.approx(config.nr_floor_db, abs=1e-3)
    assert nr_db.max() == pytest.approx(0.0, abs=1e-3)
    assert hlc_db.min() == pytest.approx(config.hlc_min_db, abs=1e-3)
    assert hlc_db.max() == pytest.approx(config.hlc_max_db, abs=1e-3)


@pytest.mark.parametrize("name", ["default", "concat"])
def test_different_audiograms_give_different_hlc_gains_for_the_same_input(name):
    config = CONFIGS[name]
    net = make_net(config)
    features, _ = random_inputs(config, batch=1, frames=50)
    normal_hearing = torch.zeros(1, 8)
    severe_loss = torch.tensor([[0.35, 0.35, 0.40, 0.50, 0.55, 0.60, 0.65, 0.65]])  # N3, dB HL / 100
    with torch.no_grad():
        _, hlc_normal_db = net(features, normal_hearing)
        _, hlc_loss_db = net(features, severe_loss)
        _, hlc_normal_again_db = net(features, normal_hearing)
    assert torch.equal(hlc_normal_db, hlc_normal_again_db)
    assert torch.mean(torch.abs(hlc_normal_db - hlc_loss_db)) > 0.01


def test_future_frames_never_change_past_outputs():
    config = CONFIGS["default"]
    net = make_net(config, head_weight_scale=10.0)
    features, audiogram = random_inputs(config, batch=2, frames=80)
    changed = features.clone()
    changed[:, 41:] = torch.randn_like(changed[:, 41:]) * 5
    with torch.no_grad():
        nr_db, hlc_db = net(features, audiogram)
        changed_nr_db, changed_hlc_db = net(changed, audiogram)
    torch.testing.assert_close(changed_nr_db[:, :41], nr_db[:, :41], atol=1e-6, rtol=0)
    torch.testing.assert_close(changed_hlc_db[:, :41], hlc_db[:, :41], atol=1e-6, rtol=0)
    assert torch.max(torch.abs(changed_hlc_db[:, 41:] - hlc_db[:, 41:])) > 0.1


def test_untrained_net_starts_near_identity_gains():
    config = CONFIGS["default"]
    net = make_net(config)
    with torch.no_grad():
        net.nr_head.weight.zero_()
        net.hlc_head.weight.zero_()
        features, audiogram = random_inputs(config, batch=2, frames=10)
        audiogram[0] = 0.0  # normal hearing: the span is [hlc_min_db, 0] dB
        nr_db, hlc_db = net(features, audiogram)
        expected_hlc_db = config.hlc_min_db + INITIAL_HLC_FRACTION * net.hlc_span_db(audiogram)[:, None, :]
    torch.testing.assert_close(nr_db, torch.full_like(nr_db, INITIAL_NR_DB), atol=1e-5, rtol=0)
    torch.testing.assert_close(hlc_db, expected_hlc_db.expand_as(hlc_db), atol=1e-5, rtol=0)
    assert hlc_db[0].abs().max() <= 1.0 + 1e-5  # near identity for normal hearing


def test_gradients_reach_every_parameter():
    config = CONFIGS["default"]
    net = make_net(config).train()
    nr_db, hlc_db = net(*random_inputs(config, batch=2, frames=20))
    (nr_db.square().mean() + hlc_db.square().mean()).backward()
    for name, parameter in net.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


def test_default_size_meets_the_parameter_and_compute_budgets():
    net = MaskNet(MaskNetConfig())
    assert net.count_parameters() <= 100_000
    assert net.macs_per_frame() <= 100_000
    assert net.macs_per_second(FRAMES_PER_SECOND) <= 25e6
    large = MaskNet(MASKNET_SIZES["large"])
    assert large.count_parameters() > 3 * net.count_parameters()


def test_parameter_count_matches_the_architecture():
    config = MaskNetConfig()
    bands, encoder, hidden = config.num_bands, config.encoder_size, config.hidden_size
    audiogram = config.audiogram_size
    expected = (
        (bands + 1) * encoder  # encoder
        + (audiogram + 1) * 2 * encoder  # FiLM scale and shift
        + 3 * hidden * (encoder + 1) + 3 * hidden * (hidden + 1)  # GRU layer 1 (input, hidden projections)
        + 2 * 3 * hidden * (hidden + 1)  # GRU layer 2
        + 2 * (hidden + encoder + 1) * bands  # NR and HLC heads
    )
    assert MaskNet(config).count_parameters() == expected


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_analytic_mac_count_equals_the_counted_matmuls_of_one_step(name):
    config = CONFIGS[name]
    net = make_net(config)
    features, audiogram = random_inputs(config, batch=1, frames=1)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        net.step(features[:, 0], audiogram, net.initial_state(1))
    # FlopCounterMode counts 2 flops per multiply-accumulate of mm/addmm. The torch step also
    # maps the audiogram to the per-bin HLC ceiling (bins x 8), which devices compute once per
    # audiogram outside the int8 graph, so it is not a MAC of the model.
    ceiling_macs = config.num_bins * config.audiogram_size
    assert counter.get_total_flops() == 2 * (net.macs_per_frame() + ceiling_macs)
    assert net.macs_per_second(FRAMES_PER_SECOND) == 250 * net.macs_per_frame()


def test_step_exports_to_the_int8_tflite_op_set():
    net = make_net(CONFIGS["concat"])

    class StepOnly(torch.nn.Module):
        def __init__(self, model: MaskNet):
            super().__init__()
            self.model = model

        def forward(self, features, audiogram, state):
            return self.model.step_fractions(features, audiogram, state)

    for model in (make_net(CONFIGS["default"]), net):
        config = model.config
        example = (torch.randn(1, config.num_features), torch.rand(1, 8), model.initial_state(1))
        graph = torch.export.export(StepOnly(model), example).graph
        ops = {str(node.target) for node in graph.nodes if node.op == "call_function"}
        # FULLY_CONNECTED, ADD, SUB, MUL, LOGISTIC, TANH, CONCATENATION, STRIDED_SLICE.
        allowed = {
            "aten.linear.default", "aten.add.Tensor", "aten.sub.Tensor", "aten.mul.Tensor",
            "aten.sigmoid.default", "aten.tanh.default", "aten.cat.default", "aten.slice.Tensor",
        }
        assert ops <= allowed, ops - allowed
        assert {"aten.linear.default", "aten.sigmoid.default", "aten.tanh.default"} <= ops


def test_primitive_gru_cell_equals_torch_gru_with_the_same_weights():
    torch.manual_seed(3)
    cell = PrimitiveGruCell(12, 16).double()
    reference = torch.nn.GRU(12, 16, batch_first=True).double()
    with torch.no_grad():
        reference.weight_ih_l0.copy_(cell.input_linear.weight)
        reference.weight_hh_l0.copy_(cell.hidden_linear.weight)
        reference.bias_ih_l0.copy_(cell.input_linear.bias)
        reference.bias_hh_l0.copy_(cell.hidden_linear.bias)
        inputs = torch.randn(2, 25, 12, dtype=torch.float64)
        hidden = torch.randn(2, 16, dtype=torch.float64)
        expected, _ = reference(inputs, hidden[None])
        torch.testing.assert_close(cell(inputs, hidden), expected, atol=1e-12, rtol=0)


def test_state_shape_and_config_round_trip():
    config = masknet_config("large", num_layers=3)
    assert config.hidden_size == 160 and config.num_layers == 3
    assert config.state_size == 3 * 160
    assert MaskNet(config).initial_state(5).shape == (5, 480)
    assert MaskNetConfig.from_dict(config.to_dict()) == config


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"conditioning": "gain"}, "unknown audiogram conditioning 'gain'; accepted: film, concat"),
        ({"hidden_size": 0}, "hidden_size must be a positive integer, got 0"),
        ({"nr_floor_db": 3.0}, "nr_floor_db must be below"),
        ({"hlc_min_db": 5.0}, "hlc_min_db must be <= 0 dB"),
        ({"hlc_max_db": 0.0}, "hlc_max_db must be > 0 dB"),
        ({"num_bands": 200}, "num_bands must be between 2 and num_bins - 1 = 128"),
    ],
)
def test_bad_configs_are_rejected_with_the_accepted_values(fields, message):
    with pytest.raises(HearmaskError, match=message):
        MaskNetConfig(**fields)


def test_bad_input_shapes_and_names_are_rejected():
    net = MaskNet()
    with pytest.raises(HearmaskError, match=r"features must have shape \(B, K, 32\)"):
        net(torch.zeros(1, 10, 31), torch.zeros(1, 8))
    with pytest.raises(HearmaskError, match=r"audiogram must have shape \(1, 8\)"):
        net(torch.zeros(1, 10, 32), torch.zeros(1, 6))
    with pytest.raises(HearmaskError, match="unknown mask network size 'huge'"):
        masknet_config("huge")
    with pytest.raises(HearmaskError, match="unknown mask network config field"):
        MaskNetConfig.from_dict({"hidden": 3})


def test_hlc_gain_stays_under_the_half_gain_ceiling_per_bin():
    config = CONFIGS["default"]
    net = make_net(config)
    with torch.no_grad():
        net.hlc_head.bias.fill_(30.0)  # drive every bin to the top of its range
        features, _ = random_inputs(config, batch=1, frames=4)
        # N3-like: 35 dB HL at 250 Hz rising to 65 dB HL at 8 kHz.
        audiogram = torch.tensor([[0.35, 0.35, 0.40, 0.45, 0.50, 0.55, 0.60, 0.65]])
        _, hlc_db = net(features, audiogram)
    bins_hz = config.band_layout().bin_frequencies_hz
    top_db = hlc_db[0, -1]
    # Just above the highest audiogram frequency the ceiling is half the loss there.
    assert top_db[-1].item() == pytest.approx(0.5 * 65.0, abs=1e-3)
    assert top_db[int((bins_hz <= 250).sum()) - 1].item() == pytest.approx(0.5 * 35.0, abs=1e-3)
    assert torch.all(torch.diff(top_db) >= -1e-5)  # a rising audiogram gives a rising ceiling


def test_hlc_ceiling_offset_at_max_gain_disables_the_ceiling():
    config = masknet_config("default", hlc_ceiling_offset_db=50.0)
    net = MaskNet(config)
    span_db = net.hlc_span_db(torch.zeros(1, config.audiogram_size))
    torch.testing.assert_close(span_db, torch.full_like(span_db, config.hlc_max_db - config.hlc_min_db))


@pytest.mark.parametrize("field, value", [("hlc_ceiling_loss_fraction", -0.1), ("hlc_ceiling_offset_db", -10.0)])
def test_bad_hlc_ceiling_is_rejected_with_the_value(field, value):
    with pytest.raises(HearmaskError, match=f"{field}.*{value}"):
        masknet_config("default", **{field: value})
