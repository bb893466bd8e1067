/*
 * main.c -- hearmask firmware for the QEMU Cortex-M boards: the protocol loop around a
 * generated int8 model (hm_model.h: hm_model_step and its hm_tensor_info_t tables).
 *
 * Serves HELLO/INFO, RESET, INFER and BENCH (PROTOCOL.md) on UART0, polled. Every
 * duration it reports is a QEMU instruction count (device_time unit 3, INSTRUCTIONS),
 * measured with SysTick under `-icount shift=0`: not cycles and not time on real hardware.
 * Built with -DHM_MODEL_PROFILE, the model calls hm_profile_op_begin/end around each op and
 * BENCH can return per-op counts.
 *
 * All memory is static: the receive/transmit buffers, a pool for the model's input and
 * output tensors, and the BENCH samples.
 */
#include <stdint.h>
#include <string.h>

#include "board.h"
#include "hm_model.h"
#include "hm_proto.h"
#include "timing.h"
#include "uart_cmsdk.h"

#ifndef HM_FIRMWARE_MAX_PAYLOAD_BYTES
#define HM_FIRMWARE_MAX_PAYLOAD_BYTES 65536u
#endif
#ifndef HM_FIRMWARE_TENSOR_POOL_BYTES
#define HM_FIRMWARE_TENSOR_POOL_BYTES 65536u
#endif
#ifndef HM_MODEL_SHA256_INIT
#define HM_MODEL_SHA256_INIT {0} /* unknown: the builder passes the .tflite's digest when it has it */
#endif
#define HM_FIRMWARE_VERSION "0.1.0"

#ifdef HM_MODEL_PROFILE
#define HM_RUNTIME_NAME "hearmask generated C int8 " HM_FIRMWARE_VERSION " (per-op profiling)"
#define HM_CAPABILITIES (HM_CAP_INFER | HM_CAP_BENCH | HM_CAP_RESET | HM_CAP_PER_OP_COUNTS)
#else
#define HM_RUNTIME_NAME "hearmask generated C int8 " HM_FIRMWARE_VERSION
#define HM_CAPABILITIES (HM_CAP_INFER | HM_CAP_BENCH | HM_CAP_RESET)
#endif

static uint8_t rx_buffer[HM_RX_BUFFER_BYTES(HM_FIRMWARE_MAX_PAYLOAD_BYTES)];
static uint8_t tx_buffer[HM_TX_BUFFER_BYTES(HM_FIRMWARE_MAX_PAYLOAD_BYTES)];
static int8_t tensor_pool[HM_FIRMWARE_TENSOR_POOL_BYTES] __attribute__((aligned(8)));
static const int8_t *model_inputs[HM_MODEL_NUM_INPUTS];
static int8_t *model_outputs[HM_MODEL_NUM_OUTPUTS];
static uint32_t tensor_pool_needed_bytes;
static uint32_t bench_samples[HM_MAX_BENCH_SAMPLES];
static uint32_t bench_scratch[HM_MAX_BENCH_SAMPLES];
static const uint8_t model_sha256[HM_SHA256_BYTES] = HM_MODEL_SHA256_INIT;
static hm_device_t device;

#ifdef HM_MODEL_PROFILE
static uint64_t op_ticks[HM_MODEL_NUM_OPS];
static uint32_t op_values[HM_MODEL_NUM_OPS];
static uint32_t op_start_tick;

void hm_profile_op_begin(int op_index)
{
    (void)op_index;
    op_start_tick = hm_timer_now();
}

void hm_profile_op_end(int op_index)
{
    uint32_t end = hm_timer_now();
    if (op_index >= 0 && op_index < HM_MODEL_NUM_OPS) {
        op_ticks[op_index] += hm_timer_elapsed(op_start_tick, end);
    }
}
#endif

/* ------------------------------------------------------------------ tensors */

static uint32_t align4(uint32_t n)
{
    return (n + 3u) & ~3u;
}

/* Carve the pool into the model's inputs and outputs; 0 when it is too small. */
static int layout_tensors(void)
{
    uint32_t offset = 0;
    int i;
    for (i = 0; i < HM_MODEL_NUM_INPUTS; ++i) {
        model_inputs[i] = tensor_pool + offset;
        offset += align4((uint32_t)hm_model_inputs[i].size);
    }
    for (i = 0; i < HM_MODEL_NUM_OUTPUTS; ++i) {
        model_outputs[i] = tensor_pool + offset;
        offset += align4((uint32_t)hm_model_outputs[i].size);
    }
    tensor_pool_needed_bytes = offset;
    return offset <= HM_FIRMWARE_TENSOR_POOL_BYTES;
}

