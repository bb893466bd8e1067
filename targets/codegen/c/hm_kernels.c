/* hm_kernels.c — see hm_kernels.h. Integer-only; no allocation, no floating point. */
#include "hm_kernels.h"

#define HM_INT32_MAX ((int32_t)0x7FFFFFFF)
#define HM_INT32_MIN ((int32_t)(-HM_INT32_MAX - 1))

/* round(a * b / 2^31), ties away from zero, saturating the one overflow case (-1 * -1);
 * ARM's VQRDMULH. The division truncates toward zero, done with shifts (no 64-bit divide). */
int32_t hm_saturating_rounding_doubling_high_mul(int32_t a, int32_t b)
{
    int64_t product;
    if (a == b && a == HM_INT32_MIN) {
        return HM_INT32_MAX;
    }
    product = (int64_t)a * (int64_t)b;
    product += (product >= 0) ? ((int64_t)1 << 30) : (1 - ((int64_t)1 << 30));
    if (product < 0) {
        product += ((int64_t)1 << 31) - 1;  /* truncate toward zero like C division */
    }
    return (int32_t)(product >> 31);
}

/* x / 2^exponent rounded to nearest, ties away from zero (exponent in [0, 31]). */
int32_t hm_rounding_divide_by_pot(int32_t x, int32_t exponent)
{
    const int32_t mask = (int32_t)(((uint32_t)1 << exponent) - 1u);
    const int32_t remainder = x & mask;
    const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

/* TFLite's double-rounding requantization: (x * 2^max(shift,0)) * multiplier / 2^31, then a
 * rounding right shift by max(-shift, 0). The left shift wraps like TFLM's int32 multiply. */
int32_t hm_multiply_by_quantized_multiplier(int32_t x, int32_t multiplier, int32_t shift)
{
    const int32_t left_shift = shift > 0 ? shift : 0;
    const int32_t right_shift = shift > 0 ? 0 : -shift;
    const int32_t shifted = (int32_t)((uint32_t)x << left_shift);
    return hm_rounding_divide_by_pot(hm_saturating_rounding_doubling_high_mul(shifted, multiplier), right_shift);
}

static int8_t hm_clamp_to_int8(int32_t value, int32_t low, int32_t high)
{
    if (value < low) {
        value = low;
    }
    if (value > high) {
        value = high;
    }
    return (int8_t)value;
}

/* sum of a[i] * b[i] for i < length, added to accumulator (int32, wrapping like TFLM's loop; the
 * order of additions does not change a wrapping integer sum, so every path below is bit-exact).
 * Paths: Helium (opt-in, -DHM_KERNELS_USE_MVE on an MVE core with an FP ABI of softfp/hard), the
 * DSP extension (automatic where __ARM_FEATURE_DSP; -DHM_KERNELS_PLAIN_C turns it off), plain C. */
#if defined(HM_KERNELS_USE_MVE) && defined(__ARM_FEATURE_MVE) && (__ARM_FEATURE_MVE & 1)
#include <arm_mve.h>
static int32_t hm_dot_int8(const int8_t *a, const int8_t *b, int32_t length, int32_t accumulator)
{
    while (length > 0) {
        /* Helium: 16 lanes per step; the tail predicate keeps loads inside the arrays. */
        const mve_pred16_t active = vctp8q((uint32_t)length);
        const int8x16_t a_lanes = vldrbq_z_s8(a, active);
        const int8x16_t b_lanes = vldrbq_z_s8(b, active);
        accumulator = vmladavaq_s8(accumulator, a_lanes, b_lanes);
        a += 16;
        b += 16;
        length -= 16;
    }
    return accumulator;
}
#elif defined(__ARM_FEATURE_DSP) && (__ARM_FEATURE_DSP == 1) && !defined(HM_KERNELS_PLAIN_C)
#include <arm_acle.h>
#include <string.h>
static uint32_t hm_rotate_right_8(uint32_t x)
{
    return (x >> 8) | (x << 24);
}

static int32_t hm_dot_int8(const int8_t *a, const int8_t *b, int32_t length, int32_t accumulator)
{
    /* DSP extension (Cortex-M4/M7/M33/M55): SXTB16 widens bytes 0,2 (and, rotated, 1,3) to
     * 16-bit pairs; SMLAD adds both pair products, wrapping like the plain loop. */
    int32_t index = 0;
    for (; index + 4 <= length; index += 4) {
        uint32_t a_bytes, b_bytes;
        memcpy(&a_bytes, a + index, 4);
        memcpy(&b_bytes, b + index, 4);
        accumulator = (int32_t)__smlad(__sxtb16(a_bytes), __sxtb16(b_bytes), (uint32_t)accumulator);
        accumulator = (int32_t)__smlad(__sxtb16(hm_rotate_right_8(a_bytes)), __sxtb16(hm_rotate_right_8(b_bytes)),
                                       (uint32_t)accumulator);
    }
    for (; index < length; ++index) {
        accumulator += (int32_t)a[index] * (int32_t)b[index];
    }
    return accumulator;
}
#else
static int32_t hm_dot_int8(const int8_t *a, const int8_t *b, int32_t length, int32_t accumulator)
{
    int32_t index;
    for (index = 0; index < length; ++index) {
        accumulator += (int32_t)a[index] * (int32_t)b[index];
    }
    return accumulator;
}
#endif

void hm_fully_connected(const hm_fully_connected_params_t *params, const int8_t *input, int8_t *output)
{
    const int32_t depth = params->accum_depth;
    int32_t batch;
    for (batch = 0; batch < params->batches; ++batch) {
        const int8_t *row_input = input + batch * depth;
        int8_t *row_output = output + batch * params->output_depth;
        int32_t channel;
        for (channel = 0; channel < params->output_depth; ++channel) {
            int32_t accumulator = hm_dot_int8(params->weights + channel * depth, row_input, depth,
                                              params->fused_bias[channel]);
            accumulator = hm_multiply_by_quantized_multiplier(accumulator, params->output_multiplier,
                                                              params->output_shift) + params->output_offset;
            row_output[channel] = hm_clamp_to_int8(accumulator, params->activation_min, params->activation_max);
        }
    }
}

/* Shared body of ADD and SUB; 'sign' is +1 or -1 on the rescaled second input. */
static void hm_add_or_sub(const hm_add_params_t *params, const int8_t *input1, const int8_t *input2,
                          int8_t *output, int32_t sign)
{
    int32_t index;
    for (index = 0; index < params->size; ++index) {
        const int32_t value1 = params->input1_offset + input1[index * params->input1_stride];
        const int32_t value2 = params->input2_offset + input2[index * params->input2_stride];
        const int32_t shifted1 = (int32_t)((uint32_t)value1 << params->left_shift);
        const int32_t shifted2 = (int32_t)((uint32_t)value2 << params->left_shift);
        /* The input shifts are <= 0, so these are TFLM's MultiplyByQuantizedMultiplierSmallerThanOneExp. */
        const int32_t scaled1 = hm_multiply_by_quantized_multiplier(shifted1, params->input1_multiplier,
                                                                    params->input1_shift);
        const int32_t scaled2 = hm_multiply_by_quantized_multiplier(shifted2, params->input2_multiplier,
                                                                    params->input2_shift);
        const int32_t combined = sign > 0 ? scaled1 + scaled2 : scaled1 - scaled2;
        const int32_t result = hm_multiply_by_quantized_multiplier(combined, params->output_multiplier,
                                                                   params->output_shift) + params->output_offset;
        output[index] = hm_clamp_to_int8(result, params->activation_min, params->activation_max);
    }
}

void hm_add(const hm_add_params_t *params, const int8_t *input1, const int8_t *input2, int8_t *output)
{
    hm_add_or_sub(params, input1, input2, output, 1);
}

void hm_sub(const hm_add_params_t *params, const int8_t *input1, const int8_t *input2, int8_t *output)
{
    hm_add_or_sub(params, input1, input2, output, -1);
}

void hm_mul(const hm_mul_params_t *params, const int8_t *input1, const int8_t *input2, int8_t *output)
{
    int32_t index;
    for (index = 0; index < params->size; ++index) {
        const int32_t value1 = params->input1_offset + input1[index * params->input1_stride];
        const int32_t value2 = params->input2_offset + input2[index * params->input2_stride];
        const int32_t result = params->output_offset +
            hm_multiply_by_quantized_multiplier(value1 * value2, params->output_multiplier, params->output_shift);
        output[index] = hm_clamp_to_int8(result, params->activation_min, params->activation_max);
    }
}

/* ---- gemmlowp-style fixed-point logistic and tanh (raw int32 values; Qm.n has m integer bits). */

/* x * 2^exponent, saturating to the int32 range (exponent in [1, 30]). */
static int32_t hm_saturating_shift_left(int32_t x, int32_t exponent)
{
    const int32_t threshold = (int32_t)(((uint32_t)1 << (31 - exponent)) - 1u);
    if (x > threshold) {
        return HM_INT32_MAX;
    }
    if (x < -threshold) {
        return HM_INT32_MIN;
    }
    return (int32_t)((uint32_t)x << exponent);
}

/* exp(a) for a in [-1/4, 0), Q0.31 in and out: 4th-order Taylor expansion around -1/8. */
static int32_t hm_exp_on_interval_between_negative_one_quarter_and_0_excl(int32_t a)
{
    const int32_t exp_minus_one_eighth = 1895147668; /* exp(-1/8) in Q0.31 */
    const int32_t one_third = 715827883;             /* 1/3 in Q0.31 */
    const int32_t x = a + ((int32_t)1 << 28);        /* a + 1/8 */
    const int32_t x2 = hm_saturating_rounding_doubling_high_mul(x, x);
    const int32_t x3 = hm_saturating_rounding_doubling_high_mul(x2, x);
    const int32_t x4 = hm_saturating_rounding_doubling_high_mul(x2, x2);
    const int32_t x4_over_4 = hm_rounding_divide_by_pot(x4, 2);
    const int32_t polynomial = hm_rounding_divide_by_pot(
        hm_saturating_rounding_doubling_high_mul(x4_over_4 + x3, one_third) + x2, 1);
    return exp_minus_one_eighth + hm_saturating_rounding_doubling_high_mul(exp_minus_one_eighth, x + polynomial);
}

/* exp(a) for a <= 0 given in Q(integer_bits).(31 - integer_bits); result in Q0.31. The input is
 * split into a remainder in [-1/4, 0) and multiples of 1/4, 1/2, 1, 2, ... whose exponentials
 * are constants (exp(-2^k) in Q0.31). */
static int32_t hm_exp_on_negative_values(int32_t a, int32_t integer_bits)
{
    static const int32_t exp_of_minus_power_of_two[7] = {
        1672461947, /* exp(-1/4) */
        1302514674, /* exp(-1/2) */
        790015084,  /* exp(-1) */
        290630308,  /* exp(-2) */
        39332535,   /* exp(-4) */
        720401,     /* exp(-8) */
        242         /* exp(-16) */
    };
    const int32_t fractional_bits = 31 - integer_bits;
    const int32_t one_quarter = (int32_t)1 << (fractional_bits - 2);
    const int32_t a_mod_quarter_minus_quarter = (a & (one_quarter - 1)) - one_quarter;
    const int32_t remainder = a_mod_quarter_minus_quarter - a;
    int32_t result = hm_exp_on_interval_between_negative_one_quarter_and_0_excl(
        hm_saturating_shift_left(a_mod_quarter_minus_quarter, integer_bits));
    int32_t k;
    for (k = 0; k < 7; ++k) {
        const int32_t exponent = k - 2; /* this constant is exp(-2^exponent) */
        if (integer_bits > exponent) {
            const int32_t bit = (int32_t)1 << (fractional_bits + exponent);
            if (remainder & bit) {
                result = hm_saturating_rounding_doubling_high_mul(result, exp_of_minus_power_of_two[k]);
            }
        }
    }
    if (integer_bits > 5 && a < -((int32_t)1 << (36 - integer_bits))) {
        result = 0; /* below -32 */
    }
    return a == 0 ? HM_INT32_MAX : result;
}

/* Newton-Raphson reciprocal of (1 + a)/2 for a in (0, 1], Q0.31 in, Q2.29 out. */
static int32_t hm_reciprocal_of_half_one_plus_x(int32_t a)
{
    const int32_t constant_48_over_17 = 1515870810;      /* Q2.29 */
    const int32_t constant_neg_32_over_17 = -1010580540; /* Q2.29 */
    const int32_t one_q2 = (int32_t)1 << 29;
    /* rounding half sum of a and 1 (Q0.31 one = INT32_MAX) */
    const int64_t sum = (int64_t)a + (int64_t)HM_INT32_MAX;
    const int32_t half_denominator = (int32_t)((sum + (sum >= 0 ? 1 : -1)) / 2);
    int32_t x = constant_48_over_17 + hm_saturating_rounding_doubling_high_mul(half_denominator,
                                                                               constant_neg_32_over_17);
    int32_t iteration;
    for (iteration = 0; iteration < 3; ++iteration) {
        const int32_t half_denominator_times_x = hm_saturating_rounding_doubling_high_mul(half_denominator, x);
        const int32_t one_minus = one_q2 - half_denominator_times_x;
        x = x + hm_saturating_shift_left(hm_saturating_rounding_doubling_high_mul(x, one_minus), 2);
    }
    return x;
}

/* logistic(a), a in Q4.27, result in Q0.31. */
int32_t hm_logistic_q4(int32_t a)
{
    const int32_t magnitude = a > 0 ? a : (int32_t)(0u - (uint32_t)a);
    const int32_t exp_of_minus = hm_exp_on_negative_values((int32_t)(0u - (uint32_t)magnitude), 4);
    /* 1 / (1 + e) = (2 / (1 + e)) / 2: Q2.29 -> Q1.30 (same raw) -> Q0.31 */
    const int32_t reciprocal = hm_reciprocal_of_half_one_plus_x(exp_of_minus);
    const int32_t positive = hm_saturating_shift_left(reciprocal, 1);
    if (a == 0) {
        return (int32_t)1 << 30;
    }
    return a > 0 ? positive : HM_INT32_MAX - positive;
}

/* tanh(a), a in Q4.27, result in Q0.31: tanh(|a|) = (1 - exp(-2|a|)) / (1 + exp(-2|a|)). */
int32_t hm_tanh_q4(int32_t a)
{
    const int32_t negative_magnitude = a < 0 ? a : (int32_t)(0u - (uint32_t)a);
    /* -2|a| in Q5.26 has the same raw value as -|a| in Q4.27 */
    const int32_t exp_value = hm_exp_on_negative_values(negative_magnitude, 5);
    const int32_t reciprocal = hm_reciprocal_of_half_one_plus_x(exp_value);
    /* (1 - e)/(1 + e) = 2/(1 + e) - 1, Q2.29 -> Q0.31 */
    const int32_t magnitude = hm_saturating_shift_left(reciprocal - ((int32_t)1 << 29), 2);
    if (a == 0) {
        return 0;
    }
    return a < 0 ? (int32_t)(0u - (uint32_t)magnitude) : magnitude;
}

void hm_logistic(const hm_fixed_activation_params_t *params, const int8_t *input, int8_t *output)
{
    int32_t index;
    for (index = 0; index < params->size; ++index) {
        const int32_t centred = (int32_t)input[index] - params->input_zero_point;
        if (centred <= -params->input_range_radius) {
            output[index] = -128;
        } else if (centred >= params->input_range_radius) {
            output[index] = 127;
        } else {
            const int32_t input_q4 = hm_multiply_by_quantized_multiplier(centred, params->input_multiplier,
                                                                         params->input_left_shift);
            /* Q0.31 -> 1/256 steps, zero point -128 */
            const int32_t scaled = hm_rounding_divide_by_pot(hm_logistic_q4(input_q4), 23) - 128;
            output[index] = hm_clamp_to_int8(scaled, -128, 127);
        }
    }
}

void hm_tanh(const hm_fixed_activation_params_t *params, const int8_t *input, int8_t *output)
{
    int32_t index;
    for (index = 0; index < params->size; ++index) {
        const int32_t centred = (int32_t)input[index] - params->input_zero_point;
        if (centred <= -params->input_range_radius) {
            output[index] = -128;
        } else if (centred >= params->input_range_radius) {
            output[index] = 127;
        } else {
            const int32_t input_q4 = hm_multiply_by_quantized_multiplier(centred, params->input_multiplier,
                                                                         params->input_left_shift);
            /* Q0.31 -> 1/128 steps, zero point 0 */
            const int32_t scaled = hm_rounding_divide_by_pot(hm_tanh_q4(input_q4), 24);
            output[index] = hm_clamp_to_int8(scaled, -128, 127);
        }
    }
}

void hm_lookup(const hm_lookup_params_t *params, const int8_t *input, int8_t *output)
{
    int32_t index;
    for (index = 0; index < params->size; ++index) {
        output[index] = params->table[(int32_t)input[index] + 128];
    }
}

void hm_copy_runs(const hm_copy_run_t *runs, int32_t run_count, const int8_t *source, int8_t *target)
{
    int32_t run;
    for (run = 0; run < run_count; ++run) {
        const int8_t *from = source + runs[run].source_offset;
        int8_t *to = target + runs[run].target_offset;
        int32_t index;
        for (index = 0; index < runs[run].length; ++index) {
            to[index] = from[index];
        }
    }
}
