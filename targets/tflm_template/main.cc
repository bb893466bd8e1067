/*
 * main.cc -- hearmask firmware template for a Cortex-M board with TensorFlow Lite Micro.
 *
 * Serves HELLO/INFO, RESET, INFER and BENCH of firmware_bridge/PROTOCOL.md on the board's
 * serial port through the shared protocol code (hm_proto.h/.c, the same files as the QEMU
 * firmware). The model runs in the TFLM interpreter with exactly the ops of
 * hm_op_resolver.h; its arena is the size hearmask measured (hm_model_config.h). Timing:
 * hm_timing.h (DWT cycle counter where the core has one, else SysTick), reported in cycles.
 *
 * You provide hm_board_port.h's three functions. Build: CMakeLists.txt or Makefile with
 * TFLM_DIR and CMSIS_NN_DIR (README.md).
 */
#include <string.h>

#include "hm_board_port.h"
#include "hm_model_config.h"
#include "hm_op_resolver.h"
#include "hm_proto.h"
#include "hm_timing.h"
#include "model_data.h"

#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/schema/schema_generated.h"

#define HM_MAX_PAYLOAD_BYTES 4096u /* the model's tensors are a few hundred bytes */

namespace {

alignas(16) uint8_t tensor_arena[HM_TFLM_ARENA_BYTES];
uint8_t rx_buffer[HM_RX_BUFFER_BYTES(HM_MAX_PAYLOAD_BYTES)];
uint8_t tx_buffer[HM_TX_BUFFER_BYTES(HM_MAX_PAYLOAD_BYTES)];
uint32_t bench_samples[HM_MAX_BENCH_SAMPLES];
uint32_t bench_scratch[HM_MAX_BENCH_SAMPLES];
const uint8_t model_sha256[HM_SHA256_BYTES] = HM_MODEL_SHA256_INIT;
const char *const input_names[HM_MODEL_NUM_INPUTS] = HM_MODEL_INPUT_NAMES;
const char *const output_names[HM_MODEL_NUM_OUTPUTS] = HM_MODEL_OUTPUT_NAMES;
tflite::MicroInterpreter *interpreter = nullptr;
hm_device_t device;

uint32_t timed_invoke(void)
{
    uint32_t start = hm_cycles_now();
    interpreter->Invoke();
    return hm_cycles_elapsed(start, hm_cycles_now());
}

void clear_inputs(void)
{
    for (size_t i = 0; i < interpreter->inputs_size(); ++i) {
        TfLiteTensor *tensor = interpreter->input(i);
        memset(tensor->data.int8, 0, tensor->bytes);
    }
}

void write_info(hm_writer_t *reply, uint32_t nonce)
{
    hm_info_t info;
    memset(&info, 0, sizeof(info));
    info.nonce = nonce;
    info.kind = HM_KIND_HARDWARE;
    info.capabilities = HM_CAP_INFER | HM_CAP_BENCH | HM_CAP_RESET;
    info.clock_hz = HM_CLOCK_HZ;
    info.arena_bytes = interpreter != nullptr ? (uint32_t)interpreter->arena_used_bytes() : 0u;
    info.max_payload_bytes = HM_MAX_PAYLOAD_BYTES;
    memcpy(info.model_sha256, model_sha256, HM_SHA256_BYTES);
    info.target_name = HM_TARGET_NAME;
    info.runtime_name = "tflm-cmsis-nn";
    hm_write_info(reply, &info);
}

int on_hello(void *, const hm_frame_t *request, hm_writer_t *reply, uint8_t *reply_type, hm_text_t *text)
{
    hm_reader_t r;
    hm_reader_init(&r, request->payload, request->payload_len);
    uint32_t nonce = hm_read_u32(&r);
    if (r.short_read || r.offset != r.length) {
        hm_text_str(text, "HELLO: expected a 4-byte nonce");
        return HM_ERR_MALFORMED_PAYLOAD;
    }
    write_info(reply, nonce);
    *reply_type = HM_MSG_INFO;
    return HM_OK;
}

/* RESET (and boot): fresh inputs, then INFO with nonce 0 (PROTOCOL.md: the host sees the restart). */
int on_reset(void *, const hm_frame_t *request, hm_writer_t *reply, uint8_t *reply_type, hm_text_t *text)
{
    if (request->payload_len != 0) {
        hm_text_str(text, "RESET: expected no payload");
        return HM_ERR_MALFORMED_PAYLOAD;
    }
    clear_inputs();
    write_info(reply, 0u);
    *reply_type = HM_MSG_INFO;
    return HM_OK;
}

int on_infer(void *, const hm_frame_t *request, hm_writer_t *reply, uint8_t *reply_type, hm_text_t *text)
{
    hm_tensor_view_t tensors[HM_MAX_TENSORS];
    uint32_t count = 0;
    hm_reader_t r;
    hm_reader_init(&r, request->payload, request->payload_len);
    int status = hm_parse_tensor_block(&r, tensors, HM_MAX_TENSORS, &count, text);
    if (status != HM_OK) {
        return status;
    }
    for (uint32_t i = 0; i < HM_MODEL_NUM_INPUTS; ++i) { /* match by name, as PROTOCOL.md says */
        const hm_tensor_view_t *match = nullptr;
        for (uint32_t k = 0; k < count; ++k) {
            if (tensors[k].name_len == strlen(input_names[i]) &&
                memcmp(tensors[k].name, input_names[i], tensors[k].name_len) == 0) {
                match = &tensors[k];
            }
        }
        TfLiteTensor *tensor = interpreter->input(i);
        if (match == nullptr || match->dtype != HM_DTYPE_INT8 || match->data_bytes != tensor->bytes) {
            hm_text_str(text, "INFER: input ");
            hm_text_str(text, input_names[i]);
            hm_text_str(text, " missing or not int8 of ");
            hm_text_u32(text, (uint32_t)tensor->bytes);
            hm_text_str(text, " values");
            return HM_ERR_TENSOR_MISMATCH;
        }
        memcpy(tensor->data.int8, match->data, match->data_bytes);
    }
    uint32_t cycles = timed_invoke();
    hm_write_device_time(reply, cycles, HM_UNIT_CYCLES);
    hm_write_tensor_block_header(reply, (uint8_t)HM_MODEL_NUM_OUTPUTS);
    for (uint32_t i = 0; i < HM_MODEL_NUM_OUTPUTS; ++i) {
        TfLiteTensor *tensor = interpreter->output(i);
        uint16_t dims[1] = {(uint16_t)tensor->bytes};
        hm_write_tensor_header(reply, HM_DTYPE_INT8, 1, dims, output_names[i]);
        hm_write_bytes(reply, tensor->data.int8, (uint32_t)tensor->bytes);
    }
    *reply_type = HM_MSG_INFER_RESULT;
    return HM_OK;
}

int on_bench(void *, const hm_frame_t *request, hm_writer_t *reply, uint8_t *reply_type, hm_text_t *text)
{
    hm_bench_request_t bench;
    hm_reader_t r;
    hm_reader_init(&r, request->payload, request->payload_len);
    int status = hm_parse_bench(&r, &bench, text);
    if (status != HM_OK) {
        return status;
    }
    for (uint32_t run = 0; run < bench.warmup; ++run) {
        interpreter->Invoke();
    }
    uint64_t total = 0;
    uint32_t stored = bench.runs < HM_MAX_BENCH_SAMPLES ? bench.runs : HM_MAX_BENCH_SAMPLES;
    for (uint32_t run = 0; run < bench.runs; ++run) {
        uint32_t cycles = timed_invoke();
        total += cycles;
        if (run < stored) {
            bench_samples[run] = cycles;
        }
    }
    hm_bench_result_t result;
    memset(&result, 0, sizeof(result));
    result.runs = bench.runs;
    result.unit = HM_UNIT_CYCLES;
    hm_sample_stats(bench_samples, stored, bench_scratch, &result.min, &result.median, &result.mean, &result.max);
    result.mean = (uint32_t)((total + bench.runs / 2u) / bench.runs);
    if (bench.flags & HM_BENCH_FLAG_SAMPLES) {
        result.samples = bench_samples;
        result.n_samples = stored;
    }
    hm_write_bench_result(reply, &result);
    *reply_type = HM_MSG_BENCH_RESULT;
    return HM_OK;
}

const hm_handler_entry_t handlers[] = {
    {HM_MSG_HELLO, on_hello},
    {HM_MSG_RESET, on_reset},
    {HM_MSG_INFER, on_infer},
    {HM_MSG_BENCH, on_bench},
};

}  // namespace

int main(void)
{
    hm_board_init();
    hm_cycles_init();
    static tflite::MicroMutableOpResolver<HM_MODEL_NUM_OP_TYPES> resolver;
    hm_register_ops(resolver);
    static tflite::MicroInterpreter static_interpreter(tflite::GetModel(g_hm_model_data), resolver, tensor_arena,
                                                       sizeof(tensor_arena));
    if (static_interpreter.AllocateTensors() != kTfLiteOk) {
        for (;;) {
        } /* arena too small or an op missing: raise HM_TFLM_ARENA_BYTES or check hm_op_resolver.h */
    }
    interpreter = &static_interpreter;
    clear_inputs();
    hm_device_init(&device, rx_buffer, sizeof(rx_buffer), tx_buffer, sizeof(tx_buffer), HM_MAX_PAYLOAD_BYTES,
                   handlers, sizeof(handlers) / sizeof(handlers[0]), nullptr, hm_board_write, nullptr);
    hm_device_call(&device, HM_MSG_RESET, 0, nullptr, 0); /* boot INFO: the host sees the (re)start */
    for (;;) {
        int byte = hm_board_read_byte();
        if (byte >= 0) {
            hm_device_push_byte(&device, (uint8_t)byte);
        }
    }
}