static void clear_inputs(void)
{
    int i;
    for (i = 0; i < HM_MODEL_NUM_INPUTS; ++i) {
        memset((void *)model_inputs[i], 0, (size_t)hm_model_inputs[i].size);
    }
}

static int check_pool(hm_text_t *text)
{
    if (tensor_pool_needed_bytes <= HM_FIRMWARE_TENSOR_POOL_BYTES) {
        return HM_OK;
    }
    hm_text_str(text, "the model's tensors need ");
    hm_text_u32(text, tensor_pool_needed_bytes);
    hm_text_str(text, " bytes; the firmware's pool holds ");
    hm_text_u32(text, HM_FIRMWARE_TENSOR_POOL_BYTES);
    hm_text_str(text, " (rebuild with -DHM_FIRMWARE_TENSOR_POOL_BYTES=N)");
    return HM_ERR_INTERNAL;
}

static void describe_inputs(hm_text_t *text)
{
    int i;
    hm_text_str(text, "; the model takes ");
    hm_text_u32(text, HM_MODEL_NUM_INPUTS);
    hm_text_str(text, " int8 inputs:");
    for (i = 0; i < HM_MODEL_NUM_INPUTS; ++i) {
        hm_text_str(text, i ? ", " : " ");
        hm_text_str(text, hm_model_inputs[i].name);
        hm_text_str(text, " (");
        hm_text_i32(text, hm_model_inputs[i].size);
        hm_text_str(text, " values)");
    }
}

static int tensor_mismatch(hm_text_t *text, const char *what, const hm_tensor_view_t *tensor, uint32_t value)
{
    hm_text_str(text, "INFER tensor ");
    if (tensor != NULL && tensor->name_len) {
        hm_text_str(text, "'");
        hm_text_strn(text, tensor->name, tensor->name_len);
        hm_text_str(text, "' ");
    }
    hm_text_str(text, what);
    hm_text_u32(text, value);
    describe_inputs(text);
    return HM_ERR_TENSOR_MISMATCH;
}

/* Match the request's tensors to the model's inputs (all by name, or all by position). */
static int match_inputs(const hm_tensor_view_t *tensors, uint32_t count, const hm_tensor_view_t **matched,
                        hm_text_t *text)
{
    uint32_t named = 0;
    uint32_t j;
    int i;
    for (j = 0; j < count; ++j) {
        named += tensors[j].name_len ? 1u : 0u;
    }
    if (named != 0 && named != count) {
        hm_text_str(text, "INFER tensors must be all named or all unnamed (matched by position)");
        describe_inputs(text);
        return HM_ERR_TENSOR_MISMATCH;
    }
    if (count != (uint32_t)HM_MODEL_NUM_INPUTS) {
        return tensor_mismatch(text, "count is ", NULL, count);
    }
    for (i = 0; i < HM_MODEL_NUM_INPUTS; ++i) {
        const hm_tensor_info_t *info = &hm_model_inputs[i];
        const hm_tensor_view_t *tensor = NULL;
        if (named) {
            size_t name_len = strlen(info->name);
            for (j = 0; j < count; ++j) {
                if (tensors[j].name_len == name_len && memcmp(tensors[j].name, info->name, name_len) == 0) {
                    tensor = &tensors[j];
                    break;
                }
            }
            if (tensor == NULL) {
                hm_text_str(text, "INFER has no tensor named '");
                hm_text_str(text, info->name);
                hm_text_str(text, "'");
                describe_inputs(text);
                return HM_ERR_TENSOR_MISMATCH;
            }
        } else {
            tensor = &tensors[i];
        }
        if (tensor->dtype != HM_DTYPE_INT8) {
            return tensor_mismatch(text, "has dtype code ", tensor, tensor->dtype);
        }
        if (tensor->elements != (uint32_t)info->size) {
            return tensor_mismatch(text, "has element count ", tensor, tensor->elements);
        }
        matched[i] = tensor;
    }
    return HM_OK;
}

