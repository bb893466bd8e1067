"""Generated C (hearmask.targets.codegen) against the TFLM host interpreter, bit for bit (issue 7).

The tiny int8 network of tests/quantize/conftest.py runs whole utterances with its state
fed back; edited copies of it check the refusals; the cross-compilers check that the code
is bare-metal C99 without allocation or floating point.
"""

from __future__ import annotations

import ctypes
import importlib.util
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from hearmask.errors import HearmaskError
from hearmask.quantize.runtimes import TflmRuntime
from hearmask.targets.codegen import generate_c_model
from hearmask.targets.codegen import tflm_arithmetic as arithmetic
from hearmask.targets.codegen.graph import read_graph
from hearmask.targets.codegen.host_runtime import GeneratedCRuntime, host_compiler
from hearmask.targets.codegen.lowering import lower_graph
from hearmask.targets.codegen.planner import plan_arena

pytestmark = pytest.mark.skipif(host_compiler() is None, reason="needs a host C compiler (gcc)")

HOPS = 200
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


def _quantize_test_helpers():
    """tests/quantize/conftest.py as a module (with --import-mode=importlib conftests are not importable)."""
    path = Path(__file__).resolve().parents[1] / "quantize" / "conftest.py"
    spec = importlib.util.spec_from_file_location("hearmask_quantize_test_helpers", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def tiny_model():
    """(helpers module, int8 .tflite bytes) of the tiny calibrated joint network."""
    from hearmask.quantize.convert import convert_int8

    helpers = _quantize_test_helpers()
    _, quantized = helpers.calibrated_network(helpers.tiny_config())
    return helpers, convert_int8(quantized)


@pytest.fixture(scope="module")
def tiny_c(tiny_model, tmp_path_factory):
    """(generated model, its host runtime, the TFLM reference) for the tiny network."""
    _, model_bytes = tiny_model
    root = tmp_path_factory.mktemp("codegen")
    generated = generate_c_model(model_bytes, root / "c")
    return generated, GeneratedCRuntime(model_bytes, generated, root / "build"), TflmRuntime(model_bytes)


def test_tiny_model_is_bit_exact_over_utterances_with_state_feedback(tiny_model, tiny_c):
    helpers, _ = tiny_model
    generated, c_model, reference = tiny_c
    specs = {entry.name: entry.tensor.quantization for entry in reference.inputs}
    state_shape = reference.summary.input("state").tensor.shape
    num_features = reference.summary.input("features").tensor.shape[-1]
    for seed, audiogram_gain in ((3, 1.0), (4, 1.3)):
        features = helpers.feature_sequence(HOPS, num_features, seed)
        audiogram = specs["audiogram"].quantize(helpers.AUDIOGRAM * audiogram_gain)
        reference_state = c_state = np.zeros(state_shape, np.int8)
        distinct_states = set()
        for hop in range(HOPS):
            codes = {"features": specs["features"].quantize(features[hop:hop + 1]), "audiogram": audiogram}
            expected = reference.invoke_codes({**codes, "state": reference_state})
            actual = c_model.invoke_codes({**codes, "state": c_state})
            for name, values in expected.items():
                np.testing.assert_array_equal(actual[name], values, err_msg=f"utterance {seed}, hop {hop}, {name}")
            reference_state, c_state = expected["new_state"], actual["new_state"]
            distinct_states.add(c_state.tobytes())
        assert len(distinct_states) > HOPS // 4  # the feedback path really carries changing state


@pytest.fixture(scope="module")
def tiny_c_direct(tiny_model, tmp_path_factory):
    """The tiny network generated without activation tables (LOGISTIC/TANH evaluated per element)."""
    _, model_bytes = tiny_model
    root = tmp_path_factory.mktemp("codegen_direct")
    generated = generate_c_model(model_bytes, root / "c", activation_tables=False)
    assert "hm_logistic(" in generated.source_path.read_text() and "hm_lookup(" not in generated.source_path.read_text()
    return generated, GeneratedCRuntime(model_bytes, generated, root / "build"), TflmRuntime(model_bytes)


@pytest.mark.parametrize("variant", ["tables", "direct"])
def test_tiny_model_is_bit_exact_on_random_and_saturating_codes(variant, tiny_c, tiny_c_direct):
    _, c_model, reference = tiny_c if variant == "tables" else tiny_c_direct
    rng = np.random.default_rng(7)
    shapes = {entry.name: entry.tensor.shape for entry in reference.inputs}
    cases = [{name: np.full(shape, value, np.int8) for name, shape in shapes.items()} for value in (-128, 127, 0)]
    cases += [{name: rng.integers(-128, 128, shape).astype(np.int8) for name, shape in shapes.items()}
              for _ in range(100)]
    cases += [{name: rng.choice(np.array([-128, 127], np.int8), shape) for name, shape in shapes.items()}
              for _ in range(20)]
    for number, codes in enumerate(cases):
        expected = reference.invoke_codes(codes)
        actual = c_model.invoke_codes(codes)
        for name, values in expected.items():
            np.testing.assert_array_equal(actual[name], values, err_msg=f"case {number}, output {name}")


def test_outputs_may_alias_inputs_for_in_place_state_feedback(tiny_c):
    generated, c_model, _ = tiny_c
    rng = np.random.default_rng(11)
    inputs = {info.name: rng.integers(-128, 128, info.size).astype(np.int8) for info in generated.inputs}
    shapes = {entry.name: entry.tensor.shape for entry in c_model.inputs}
    separate = c_model.invoke_codes({name: values.reshape(shapes[name]) for name, values in inputs.items()})

    buffers = [inputs[info.name].copy() for info in generated.inputs]
    outputs = [np.zeros(info.size, np.int8) for info in generated.outputs]
    state_in = [info.name for info in generated.inputs].index("state")
    state_out = [info.name for info in generated.outputs].index("new_state")
    outputs[state_out] = buffers[state_in]  # the same memory
    step = c_model.library.hm_model_step
    step((ctypes.c_void_p * len(buffers))(*[b.ctypes.data for b in buffers]),
         (ctypes.c_void_p * len(outputs))(*[o.ctypes.data for o in outputs]))
    for info, values in zip(generated.outputs, outputs):
        np.testing.assert_array_equal(values, separate[info.name].reshape(-1), err_msg=info.name)


class _TensorInfo(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("size", ctypes.c_int32), ("scale", ctypes.c_float),
                ("zero_point", ctypes.c_int32)]


def test_interface_and_metadata_match_the_tflite(tiny_c):
    generated, c_model, reference = tiny_c
    header = generated.header_path.read_text()
    for line in ("#define HM_MODEL_NUM_INPUTS  3", "#define HM_MODEL_NUM_OUTPUTS 3",
                 f"#define HM_MODEL_NUM_OPS     {len(reference.summary.ops)}",
                 "void hm_model_step(const int8_t *const inputs[], int8_t *const outputs[]);",
                 "void hm_profile_op_begin(int op_index);", "void hm_profile_op_end(int op_index);",
                 "extern const char *const hm_model_op_names[HM_MODEL_NUM_OPS];"):
        assert line in header
    assert generated.op_names == tuple(op.name for op in reference.summary.ops)
    library = c_model.library
    for symbol, entries in (("hm_model_inputs", reference.inputs), ("hm_model_outputs", reference.outputs)):
        table = (_TensorInfo * len(entries)).in_dll(library, symbol)
        for row, entry in zip(table, entries):
            assert row.name.decode() == entry.name
            assert row.size == int(np.prod(entry.tensor.shape))
            assert row.scale == np.float32(entry.tensor.quantization.scale)
            assert row.zero_point == entry.tensor.quantization.zero_point
    names = (ctypes.c_char_p * len(generated.op_names)).in_dll(library, "hm_model_op_names")
    assert tuple(name.decode() for name in names) == generated.op_names


def test_arena_reuses_bytes_only_between_tensors_that_are_not_alive_together(tiny_model, tiny_c):
    _, model_bytes = tiny_model
    generated = tiny_c[0]
    graph = read_graph(model_bytes)
    lowered = lower_graph(graph)
    plan = plan_arena(graph, lowered)
    alive: dict[int, list[int]] = {}
    for position, op in enumerate(lowered):
        for index in (*op.reads, *op.writes):
            if index in plan.offsets:
                alive.setdefault(index, []).append(position)
    for entry in graph.outputs:
        alive[entry.tensor.index].append(len(lowered))
    spans = {index: (min(uses), max(uses)) for index, uses in alive.items()}
    for a in plan.offsets:
        for b in plan.offsets:
            if a < b and spans[a][0] <= spans[b][1] and spans[b][0] <= spans[a][1]:
                a_range = range(plan.offsets[a], plan.offsets[a] + graph.tensors[a].size)
                b_range = range(plan.offsets[b], plan.offsets[b] + graph.tensors[b].size)
                assert not set(a_range) & set(b_range), (graph.tensors[a].name, graph.tensors[b].name)
    assert generated.arena_bytes == plan.arena_bytes < plan.tensor_bytes


# ---- fixed-point primitives and TFLM Prepare arithmetic


def test_fixed_point_primitives_round_and_saturate_like_gemmlowp(tiny_c):
    """The doubling high multiply rounds ties up (ARM VQRDMULH); the power-of-two divide rounds them away from zero."""
    library = tiny_c[1].library
    for name in ("hm_saturating_rounding_doubling_high_mul", "hm_rounding_divide_by_pot",
                 "hm_multiply_by_quantized_multiplier", "hm_logistic_q4", "hm_tanh_q4"):
        getattr(library, name).restype = ctypes.c_int32
    srdhm = library.hm_saturating_rounding_doubling_high_mul
    assert srdhm(ctypes.c_int32(INT32_MIN), ctypes.c_int32(INT32_MIN)) == INT32_MAX
    assert srdhm(3, 2**30) == 2 and srdhm(-3, 2**30) == -1  # 1.5 -> 2, -1.5 -> -1
    assert srdhm(5, 2**29) == 1 and srdhm(-5, 2**29) == -1  # ±1.25 -> ±1
    divide = library.hm_rounding_divide_by_pot
    assert [divide(x, 1) for x in (5, -5, 4, -4)] == [3, -3, 2, -2]
    assert [divide(x, 2) for x in (6, -6, 7, -7, 5, -5)] == [2, -2, 2, -2, 1, -1]
    assert divide(ctypes.c_int32(INT32_MIN), 31) == -1 and divide(INT32_MAX, 31) == 1
    requantize = library.hm_multiply_by_quantized_multiplier
    assert requantize(100, 2**30, 1) == 100 and requantize(100, 2**30, -1) == 25
    assert requantize(-3, 2**30, 0) == -1 and requantize(-5, 2**30, -1) == -1  # -1.5 -> -1; -1.25 -> -1
    logistic, tanh = library.hm_logistic_q4, library.hm_tanh_q4
    assert logistic(0) == 2**30 and tanh(0) == 0
    for real in np.linspace(-7.9, 7.9, 97):
        raw = int(round(real * 2**27))
        assert abs(logistic(raw) / 2**31 - 1 / (1 + np.exp(-raw / 2**27))) < 1e-6
        assert abs(tanh(raw) / 2**31 - np.tanh(raw / 2**27)) < 1e-6


class _FixedActivationParams(ctypes.Structure):
    _fields_ = [(name, ctypes.c_int32) for name in ("size", "input_zero_point", "input_range_radius",
                                                     "input_multiplier", "input_left_shift")]


def test_activation_tables_equal_the_c_fixed_point_kernels_for_every_code(tiny_c):
    """The generation-time tables (Python integers) against hm_logistic/hm_tanh (C) for all 256 codes."""
    from hearmask.targets.codegen.activation_tables import activation_table

    library = tiny_c[1].library
    codes = np.arange(-128, 128, dtype=np.int8)
    outputs = np.zeros(256, np.int8)
    rng = np.random.default_rng(5)
    scales = np.concatenate([[1 / 128, 1 / 256, 0.05, 2**-20, 7.9], 10 ** rng.uniform(-4, 0.5, 40)])
    for scale in scales.astype(np.float32):
        zero_point = int(rng.integers(-128, 128))
        params = arithmetic.fixed_activation_params(float(scale), "test")
        c_params = _FixedActivationParams(256, zero_point, params.range_radius, params.multiplier, params.left_shift)
        for op_name, kernel in (("LOGISTIC", library.hm_logistic), ("TANH", library.hm_tanh)):
            kernel.argtypes, kernel.restype = [ctypes.c_void_p] * 3, None
            kernel(ctypes.addressof(c_params), codes.ctypes.data, outputs.ctypes.data)
            np.testing.assert_array_equal(activation_table(op_name, zero_point, float(scale)), outputs,
                                          err_msg=f"{op_name}, scale {scale}, zero point {zero_point}")


def test_tflm_prepare_arithmetic():
    assert [arithmetic.tflite_round(v) for v in (0.5, -0.5, 1.5, -2.5, 0.49999999999999994)] == [1, -1, 2, -3, 0]
    assert arithmetic.quantize_multiplier(0.5) == (2**30, 0)
    assert arithmetic.quantize_multiplier(1.0) == (2**30, 1)
    assert arithmetic.quantize_multiplier(0.75) == (3 * 2**29, 0)
    assert arithmetic.quantize_multiplier(1 - 2**-40) == (2**30, 1)  # mantissa rounds up to 1.0
    assert arithmetic.quantize_multiplier(2**-40) == (0, 0)  # flushed to zero below 2^-31
    params = arithmetic.fixed_activation_params(1 / 32, "test")  # 2^-5 * 2^27 = 2^22 -> frexp (0.5, 23)
    assert (params.multiplier, params.left_shift, params.range_radius) == (2**30, 23, 240)
    # SUB evaluates its multipliers in float32, ADD in double: they can differ in the last bits.
    scales = (0.0123456789, 0.0987654321, 0.0567)
    add, sub = arithmetic.add_multipliers(*scales, "add"), arithmetic.sub_multipliers(*scales, "sub")
    assert add.input2 == sub.input2 == (2**30, 0)
    assert abs(add.output[0] - sub.output[0]) < 2**8 and add.output[1] == sub.output[1]
    with pytest.raises(HearmaskError, match="outside"):
        arithmetic.fixed_activation_params(1e-12, "LOGISTIC")
    with pytest.raises(HearmaskError, match="RELU, RELU_N1_TO_1, RELU6"):
        arithmetic.activation_range(4, 0.1, 0, "ADD")


# ---- refusals


def _edited(model_bytes: bytes, edit) -> bytes:
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(model_bytes, 0)
    edit(model, schema)
    builder = flatbuffers.Builder(0)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _first_op(model, name: str, schema):
    graph = model.subgraphs[0]
    for operator in graph.operators:
        if model.operatorCodes[operator.opcodeIndex].builtinCode == getattr(schema.BuiltinOperator, name):
            return operator
    raise AssertionError(name)


def test_unsupported_op_is_refused_by_name(tiny_model, tmp_path):
    def to_abs(model, schema):
        code = schema.OperatorCodeT()
        code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.ABS
        model.operatorCodes.append(code)
        operator = _first_op(model, "TANH", schema)
        operator.opcodeIndex = len(model.operatorCodes) - 1

    with pytest.raises(HearmaskError, match=r"unsupported ops: ABS"):
        generate_c_model(_edited(tiny_model[1], to_abs), tmp_path)


def test_float_tensor_is_refused_by_name(tiny_model, tmp_path):
    def to_float(model, schema):
        operator = _first_op(model, "TANH", schema)
        model.subgraphs[0].tensors[operator.outputs[0]].type = schema.TensorType.FLOAT32

    with pytest.raises(HearmaskError, match=r"float or non-int8 ops: .*TANH \(float32"):
        generate_c_model(_edited(tiny_model[1], to_float), tmp_path)


def test_per_channel_weights_are_refused_by_name(tiny_model, tmp_path):
    def to_per_channel(model, schema):
        operator = _first_op(model, "FULLY_CONNECTED", schema)
        weights = model.subgraphs[0].tensors[operator.inputs[1]]
        channels = int(weights.shape[0])
        weights.quantization.scale = [float(weights.quantization.scale[0])] * channels
        weights.quantization.zeroPoint = [0] * channels
        weights.quantization.quantizedDimension = 0

    with pytest.raises(HearmaskError, match=r"op 0 \(FULLY_CONNECTED\).*per-channel quantization"):
        generate_c_model(_edited(tiny_model[1], to_per_channel), tmp_path)


def test_bad_prefix_is_refused(tiny_model, tmp_path):
    with pytest.raises(HearmaskError, match="not usable"):
        generate_c_model(tiny_model[1], tmp_path, prefix="1model")


# ---- bare-metal builds


ARM_GCC = shutil.which("arm-none-eabi-gcc")
# Soft-float helpers (any float or double arithmetic on a Cortex-M3) and allocation.
_FORBIDDEN_SYMBOL_PREFIXES = ("__aeabi_f", "__aeabi_d", "__aeabi_i2f", "__aeabi_i2d", "__aeabi_l2f", "__aeabi_l2d",
                              "__aeabi_ui2", "__aeabi_ul2", "malloc", "calloc", "realloc", "free", "_sbrk")


@pytest.mark.skipif(ARM_GCC is None, reason="needs arm-none-eabi-gcc (Debian gcc-arm-none-eabi)")
@pytest.mark.parametrize("cpu_flags", [("-mcpu=cortex-m3",), ("-mcpu=cortex-m55",),
                                       ("-mcpu=cortex-m55", "-mfloat-abi=hard", "-DHM_KERNELS_USE_MVE")],
                         ids=["cortex-m3", "cortex-m55", "cortex-m55-mve"])
def test_generated_code_cross_compiles_without_allocation_or_float(tiny_c, tmp_path, cpu_flags):
    generated = tiny_c[0]
    objects = []
    for profile in ((), ("-DHM_MODEL_PROFILE",)):
        for source in generated.c_sources:
            target = tmp_path / f"{source.stem}{'_profile' if profile else ''}.o"
            subprocess.run([ARM_GCC, *cpu_flags, "-mthumb", "-std=c99", "-O2", "-c", "-Wall", "-Wextra", "-Werror",
                            *profile, str(source), "-o", str(target)], check=True, capture_output=True, text=True)
            objects.append(target)
    undefined = subprocess.run([ARM_GCC.replace("gcc", "nm"), "-u", *map(str, objects)], check=True,
                               capture_output=True, text=True).stdout.split()
    assert not [name for name in undefined if name.startswith(_FORBIDDEN_SYMBOL_PREFIXES)]
    sizes = subprocess.run([ARM_GCC.replace("gcc", "size"), str(objects[0])], check=True, capture_output=True,
                           text=True).stdout.splitlines()[1].split()
    text_bytes, data_bytes, bss_bytes = (int(value) for value in sizes[:3])
    assert data_bytes == 0  # every table is const (flash)
    assert bss_bytes == (generated.arena_bytes + 3) // 4 * 4  # the (word-aligned) arena is the only RAM
    assert text_bytes >= generated.const_bytes
