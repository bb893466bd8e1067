/* hm_kernels.h — hearmask's generic int8 kernels for generated models (C99, no allocation).
 *
 * Each kernel reproduces the integer arithmetic of the TensorFlow Lite Micro reference
 * kernels (TFLite 8-bit quantization specification) so that a generated model is bit-exact
 * with the TFLM interpreter. All quantization parameters (multipliers, shifts, offsets,
 * clamping bounds) are computed at generation time, exactly as TFLM's Prepare computes them
 * (hearmask.targets.codegen.tflm_arithmetic); the kernels only run integer code.
 *
 * FULLY_CONNECTED's int8 dot product has three interchangeable paths (integer sums, so all are
 * bit-exact): plain C; the DSP extension (SMLAD), automatic on Cortex-M4/M7/M33/M55 unless
 * -DHM_KERNELS_PLAIN_C; Helium/MVE, opt-in with -DHM_KERNELS_USE_MVE on a Cortex-M55 built
 * with -mfloat-abi=softfp or hard.
 *
 * Written for hearmask; the formulas follow the TFLite quantization spec and gemmlowp's
 * fixed-point documentation. Relies on two GCC/Clang behaviours C99 leaves to the
 * implementation: '>>' of a negative value is arithmetic, and converting an out-of-range
 * unsigned value to a signed type wraps.
 */
#ifndef HM_KERNELS_H
#define HM_KERNELS_H

#include <stdint.h>

/* FULLY_CONNECTED: output[b][o] = clamp(offset + requant(fused_bias[o] + sum_d w[o][d] * x[b][d])).
 * fused_bias = bias + input_offset * sum_d w[o][d] (int32, wrapping), which equals TFLM's
 * sum_d w * (x + input_offset) + bias modulo 2^32. Weights are symmetric (zero point 0). */
typedef struct {
    int32_t batches;
    int32_t accum_depth;
    int32_t output_depth;
    const int8_t *weights;      /* (output_depth, accum_depth), row-major */
    const int32_t *fused_bias;  /* (output_depth) */
    int32_t output_multiplier;  /* Q31 */
    int32_t output_shift;       /* > 0: left shift, < 0: rounding right shift */
    int32_t output_offset;      /* output zero point */
    int32_t activation_min;
    int32_t activation_max;
} hm_fully_connected_params_t;

/* ADD and SUB: both inputs rescaled to a common scale with 20 extra bits, summed (or
 * subtracted), rescaled to the output. A stride of 0 broadcasts a single-element input. */
typedef struct {
    int32_t size;
    int32_t left_shift;
    int32_t input1_offset;
    int32_t input1_multiplier;
    int32_t input1_shift;
    int32_t input1_stride;
    int32_t input2_offset;
    int32_t input2_multiplier;
    int32_t input2_shift;
    int32_t input2_stride;
    int32_t output_multiplier;
    int32_t output_shift;
    int32_t output_offset;
    int32_t activation_min;
    int32_t activation_max;
} hm_add_params_t;

/* MUL: clamp(output_offset + requant((x1 + offset1) * (x2 + offset2))). */
typedef struct {
    int32_t size;
    int32_t input1_offset;
    int32_t input1_stride;
    int32_t input2_offset;
    int32_t input2_stride;
    int32_t output_multiplier;
    int32_t output_shift;
    int32_t output_offset;
    int32_t activation_min;
    int32_t activation_max;
} hm_mul_params_t;

/* LOGISTIC and TANH (int8): the input is rescaled to Q4.27 and evaluated with gemmlowp-style
 * fixed-point logistic/tanh; |input - zero_point| >= input_range_radius saturates. */
typedef struct {
    int32_t size;
    int32_t input_zero_point;
    int32_t input_range_radius;
    int32_t input_multiplier;
    int32_t input_left_shift;
} hm_fixed_activation_params_t;

/* LOGISTIC or TANH by table: output[i] = table[input[i] + 128]. The 256 entries are the exact
 * results of hm_logistic/hm_tanh, computed at generation time. */
typedef struct {
    int32_t size;
    const int8_t *table; /* 256 entries, index = input code + 128 */
} hm_lookup_params_t;

/* A contiguous copy: length bytes from source + source_offset to target + target_offset.
 * STRIDED_SLICE, CONCATENATION, SPLIT and RESHAPE are lists of such runs. */
typedef struct {
    int32_t source_offset;
    int32_t target_offset;
    int32_t length;
} hm_copy_run_t;

void hm_fully_connected(const hm_fully_connected_params_t *params, const int8_t *input, int8_t *output);
void hm_add(const hm_add_params_t *params, const int8_t *input1, const int8_t *input2, int8_t *output);
void hm_sub(const hm_add_params_t *params, const int8_t *input1, const int8_t *input2, int8_t *output);
void hm_mul(const hm_mul_params_t *params, const int8_t *input1, const int8_t *input2, int8_t *output);
void hm_logistic(const hm_fixed_activation_params_t *params, const int8_t *input, int8_t *output);
void hm_tanh(const hm_fixed_activation_params_t *params, const int8_t *input, int8_t *output);
void hm_lookup(const hm_lookup_params_t *params, const int8_t *input, int8_t *output);
void hm_copy_runs(const hm_copy_run_t *runs, int32_t run_count, const int8_t *source, int8_t *target);

/* Fixed-point primitives (exposed for tests). */
int32_t hm_saturating_rounding_doubling_high_mul(int32_t a, int32_t b);
int32_t hm_rounding_divide_by_pot(int32_t x, int32_t exponent);
int32_t hm_multiply_by_quantized_multiplier(int32_t x, int32_t multiplier, int32_t shift);
int32_t hm_logistic_q4(int32_t input_q4);  /* Q4.27 in, Q0.31 out */
int32_t hm_tanh_q4(int32_t input_q4);      /* Q4.27 in, Q0.31 out */

#endif /* HM_KERNELS_H */