/* One model step; returns its duration in SysTick ticks (deterministic under -icount). */
static uint32_t timed_step(void)
{
    uint32_t start;
    hm_timer_restart();
    start = hm_timer_now();
    hm_model_step(model_inputs, model_outputs);
    return hm_timer_elapsed(start, hm_timer_now());
}

/* ------------------------------------------------------------------ handlers */

static void write_info(hm_writer_t *reply, uint32_t nonce)
{
    hm_info_t info;
    memset(&info, 0, sizeof(info));
    info.nonce = nonce;
    info.kind = HM_KIND_EMULATED;
    info.capabilities = HM_CAPABILITIES;
    info.clock_hz = 0; /* QEMU runs no real clock: counts are instructions */
#ifdef HM_MODEL_ARENA_BYTES
    info.arena_bytes = HM_MODEL_ARENA_BYTES; /* the generated code's static activation arena */
#else
    info.arena_bytes = 0; /* unknown */
#endif
    info.max_payload_bytes = HM_FIRMWARE_MAX_PAYLOAD_BYTES;
    memcpy(info.model_sha256, model_sha256, HM_SHA256_BYTES);
    info.target_name = HM_BOARD_NAME " (QEMU " HM_CPU_NAME ")";
    info.runtime_name = HM_RUNTIME_NAME;
    hm_write_info(reply, &info);
}

static int on_hello(void *context, const hm_frame_t *request, hm_writer_t *reply, uint8_t *reply_type,
                    hm_text_t *text)
{
    hm_reader_t r;
    uint32_t nonce;
    (void)context;
    hm_reader_init(&r, request->payload, request->payload_len);
    nonce = hm_read_u32(&r);
    if (r.short_read || r.offset != r.length) {
        hm_text_str(text, "HELLO: payload is ");
        hm_text_u32(text, request->payload_len);
        hm_text_str(text, " bytes; expected 4 (u32 nonce)");
        return HM_ERR_MALFORMED_PAYLOAD;
    }
    write_info(reply, nonce);
    *reply_type = HM_MSG_INFO;
    return HM_OK;
}

static int on_reset(void *context, const hm_frame_t *request, hm_writer_t *reply, uint8_t *reply_type,
                    hm_text_t *text)
{
    (void)context;
    if (request->payload_len != 0) {
        hm_text_str(text, "RESET: payload is ");
        hm_text_u32(text, request->payload_len);
        hm_text_str(text, " bytes; expected none");
        return HM_ERR_MALFORMED_PAYLOAD;
    }
    if (tensor_pool_needed_bytes <= HM_FIRMWARE_TENSOR_POOL_BYTES) {
        clear_inputs(); /* BENCH runs on zeros again until the next INFER */
    }
    write_info(reply, 0);
    *reply_type = HM_MSG_INFO;
    return HM_OK;
}

static int on_infer(void *context, const hm_frame_t *request, hm_writer_t *reply, uint8_t *reply_type,
                    hm_text_t *text)
{
    hm_tensor_view_t tensors[HM_MAX_TENSORS];
    const hm_tensor_view_t *matched[HM_MODEL_NUM_INPUTS];
    hm_reader_t r;
    uint32_t count = 0;
    uint32_t ticks;
    int status;
    int i;
    (void)context;
    status = check_pool(text);
    if (status != HM_OK) {
        return status;
    }
    hm_reader_init(&r, request->payload, request->payload_len);
    status = hm_parse_tensor_block(&r, tensors, HM_MAX_TENSORS, &count, text);
    if (status != HM_OK) {
        return status;
    }
    status = match_inputs(tensors, count, matched, text);
    if (status != HM_OK) {
        return status;
    }
    for (i = 0; i < HM_MODEL_NUM_INPUTS; ++i) {
        memcpy((void *)model_inputs[i], matched[i]->data, matched[i]->data_bytes);
    }
    ticks = timed_step();
    hm_write_device_time(reply, hm_ticks_to_instructions(ticks), HM_UNIT_INSTRUCTIONS);
    hm_write_tensor_block_header(reply, (uint8_t)HM_MODEL_NUM_OUTPUTS);
    for (i = 0; i < HM_MODEL_NUM_OUTPUTS; ++i) {
        uint16_t dims[1];
        if (hm_model_outputs[i].size > 0xFFFF) {
            hm_text_str(text, "output ");
            hm_text_str(text, hm_model_outputs[i].name);
            hm_text_str(text, " has more than 65535 values, the largest dimension the protocol carries");
            return HM_ERR_INTERNAL;
        }
        dims[0] = (uint16_t)hm_model_outputs[i].size;
        hm_write_tensor_header(reply, HM_DTYPE_INT8, 1, dims, hm_model_outputs[i].name);
        hm_write_bytes(reply, model_outputs[i], (uint32_t)hm_model_outputs[i].size);
    }
    *reply_type = HM_MSG_INFER_RESULT;
    return HM_OK;
}

