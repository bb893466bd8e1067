/*
 * hm_proto.h -- the hearmask host <-> device protocol, version 1, device side in C99.
 *
 * One implementation shared by the QEMU firmware (targets/firmware/) and the TFLM
 * firmware template of Cortex-M bundles. It speaks exactly what
 * firmware_bridge/PROTOCOL.md specifies and firmware_bridge/framing.py implements:
 *
 *   raw frame = u8 version | u8 message_type | u16 seq | u32 payload_len | payload | u32 crc32
 *   on wire   = 0x00 | COBS(raw frame) | 0x00
 *
 * little-endian, CRC-32/IEEE (zlib's) over header + payload, COBS after Cheshire & Baker
 * (IEEE/ACM Trans. Networking 7(2), 1999).
 *
 * No malloc and no libc beyond memcpy/memset: every buffer is handed in by the caller
 * (static arrays in firmware), sized with HM_RX_BUFFER_BYTES / HM_TX_BUFFER_BYTES.
 * Nothing here blocks: bytes go in one at a time (hm_receiver_push, hm_device_push_byte)
 * and replies go out through a write callback.
 */
#ifndef HM_PROTO_H
#define HM_PROTO_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ constants */

#define HM_PROTO_VERSION 1u
#define HM_FRAME_HEADER_BYTES 8u
#define HM_FRAME_CRC_BYTES 4u
#define HM_FRAME_OVERHEAD_BYTES (HM_FRAME_HEADER_BYTES + HM_FRAME_CRC_BYTES)
#define HM_COBS_MAX_RUN 254u
#define HM_DEFAULT_MAX_PAYLOAD_BYTES 65536u

/* Largest raw frame (header + payload + CRC) for a payload cap, in bytes. */
#define HM_RAW_FRAME_BYTES(max_payload) (HM_FRAME_OVERHEAD_BYTES + (max_payload))
/* Largest COBS-encoded frame without delimiters: framing.max_encoded_frame_bytes(). */
#define HM_MAX_ENCODED_FRAME_BYTES(max_payload) \
    (HM_RAW_FRAME_BYTES(max_payload) + HM_RAW_FRAME_BYTES(max_payload) / HM_COBS_MAX_RUN + 1u)
/* Receive buffer a hm_receiver_t needs for a payload cap (encoded frames are decoded in place). */
#define HM_RX_BUFFER_BYTES(max_payload) HM_MAX_ENCODED_FRAME_BYTES(max_payload)
/* Transmit buffer a hm_device_t needs: one raw frame (it is COBS-encoded while it is written). */
#define HM_TX_BUFFER_BYTES(max_payload) HM_RAW_FRAME_BYTES(max_payload)

#define HM_MAX_STRING_BYTES 63u        /* names on the wire */
#define HM_MAX_ERROR_TEXT_BYTES 255u   /* ERROR message text */
#define HM_MAX_TENSORS 16u
#define HM_MAX_TENSOR_RANK 6u
#define HM_SHA256_BYTES 32u
#define HM_MAX_BENCH_RUNS 100000u
#define HM_MAX_BENCH_SAMPLES 8192u

/* Message types (PROTOCOL.md section 3). */
enum hm_message_type {
    HM_MSG_HELLO = 0x01,
    HM_MSG_INFO = 0x02,
    HM_MSG_ACK = 0x03,
    HM_MSG_ERROR = 0x04,
    HM_MSG_RESET = 0x05,
    HM_MSG_LOAD_MODEL = 0x10,
    HM_MSG_SET_AUDIOGRAM = 0x11,
    HM_MSG_SET_STRENGTHS = 0x12,
    HM_MSG_INFER = 0x20,
    HM_MSG_INFER_RESULT = 0x21,
    HM_MSG_BENCH = 0x22,
    HM_MSG_BENCH_RESULT = 0x23,
    HM_MSG_STREAM = 0x24,
    HM_MSG_STREAM_RESULT = 0x25,
    HM_MSG_POWER = 0x30,
    HM_MSG_POWER_RESULT = 0x31
};

/* ERROR codes (PROTOCOL.md section 5). 0 is "no error" in this C API only. */
enum hm_error_code {
    HM_OK = 0,
    HM_ERR_UNKNOWN_MESSAGE = 1,
    HM_ERR_MALFORMED_PAYLOAD = 2,
    HM_ERR_FRAME_CORRUPT = 3,
    HM_ERR_FRAME_OVERSIZE = 4,
    HM_ERR_BAD_VERSION = 5,
    HM_ERR_UNSUPPORTED = 6,
    HM_ERR_NO_MODEL = 7,
    HM_ERR_TENSOR_MISMATCH = 8,
    HM_ERR_MODEL_HASH_MISMATCH = 9,
    HM_ERR_LOAD_SEQUENCE = 10,
    HM_ERR_NO_POWER_BACKEND = 11,
    HM_ERR_OUT_OF_RANGE = 12,
    HM_ERR_INTERNAL = 13,
    HM_ERR_STORAGE = 14,
    HM_ERR_REPLY_TOO_LARGE = 15
};

