"""Property test: random small graphs of the supported ops, converted by TFLite with a
representative dataset (int8 in/out, per-tensor dense weights), generated as C and compared
with the TFLM host interpreter bit for bit on random and saturating int8 inputs."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, assume, example, given, settings
from hypothesis import strategies as st

from hearmask.quantize.runtimes import TflmRuntime
from hearmask.quantize.tflite_inspect import INT8_TARGET_OPS, inspect_tflite
from hearmask.targets.codegen import generate_c_model
from hearmask.targets.codegen.host_runtime import GeneratedCRuntime, host_compiler

pytestmark = pytest.mark.skipif(host_compiler() is None, reason="needs a host C compiler (gcc)")

STEP_KINDS = ("dense", "dense_relu", "add", "add_relu6", "sub", "mul", "add_const", "mul_const", "sigmoid", "tanh",
              "concat", "slice", "split", "reshape")
# Each step: (kind, first operand, second operand, a size/offset parameter); operands index the
# tensors made so far (modulo their number).
recipes = st.fixed_dictionaries({
    "input_widths": st.lists(st.integers(2, 20), min_size=1, max_size=3),
    "steps": st.lists(st.tuples(st.sampled_from(STEP_KINDS), st.integers(0, 40), st.integers(0, 40),
                                st.integers(1, 24)), min_size=2, max_size=8),
    "seed": st.integers(0, 2**31 - 1),
})


def build_random_tflite(recipe: dict) -> bytes:
    """The recipe as a tf.function, converted to a fully int8 .tflite (the outputs are the
    tensors no later step consumes, so every step stays in the graph)."""
    import tensorflow as tf

    rng = np.random.default_rng(recipe["seed"])
    widths = recipe["input_widths"]
    amplitudes = [float(10 ** rng.uniform(-1, 1)) for _ in widths]

    def graph(*inputs):
        pool, consumed, activations = list(inputs), set(), set()

        def pick(position: int, avoid: int | None = None) -> int:
            index = position % len(pool)
            if index == avoid and len(pool) > 1:
                index = (index + 1) % len(pool)
            consumed.add(index)
            return index

        for kind, first, second, size in recipe["steps"]:
            a = pick(first)
            x = pool[a]
            width = x.shape[-1]
            if kind in ("dense", "dense_relu"):  # the converter fuses the RELU into FULLY_CONNECTED
                weights = rng.standard_normal((width, size)) * 10 ** rng.uniform(-1.5, 0.5)
                bias = rng.standard_normal(size) * 10 ** rng.uniform(-2, 0)
                out = tf.matmul(x, tf.constant(weights, tf.float32)) + tf.constant(bias, tf.float32)
                out = tf.nn.relu(out) if kind == "dense_relu" else out
            elif kind in ("add", "add_relu6", "sub", "mul"):
                b = pick(second, avoid=a)
                y = pool[b] if b != a else x[:, ::-1]  # x - x would have an empty output range
                common = min(width, y.shape[-1])
                left, right = x[:, :common], y[:, y.shape[-1] - common:]
                out = left - right if kind == "sub" else left * right if kind == "mul" else left + right
                out = tf.nn.relu6(out) if kind == "add_relu6" else out
            elif kind == "add_const":
                out = x + float(rng.uniform(-2, 2))
            elif kind == "mul_const":
                out = x * float(rng.choice([-1, 1]) * rng.uniform(0.1, 2))
            elif kind == "sigmoid":
                out = tf.sigmoid(x)
            elif kind == "tanh":
                out = tf.tanh(x)
            elif kind == "concat":  # operands share one quantization, as TFLM requires
                if a in activations:  # the converter would requantize 1/256 (1/128) to 1/255 (2/255)
                    x = x * 1.5
                out = tf.concat([x, x[:, ::-1]], axis=1)
            elif kind == "slice":
                start = size % width
                out = x[:, start: start + 1 + size % 5: 1 + size % 2]
            elif kind == "split":
                even = width // 2 * 2
                if even < 2:
                    out = tf.tanh(x)
                else:
                    first_half, second_half = tf.split(x[:, :even], 2, axis=1)
                    out = first_half * second_half
            else:  # reshape to 3-D, interleave by concatenating on the last axis, reshape back
                even = width // 2 * 2
                if even < 2:
                    out = tf.tanh(x)
                else:
                    if a in activations:
                        x = x * 1.5
                    blocks = tf.reshape(x[:, :even], [1, even // 2, 2])
                    out = tf.reshape(tf.concat([blocks, blocks[:, ::-1, :]], axis=2), [1, 2 * even])
            if kind in ("sigmoid", "tanh"):
                activations.add(len(pool))
            pool.append(out)
        # Every input must feed an op (the converter leaves unused inputs float).
        leaves = [tf.tanh(pool[i]) for i in range(len(inputs)) if i not in consumed]
        outputs = leaves + [pool[i] for i in range(len(inputs), len(pool)) if i not in consumed]
        return tuple(outputs)

    specs = [tf.TensorSpec((1, width), tf.float32, name=f"input{i}") for i, width in enumerate(widths)]
    function = tf.function(graph, input_signature=specs, autograph=False)

    def representative():
        for _ in range(32):
            yield [(rng.standard_normal((1, width)) * amplitude).astype(np.float32)
                   for width, amplitude in zip(widths, amplitudes)]

    converter = tf.lite.TFLiteConverter.from_concrete_functions([function.get_concrete_function()], function)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    converter._experimental_disable_per_channel_quantization_for_dense_layers = True
    return bytes(converter.convert())


def assert_bit_exact(model_bytes: bytes, build_dir, cases: int = 40, seed: int = 0) -> None:
    generated = generate_c_model(model_bytes, build_dir / "c")
    c_model = GeneratedCRuntime(model_bytes, generated, build_dir / "build")
    reference = TflmRuntime(model_bytes)
    rng = np.random.default_rng(seed)
    shapes = {entry.name: entry.tensor.shape for entry in reference.inputs}
    inputs = [{name: np.full(shape, value, np.int8) for name, shape in shapes.items()} for value in (-128, 127)]
    inputs += [{name: rng.choice(np.array([-128, 127], np.int8), shape) for name, shape in shapes.items()}
               for _ in range(4)]
    inputs += [{name: rng.integers(-128, 128, shape).astype(np.int8) for name, shape in shapes.items()}
               for _ in range(cases)]
    for number, codes in enumerate(inputs):
        reference.invoke_codes(codes)
        c_model.invoke_codes(codes)
        # By position: converted models may repeat an output name.
        for entry, actual in zip(reference.outputs, c_model.last_outputs()):
            expected = np.array(reference.interpreter.get_output(entry.position))
            np.testing.assert_array_equal(actual, expected, err_msg=f"input set {number}, output {entry.position}")


def _check_recipe(recipe: dict, tmp_path_factory) -> None:
    model_bytes = build_random_tflite(recipe)
    ops = inspect_tflite(model_bytes).op_counts
    # The converter may insert int8 requantization (QUANTIZE), which the shipped models never contain.
    assume(set(ops) <= set(INT8_TARGET_OPS))
    assert_bit_exact(model_bytes, tmp_path_factory.mktemp("random"), seed=recipe["seed"])


# Graphs always run besides the generated ones: every step kind, and the 3-D data movement ops.
EVERY_KIND = {"input_widths": [12, 7], "seed": 1, "steps": [
    ("dense", 0, 0, 10), ("add", 2, 1, 0), ("sigmoid", 3, 0, 0), ("concat", 4, 1, 0), ("mul", 5, 2, 0),
    ("tanh", 6, 0, 0), ("sub", 7, 3, 0), ("add_const", 8, 0, 0), ("mul_const", 9, 0, 0), ("slice", 10, 0, 3),
    ("split", 11, 0, 0), ("reshape", 12, 0, 0), ("slice", 13, 0, 6), ("dense", 14, 0, 5)]}
# Fused RELU / RELU6 clamping bounds.
FUSED = {"input_widths": [6, 6], "seed": 3, "steps": [("dense_relu", 0, 0, 8), ("add_relu6", 1, 2, 0),
                                                      ("dense", 3, 0, 4)]}
# RESHAPE to 3-D, a negative-stride 3-D STRIDED_SLICE and a CONCATENATION on the last axis.
INTERLEAVE = {"input_widths": [8], "seed": 2, "steps": [("reshape", 0, 0, 1), ("dense", 1, 0, 3)]}


# Default run: no shrinking (each example converts a TF graph, several seconds); the slow run shrinks.
@settings(max_examples=2, deadline=None, derandomize=True, database=None,
          phases=(Phase.explicit, Phase.generate),
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@example(recipe=EVERY_KIND)
@example(recipe=INTERLEAVE)
@example(recipe=FUSED)
@given(recipe=recipes)
def test_random_graphs_are_bit_exact(recipe, tmp_path_factory):
    _check_recipe(recipe, tmp_path_factory)


@pytest.mark.slow
@settings(max_examples=60, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(recipe=recipes)
def test_many_random_graphs_are_bit_exact(recipe, tmp_path_factory):
    _check_recipe(recipe, tmp_path_factory)


@pytest.mark.parametrize("seed", [5, pytest.param(6, marks=pytest.mark.slow), pytest.param(8, marks=pytest.mark.slow)])
def test_logistic_and_tanh_are_bit_exact_for_every_int8_input(seed, tmp_path):
    """All 256 input codes through LOGISTIC and TANH (16 lanes x 16 invocations), as tables and evaluated."""
    recipe = {"input_widths": [16], "seed": seed, "steps": [("sigmoid", 0, 0, 1), ("tanh", 0, 0, 1)]}
    model_bytes = build_random_tflite(recipe)
    assert set(inspect_tflite(model_bytes).op_counts) == {"LOGISTIC", "TANH"}
    reference = TflmRuntime(model_bytes)
    name = reference.inputs[0].name
    all_codes = np.arange(-128, 128, dtype=np.int8).reshape(16, 1, 16)
    for tables in (True, False):
        generated = generate_c_model(model_bytes, tmp_path / f"c{tables}", activation_tables=tables)
        c_model = GeneratedCRuntime(model_bytes, generated, tmp_path / f"build{tables}")
        for codes in all_codes:
            expected = reference.invoke_codes({name: codes})
            actual = c_model.invoke_codes({name: codes})
            for output, values in expected.items():
                np.testing.assert_array_equal(actual[output], values, err_msg=f"{output}, tables={tables}")