static int on_bench(void *context, const hm_frame_t *request, hm_writer_t *reply, uint8_t *reply_type,
                    hm_text_t *text)
{
    hm_bench_request_t bench;
    hm_bench_result_t result;
    hm_reader_t r;
    uint64_t total_ticks = 0;
    uint32_t stored;
    uint32_t run;
    int status;
    (void)context;
    status = check_pool(text);
    if (status != HM_OK) {
        return status;
    }
    hm_reader_init(&r, request->payload, request->payload_len);
    status = hm_parse_bench(&r, &bench, text);
    if (status != HM_OK) {
        return status;
    }
    for (run = 0; run < bench.warmup; ++run) {
        hm_model_step(model_inputs, model_outputs);
    }
#ifdef HM_MODEL_PROFILE
    memset(op_ticks, 0, sizeof(op_ticks));
#endif
    /* Statistics come from the first 8192 runs (the samples the protocol can return). */
    stored = bench.runs < HM_MAX_BENCH_SAMPLES ? bench.runs : HM_MAX_BENCH_SAMPLES;
    for (run = 0; run < bench.runs; ++run) {
        uint32_t ticks = timed_step();
        total_ticks += ticks;
        if (run < stored) {
            bench_samples[run] = hm_ticks_to_instructions(ticks);
        }
    }
    memset(&result, 0, sizeof(result));
    result.runs = bench.runs;
    result.unit = HM_UNIT_INSTRUCTIONS;
    hm_sample_stats(bench_samples, stored, bench_scratch, &result.min, &result.median, &result.mean, &result.max);
    result.mean = hm_ticks_to_instructions((total_ticks + bench.runs / 2u) / bench.runs);
    if (bench.flags & HM_BENCH_FLAG_SAMPLES) {
        result.samples = bench_samples;
        result.n_samples = stored;
    }
#ifdef HM_MODEL_PROFILE
    if (bench.flags & HM_BENCH_FLAG_PER_OP) {
        int op;
        for (op = 0; op < HM_MODEL_NUM_OPS; ++op) {
            /* Mean per timed run, in QEMU instructions. */
            op_values[op] = hm_ticks_to_instructions((op_ticks[op] + bench.runs / 2u) / bench.runs);
        }
        result.n_ops = (uint16_t)HM_MODEL_NUM_OPS;
        result.op_names = (const char *const *)hm_model_op_names;
        result.op_values = op_values;
    }
#endif
    hm_write_bench_result(reply, &result);
    *reply_type = HM_MSG_BENCH_RESULT;
    return HM_OK;
}

static const hm_handler_entry_t handlers[] = {
    {HM_MSG_HELLO, on_hello},
    {HM_MSG_RESET, on_reset},
    {HM_MSG_INFER, on_infer},
    {HM_MSG_BENCH, on_bench},
};

/* ------------------------------------------------------------------ main loop */

int main(void)
{
    hm_uart_init(HM_UART0_BASE, HM_SYSCLK_HZ, HM_UART_BAUD);
    hm_timer_init();
    if (layout_tensors()) {
        clear_inputs();
    }
    if (hm_device_init(&device, rx_buffer, sizeof(rx_buffer), tx_buffer, sizeof(tx_buffer),
                       HM_FIRMWARE_MAX_PAYLOAD_BYTES, handlers, sizeof(handlers) / sizeof(handlers[0]), NULL,
                       hm_uart_write, (void *)(uintptr_t)HM_UART0_BASE) != 0) {
        for (;;) {
        }
    }
    /* Boot INFO (seq 0, nonce 0): a host that was already connected sees the (re)start. */
    hm_device_call(&device, HM_MSG_RESET, 0, NULL, 0);
    for (;;) {
        int byte = hm_uart_read_byte(HM_UART0_BASE);
        if (byte >= 0) {
            hm_device_push_byte(&device, (uint8_t)byte);
        } else {
            hm_uart_wait_for_rx(HM_UART0_BASE);
        }
    }
}