/* INFO capabilities bitmask. */
enum hm_capability {
    HM_CAP_INFER = 1u << 0,
    HM_CAP_BENCH = 1u << 1,
    HM_CAP_STREAM = 1u << 2,
    HM_CAP_LOAD_MODEL = 1u << 3,
    HM_CAP_POWER = 1u << 4,
    HM_CAP_SET_AUDIOGRAM = 1u << 5,
    HM_CAP_SET_STRENGTHS = 1u << 6,
    HM_CAP_PER_OP_COUNTS = 1u << 7,
    HM_CAP_RESET = 1u << 8
};

enum hm_device_kind { HM_KIND_HARDWARE = 0, HM_KIND_EMULATED = 1 };

/* device_time units. QEMU -icount figures are INSTRUCTIONS: not time, never shown as us. */
enum hm_time_unit {
    HM_UNIT_MICROSECONDS = 0,
    HM_UNIT_NANOSECONDS = 1,
    HM_UNIT_CYCLES = 2,
    HM_UNIT_INSTRUCTIONS = 3
};

enum hm_dtype { HM_DTYPE_INT8 = 1, HM_DTYPE_UINT8 = 2, HM_DTYPE_INT16 = 3, HM_DTYPE_INT32 = 4, HM_DTYPE_FLOAT32 = 5 };

#define HM_BENCH_FLAG_SAMPLES 1u
#define HM_BENCH_FLAG_PER_OP 2u

/* Why a run of bytes between delimiters was dropped (framing.FrameErrorKind, same order). */
enum hm_frame_error_kind {
    HM_FRAME_BAD_COBS = 1,
    HM_FRAME_TRUNCATED = 2,
    HM_FRAME_BAD_CRC = 3,
    HM_FRAME_BAD_VERSION = 4,
    HM_FRAME_BAD_LENGTH = 5,
    HM_FRAME_OVERSIZE = 6
};
#define HM_FRAME_ERROR_KINDS 7 /* array size for counts indexed by kind (index 0 unused) */

/* ------------------------------------------------------------------ CRC-32 and COBS */

/* zlib.crc32(data, crc): pass 0 to start, the previous result to continue. */
uint32_t hm_crc32(uint32_t crc, const uint8_t *data, size_t length);

/* COBS-encode length bytes into out (no delimiters). Returns the encoded length, or 0 if
 * out_capacity is too small (an encoding is never empty: it is at least one code byte). */
size_t hm_cobs_encode(const uint8_t *data, size_t length, uint8_t *out, size_t out_capacity);

/* Decode COBS; out may equal in (decoding in place is safe). Returns 0 and sets *out_length,
 * or -1 for invalid COBS (a 0x00 byte, a code running past the end) or a too small out. */
int hm_cobs_decode(const uint8_t *in, size_t length, uint8_t *out, size_t out_capacity, size_t *out_length);

/* ------------------------------------------------------------------ frames */

typedef struct {
    uint8_t version;
    uint8_t message_type;
    uint16_t seq;
    const uint8_t *payload;  /* points into the receiver's buffer: valid until the next push */
    uint32_t payload_len;
} hm_frame_t;

typedef struct {
    uint8_t kind;            /* enum hm_frame_error_kind */
    uint8_t crc_good;        /* 1: seq and message_type were read from an intact frame */
    uint8_t message_type;
    uint16_t seq;
} hm_frame_error_t;

/* Write header + CRC around a payload already at raw + HM_FRAME_HEADER_BYTES.
 * Returns the raw frame length (payload_len + 12). */
size_t hm_frame_finish(uint8_t *raw, uint8_t message_type, uint16_t seq, uint32_t payload_len);

/* Build a whole raw frame from a payload (payload may not overlap raw). Returns the length,
 * or 0 when raw_capacity is too small. */
size_t hm_frame_build(uint8_t *raw, size_t raw_capacity, uint8_t message_type, uint16_t seq,
                      const uint8_t *payload, uint32_t payload_len);

/* 0x00 | COBS(raw) | 0x00 into out. Returns the bytes written, 0 when out is too small. */
size_t hm_frame_encode(const uint8_t *raw, size_t raw_length, uint8_t *out, size_t out_capacity);

/* Sink for bytes on their way to the line (a UART, a test buffer). */
typedef void (*hm_write_fn)(void *context, const uint8_t *data, size_t length);

/* Stream 0x00 | COBS(raw) | 0x00 to write() without a second buffer (one call per COBS block). */
void hm_frame_send(const uint8_t *raw, size_t raw_length, hm_write_fn write, void *context);

/* ------------------------------------------------------------------ receiver */

enum hm_rx_event { HM_RX_NONE = 0, HM_RX_FRAME = 1, HM_RX_ERROR = 2 };

/* Byte-at-a-time frame decoder with the semantics of framing.FrameDecoder: never buffers more
 * than one maximal encoded frame, drops an over-long run up to the next 0x00 (OVERSIZE,
 * reported once, when the run overflows), ignores empty frames, and reads fields only after
 * the CRC checks out. */
typedef struct {
    uint8_t *buffer;
    size_t capacity;            /* HM_MAX_ENCODED_FRAME_BYTES(max_payload_bytes) */
    size_t length;
    uint32_t max_payload_bytes;
    uint8_t discarding;
    uint32_t error_counts[HM_FRAME_ERROR_KINDS];
    uint32_t frames_decoded;
    uint32_t bytes_discarded;
} hm_receiver_t;

/* Returns 0, or -1 when buffer_bytes < HM_RX_BUFFER_BYTES(max_payload_bytes). */
int hm_receiver_init(hm_receiver_t *rx, uint8_t *buffer, size_t buffer_bytes, uint32_t max_payload_bytes);
/* Forget a partial frame (e.g. after the line was reopened). */
void hm_receiver_reset(hm_receiver_t *rx);
/* Feed one byte; on HM_RX_FRAME *frame is set, on HM_RX_ERROR *error is set. */
int hm_receiver_push(hm_receiver_t *rx, uint8_t byte, hm_frame_t *frame, hm_frame_error_t *error);

/* ------------------------------------------------------------------ payload writer and reader */

typedef struct {
    uint8_t *data;
    uint32_t capacity;
    uint32_t length;
    uint8_t overflow;           /* set when a write did not fit: the reply is REPLY_TOO_LARGE */
} hm_writer_t;

void hm_writer_init(hm_writer_t *w, uint8_t *data, uint32_t capacity);
void hm_write_u8(hm_writer_t *w, uint8_t value);
void hm_write_u16(hm_writer_t *w, uint16_t value);
void hm_write_u32(hm_writer_t *w, uint32_t value);
void hm_write_bytes(hm_writer_t *w, const void *data, uint32_t length);
/* u8 length + bytes, cut to limit bytes (C strings). */
void hm_write_string(hm_writer_t *w, const char *text, uint32_t limit);

typedef struct {
    const uint8_t *data;
    uint32_t length;
    uint32_t offset;
    uint8_t short_read;         /* set when a read ran past the end */
} hm_reader_t;

void hm_reader_init(hm_reader_t *r, const uint8_t *data, uint32_t length);
uint8_t hm_read_u8(hm_reader_t *r);
uint16_t hm_read_u16(hm_reader_t *r);
uint32_t hm_read_u32(hm_reader_t *r);
/* Pointer to the next length bytes (advancing), or NULL on a short read. */
const uint8_t *hm_read_bytes(hm_reader_t *r, uint32_t length);

/* Small text builder for ERROR messages (no printf on the device). */
typedef struct {
    char *data;
    uint32_t capacity;          /* including the terminating NUL */
    uint32_t length;
} hm_text_t;

void hm_text_init(hm_text_t *t, char *data, uint32_t capacity);
void hm_text_str(hm_text_t *t, const char *text);
void hm_text_strn(hm_text_t *t, const char *text, uint32_t length);
void hm_text_u32(hm_text_t *t, uint32_t value);
void hm_text_i32(hm_text_t *t, int32_t value);

/* ------------------------------------------------------------------ message payloads */

typedef struct {
    uint32_t nonce;
    uint8_t kind;               /* enum hm_device_kind */
    uint16_t capabilities;      /* enum hm_capability bits */
    uint32_t clock_hz;          /* 0 = unknown */
    uint32_t arena_bytes;       /* 0 = unknown / no TFLM arena */
    uint32_t max_payload_bytes;
    uint8_t model_sha256[HM_SHA256_BYTES]; /* all zero: no model */
    const char *target_name;
    const char *runtime_name;
} hm_info_t;

void hm_write_info(hm_writer_t *w, const hm_info_t *info);
/* ERROR payload: u16 code | u8 len | text (cut to 255 bytes, never inside a UTF-8 sequence). */
void hm_write_error(hm_writer_t *w, uint16_t code, const char *text);
/* device_time: u32 value | u8 unit | u8 0 | u16 0. */
void hm_write_device_time(hm_writer_t *w, uint32_t value, uint8_t unit);

/* One tensor of a tensor block (PROTOCOL.md 4.3), pointing into the payload. */
typedef struct {
    uint8_t dtype;
    uint8_t rank;
    uint16_t dims[HM_MAX_TENSOR_RANK];
    const char *name;           /* not NUL-terminated */
    uint8_t name_len;
    const uint8_t *data;        /* unaligned, little-endian */
    uint32_t data_bytes;
    uint32_t elements;
} hm_tensor_view_t;

/* Bytes per element of a wire dtype, 0 if unknown. */
uint32_t hm_dtype_bytes(uint8_t dtype);

/* Parse a tensor block that must fill the reader to its end. Returns HM_OK or
 * HM_ERR_MALFORMED_PAYLOAD with a message in text naming the field. */
int hm_parse_tensor_block(hm_reader_t *r, hm_tensor_view_t *tensors, uint32_t max_tensors,
                          uint32_t *count, hm_text_t *text);

/* Tensor block: write hm_write_tensor_block_header once, then per tensor its header and data. */
void hm_write_tensor_block_header(hm_writer_t *w, uint8_t count);
void hm_write_tensor_header(hm_writer_t *w, uint8_t dtype, uint8_t rank, const uint16_t *dims, const char *name);

typedef struct {
    uint32_t runs;
    uint32_t warmup;
    uint8_t flags;              /* HM_BENCH_FLAG_* */
} hm_bench_request_t;

/* Returns HM_OK, HM_ERR_MALFORMED_PAYLOAD or HM_ERR_OUT_OF_RANGE (text says which field). */
int hm_parse_bench(hm_reader_t *r, hm_bench_request_t *bench, hm_text_t *text);

typedef struct {
    uint32_t runs;
    uint8_t unit;               /* enum hm_time_unit */
    uint32_t min, median, mean, max;
    const uint32_t *samples;    /* n_samples values, the first runs in order */
    uint32_t n_samples;
    uint16_t n_ops;
    const char *const *op_names;
    const uint32_t *op_values;
} hm_bench_result_t;

void hm_write_bench_result(hm_writer_t *w, const hm_bench_result_t *result);

/* Statistics of n samples (n >= 1): min, max, mean (rounded), median (mean of the two middle
 * values, rounded up, for even n). scratch (n values) is sorted; samples are left unchanged. */
void hm_sample_stats(const uint32_t *samples, uint32_t n, uint32_t *scratch,
                     uint32_t *min, uint32_t *median, uint32_t *mean, uint32_t *max);

/* ------------------------------------------------------------------ device: receive, dispatch, reply */

/* A request handler writes its reply payload into reply (and sets *reply_type), or returns an
 * error code after writing the error text into text. */
typedef int (*hm_handler_fn)(void *context, const hm_frame_t *request, hm_writer_t *reply,
                             uint8_t *reply_type, hm_text_t *text);

typedef struct {
    uint8_t message_type;
    hm_handler_fn handler;
} hm_handler_entry_t;

typedef struct {
    hm_receiver_t receiver;
    uint8_t *tx;                /* HM_TX_BUFFER_BYTES(max_payload_bytes) */
    size_t tx_capacity;
    uint32_t max_payload_bytes;
    const hm_handler_entry_t *handlers;
    size_t n_handlers;
    void *context;              /* passed to handlers */
    hm_write_fn write;
    void *write_context;
    uint32_t requests_served;
} hm_device_t;

/* Returns 0, or -1 when a buffer is too small for max_payload_bytes. */
int hm_device_init(hm_device_t *dev, uint8_t *rx_buffer, size_t rx_bytes, uint8_t *tx_buffer, size_t tx_bytes,
                   uint32_t max_payload_bytes, const hm_handler_entry_t *handlers, size_t n_handlers,
                   void *context, hm_write_fn write, void *write_context);

/* Feed one byte from the line: completes frames, dispatches requests, writes replies, and
 * answers dropped frames with an unsolicited ERROR (seq 0; BAD_VERSION echoes the seq). */
void hm_device_push_byte(hm_device_t *dev, uint8_t byte);

/* Run the handler of message_type as if a request with that seq and payload had arrived, and
 * send its reply: the firmware's boot INFO is hm_device_call(dev, HM_MSG_RESET, 0, NULL, 0). */
void hm_device_call(hm_device_t *dev, uint8_t message_type, uint16_t seq, const uint8_t *payload,
                    uint32_t payload_len);

/* Send an ERROR frame. */
void hm_device_send_error(hm_device_t *dev, uint16_t seq, uint16_t code, const char *text);

#ifdef __cplusplus
}
#endif

#endif /* HM_PROTO_H */
