/*
 * hm_proto.c -- the hearmask host <-> device protocol (PROTOCOL.md), device side in C99.
 * See hm_proto.h for the API; firmware_bridge/framing.py is the Python reference.
 */
#include "hm_proto.h"

#include <string.h>

/* ------------------------------------------------------------------ CRC-32 */

/* CRC-32/IEEE, reflected polynomial 0xEDB88320, four bits at a time: a 64-byte table is a
 * good trade between flash and speed on a Cortex-M (two lookups per byte). */
static const uint32_t crc32_nibble_table[16] = {
    0x00000000u, 0x1DB71064u, 0x3B6E20C8u, 0x26D930ACu, 0x76DC4190u, 0x6B6B51F4u, 0x4DB26158u, 0x5005713Cu,
    0xEDB88320u, 0xF00F9344u, 0xD6D6A3E8u, 0xCB61B38Cu, 0x9B64C2B0u, 0x86D3D2D4u, 0xA00AE278u, 0xBDBDF21Cu,
};

uint32_t hm_crc32(uint32_t crc, const uint8_t *data, size_t length)
{
    size_t i;
    crc = ~crc; /* init 0xFFFFFFFF (zlib continues from the previous, final-xored value) */
    for (i = 0; i < length; ++i) {
        crc ^= data[i];
        crc = (crc >> 4) ^ crc32_nibble_table[crc & 0x0Fu];
        crc = (crc >> 4) ^ crc32_nibble_table[crc & 0x0Fu];
    }
    return ~crc; /* final xor 0xFFFFFFFF */
}

/* ------------------------------------------------------------------ COBS */

size_t hm_cobs_encode(const uint8_t *data, size_t length, uint8_t *out, size_t out_capacity)
{
    size_t code_index = 0;
    size_t written = 1; /* out[0] is the first code byte, filled in when its block ends */
    uint8_t code = 1;
    size_t i;
    if (out_capacity < 1) {
        return 0;
    }
    for (i = 0; i < length; ++i) {
        if (data[i] == 0) {
            out[code_index] = code;
            if (written >= out_capacity) {
                return 0;
            }
            code_index = written++;
            code = 1;
            continue;
        }
        if (written >= out_capacity) {
            return 0;
        }
        out[written++] = data[i];
        ++code;
        if (code == HM_COBS_MAX_RUN + 1u) {
            out[code_index] = code;
            if (written >= out_capacity) {
                return 0;
            }
            code_index = written++;
            code = 1;
        }
    }
    out[code_index] = code;
    return written;
}

int hm_cobs_decode(const uint8_t *in, size_t length, uint8_t *out, size_t out_capacity, size_t *out_length)
{
    size_t index = 0;
    size_t written = 0; /* never ahead of index, so out == in is safe */
    while (index < length) {
        uint8_t code = in[index];
        size_t end = index + code;
        size_t j;
        if (code == 0 || end > length) {
            return -1;
        }
        for (j = index + 1; j < end; ++j) {
            if (in[j] == 0 || written >= out_capacity) {
                return -1;
            }
            out[written++] = in[j];
        }
        index = end;
        /* A code below 255 stands for "block, then a zero", except at the very end. */
        if (code < HM_COBS_MAX_RUN + 1u && index < length) {
            if (written >= out_capacity) {
                return -1;
            }
            out[written++] = 0;
        }
    }
    *out_length = written;
    return 0;
}

/* ------------------------------------------------------------------ little-endian fields */

static void put_u16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static uint16_t get_u16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

static uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

/* ------------------------------------------------------------------ frames */

size_t hm_frame_finish(uint8_t *raw, uint8_t message_type, uint16_t seq, uint32_t payload_len)
{
    size_t body = HM_FRAME_HEADER_BYTES + payload_len;
    raw[0] = (uint8_t)HM_PROTO_VERSION;
    raw[1] = message_type;
    put_u16(raw + 2, seq);
    put_u32(raw + 4, payload_len);
    put_u32(raw + body, hm_crc32(0, raw, body));
    return body + HM_FRAME_CRC_BYTES;
}

size_t hm_frame_build(uint8_t *raw, size_t raw_capacity, uint8_t message_type, uint16_t seq,
                      const uint8_t *payload, uint32_t payload_len)
{
    if (raw_capacity < HM_FRAME_OVERHEAD_BYTES || payload_len > raw_capacity - HM_FRAME_OVERHEAD_BYTES) {
        return 0;
    }
    if (payload_len) {
        memcpy(raw + HM_FRAME_HEADER_BYTES, payload, payload_len);
    }
    return hm_frame_finish(raw, message_type, seq, payload_len);
}

size_t hm_frame_encode(const uint8_t *raw, size_t raw_length, uint8_t *out, size_t out_capacity)
{
    size_t encoded;
    if (out_capacity < 3) {
        return 0;
    }
    out[0] = 0;
    encoded = hm_cobs_encode(raw, raw_length, out + 1, out_capacity - 2);
    if (encoded == 0) {
        return 0;
    }
    out[1 + encoded] = 0;
    return encoded + 2;
}

void hm_frame_send(const uint8_t *raw, size_t raw_length, hm_write_fn write, void *context)
{
    static const uint8_t delimiter = 0;
    size_t start = 0;
    write(context, &delimiter, 1);
    /* One COBS block at a time: a code byte, then up to 254 non-zero bytes. */
    for (;;) {
        size_t run = 0;
        uint8_t code;
        while (start + run < raw_length && run < HM_COBS_MAX_RUN && raw[start + run] != 0) {
            ++run;
        }
        code = (uint8_t)(run + 1);
        write(context, &code, 1);
        if (run) {
            write(context, raw + start, run);
        }
        start += run;
        if (start >= raw_length) {
            if (run == HM_COBS_MAX_RUN) {
                /* framing.cobs_encode opens a new (empty) block after a full one: same bytes. */
                code = 1;
                write(context, &code, 1);
            }
            break; /* the final block: no implied zero */
        }
        if (run < HM_COBS_MAX_RUN) {
            ++start; /* skip the zero this block's code stands for */
            if (start == raw_length) {
                /* A zero at the very end needs one more (empty) block. */
                code = 1;
                write(context, &code, 1);
                break;
            }
        }
    }
    write(context, &delimiter, 1);
}

/* ------------------------------------------------------------------ receiver */

int hm_receiver_init(hm_receiver_t *rx, uint8_t *buffer, size_t buffer_bytes, uint32_t max_payload_bytes)
{
    size_t needed = HM_RX_BUFFER_BYTES((size_t)max_payload_bytes);
    memset(rx, 0, sizeof(*rx));
    if (buffer == NULL || buffer_bytes < needed) {
        return -1;
    }
    rx->buffer = buffer;
    rx->capacity = needed;
    rx->max_payload_bytes = max_payload_bytes;
    return 0;
}

void hm_receiver_reset(hm_receiver_t *rx)
{
    rx->length = 0;
    rx->discarding = 0;
}

static int rx_error(hm_receiver_t *rx, hm_frame_error_t *error, uint8_t kind, size_t dropped)
{
    rx->error_counts[kind] += 1;
    rx->bytes_discarded += (uint32_t)dropped;
    error->kind = kind;
    error->crc_good = 0;
    error->message_type = 0;
    error->seq = 0;
    return HM_RX_ERROR;
}

static int rx_decode(hm_receiver_t *rx, hm_frame_t *frame, hm_frame_error_t *error)
{
    size_t encoded = rx->length;
    size_t raw_length = 0;
    size_t received;
    uint32_t payload_len;
    uint8_t *raw = rx->buffer;
    uint8_t kind = 0;
    rx->length = 0;
    if (hm_cobs_decode(raw, encoded, raw, rx->capacity, &raw_length) != 0) {
        return rx_error(rx, error, HM_FRAME_BAD_COBS, encoded);
    }
    if (raw_length < HM_FRAME_OVERHEAD_BYTES) {
        return rx_error(rx, error, HM_FRAME_TRUNCATED, encoded);
    }
    received = raw_length - HM_FRAME_OVERHEAD_BYTES;
    if (hm_crc32(0, raw, raw_length - HM_FRAME_CRC_BYTES) != get_u32(raw + raw_length - HM_FRAME_CRC_BYTES)) {
        return rx_error(rx, error, HM_FRAME_BAD_CRC, encoded);
    }
    /* Fields are read only now that the CRC checks out. */
    payload_len = get_u32(raw + 4);
    if (raw[0] != HM_PROTO_VERSION) {
        kind = HM_FRAME_BAD_VERSION;
    } else if (payload_len > rx->max_payload_bytes) {
        kind = HM_FRAME_OVERSIZE;
    } else if (payload_len > received) {
        kind = HM_FRAME_TRUNCATED;
    } else if (payload_len < received) {
        kind = HM_FRAME_BAD_LENGTH;
    }
    if (kind) {
        rx_error(rx, error, kind, encoded);
        error->crc_good = 1;
        error->message_type = raw[1];
        error->seq = get_u16(raw + 2);
        return HM_RX_ERROR;
    }
    rx->frames_decoded += 1;
    frame->version = raw[0];
    frame->message_type = raw[1];
    frame->seq = get_u16(raw + 2);
    frame->payload = raw + HM_FRAME_HEADER_BYTES;
    frame->payload_len = payload_len;
    return HM_RX_FRAME;
}

int hm_receiver_push(hm_receiver_t *rx, uint8_t byte, hm_frame_t *frame, hm_frame_error_t *error)
{
    if (byte == 0) {
        if (rx->discarding) {
            rx->discarding = 0;
            rx->length = 0;
            return HM_RX_NONE;
        }
        if (rx->length == 0) {
            return HM_RX_NONE; /* empty frame: two delimiters in a row */
        }
        return rx_decode(rx, frame, error);
    }
    if (rx->discarding) {
        rx->bytes_discarded += 1;
        return HM_RX_NONE;
    }
    if (rx->length >= rx->capacity) {
        size_t dropped = rx->length + 1;
        rx->length = 0;
        rx->discarding = 1;
        return rx_error(rx, error, HM_FRAME_OVERSIZE, dropped);
    }
    rx->buffer[rx->length++] = byte;
    return HM_RX_NONE;
}

/* ------------------------------------------------------------------ writer, reader, text */

void hm_writer_init(hm_writer_t *w, uint8_t *data, uint32_t capacity)
{
    w->data = data;
    w->capacity = capacity;
    w->length = 0;
    w->overflow = 0;
}

static uint8_t *writer_take(hm_writer_t *w, uint32_t length)
{
    uint8_t *p;
    if (w->overflow || length > w->capacity - w->length) {
        w->overflow = 1;
        return NULL;
    }
    p = w->data + w->length;
    w->length += length;
    return p;
}

void hm_write_u8(hm_writer_t *w, uint8_t value)
{
    uint8_t *p = writer_take(w, 1);
    if (p) {
        p[0] = value;
    }
}

void hm_write_u16(hm_writer_t *w, uint16_t value)
{
    uint8_t *p = writer_take(w, 2);
    if (p) {
        put_u16(p, value);
    }
}

void hm_write_u32(hm_writer_t *w, uint32_t value)
{
    uint8_t *p = writer_take(w, 4);
    if (p) {
        put_u32(p, value);
    }
}

void hm_write_bytes(hm_writer_t *w, const void *data, uint32_t length)
{
    uint8_t *p = writer_take(w, length);
    if (p && length) {
        memcpy(p, data, length);
    }
}

/* Length of text cut to at most limit bytes without splitting a UTF-8 sequence. */
static uint32_t utf8_cut(const char *text, uint32_t limit)
{
    uint32_t length = 0;
    while (length < limit && text[length] != '\0') {
        ++length;
    }
    if (text[length] != '\0') {
        /* Cut: back off over continuation bytes so a multi-byte character is never halved. */
        while (length > 0 && (((uint8_t)text[length]) & 0xC0u) == 0x80u) {
            --length;
        }
    }
    return length;
}

void hm_write_string(hm_writer_t *w, const char *text, uint32_t limit)
{
    uint32_t length = text ? utf8_cut(text, limit > 255u ? 255u : limit) : 0;
    hm_write_u8(w, (uint8_t)length);
    hm_write_bytes(w, text, length);
}

void hm_reader_init(hm_reader_t *r, const uint8_t *data, uint32_t length)
{
    r->data = data;
    r->length = length;
    r->offset = 0;
    r->short_read = 0;
}

const uint8_t *hm_read_bytes(hm_reader_t *r, uint32_t length)
{
    const uint8_t *p;
    if (r->short_read || length > r->length - r->offset) {
        r->short_read = 1;
        return NULL;
    }
    p = r->data + r->offset;
    r->offset += length;
    return p;
}

uint8_t hm_read_u8(hm_reader_t *r)
{
    const uint8_t *p = hm_read_bytes(r, 1);
    return p ? p[0] : 0;
}

uint16_t hm_read_u16(hm_reader_t *r)
{
    const uint8_t *p = hm_read_bytes(r, 2);
    return p ? get_u16(p) : 0;
}

uint32_t hm_read_u32(hm_reader_t *r)
{
    const uint8_t *p = hm_read_bytes(r, 4);
    return p ? get_u32(p) : 0;
}

void hm_text_init(hm_text_t *t, char *data, uint32_t capacity)
{
    t->data = data;
    t->capacity = capacity;
    t->length = 0;
    if (capacity) {
        data[0] = '\0';
    }
}

void hm_text_strn(hm_text_t *t, const char *text, uint32_t length)
{
    uint32_t i;
    for (i = 0; i < length && text[i] != '\0' && t->length + 1 < t->capacity; ++i) {
        t->data[t->length++] = text[i];
    }
    if (t->capacity) {
        t->data[t->length] = '\0';
    }
}

void hm_text_str(hm_text_t *t, const char *text)
{
    hm_text_strn(t, text, 0xFFFFFFFFu);
}

void hm_text_u32(hm_text_t *t, uint32_t value)
{
    char digits[11];
    int n = 0;
    do {
        digits[n++] = (char)('0' + value % 10u);
        value /= 10u;
    } while (value);
    while (n > 0) {
        char c = digits[--n];
        hm_text_strn(t, &c, 1);
    }
}

void hm_text_i32(hm_text_t *t, int32_t value)
{
    if (value < 0) {
        hm_text_str(t, "-");
        hm_text_u32(t, (uint32_t)(-(value + 1)) + 1u);
    } else {
        hm_text_u32(t, (uint32_t)value);
    }
}

/* ------------------------------------------------------------------ payloads */

void hm_write_info(hm_writer_t *w, const hm_info_t *info)
{
    hm_write_u32(w, info->nonce);
    hm_write_u8(w, (uint8_t)HM_PROTO_VERSION);
    hm_write_u8(w, info->kind);
    hm_write_u16(w, info->capabilities);
    hm_write_u32(w, info->clock_hz);
    hm_write_u32(w, info->arena_bytes);
    hm_write_u32(w, info->max_payload_bytes);
    hm_write_bytes(w, info->model_sha256, HM_SHA256_BYTES);
    hm_write_string(w, info->target_name, HM_MAX_STRING_BYTES);
    hm_write_string(w, info->runtime_name, HM_MAX_STRING_BYTES);
}

void hm_write_error(hm_writer_t *w, uint16_t code, const char *text)
{
    hm_write_u16(w, code);
    hm_write_string(w, text, HM_MAX_ERROR_TEXT_BYTES);
}

void hm_write_device_time(hm_writer_t *w, uint32_t value, uint8_t unit)
{
    hm_write_u32(w, value);
    hm_write_u8(w, unit);
    hm_write_u8(w, 0);
    hm_write_u16(w, 0);
}

uint32_t hm_dtype_bytes(uint8_t dtype)
{
    switch (dtype) {
    case HM_DTYPE_INT8:
    case HM_DTYPE_UINT8:
        return 1;
    case HM_DTYPE_INT16:
        return 2;
    case HM_DTYPE_INT32:
    case HM_DTYPE_FLOAT32:
        return 4;
    default:
        return 0;
    }
}

static int malformed(hm_text_t *text, const char *what, uint32_t index, const char *problem)
{
    hm_text_str(text, "INFER: tensor ");
    hm_text_u32(text, index);
    hm_text_str(text, " ");
    hm_text_str(text, what);
    hm_text_str(text, problem);
    return HM_ERR_MALFORMED_PAYLOAD;
}

int hm_parse_tensor_block(hm_reader_t *r, hm_tensor_view_t *tensors, uint32_t max_tensors,
                          uint32_t *count, hm_text_t *text)
{
    uint32_t n;
    uint32_t i;
    n = hm_read_u8(r);
    (void)hm_read_u8(r);
    (void)hm_read_u16(r);
    if (r->short_read) {
        hm_text_str(text, "INFER: payload ends while reading the tensor count");
        return HM_ERR_MALFORMED_PAYLOAD;
    }
    if (n > HM_MAX_TENSORS || n > max_tensors) {
        hm_text_str(text, "INFER: ");
        hm_text_u32(text, n);
        hm_text_str(text, " tensors; at most ");
        hm_text_u32(text, max_tensors < HM_MAX_TENSORS ? max_tensors : HM_MAX_TENSORS);
        hm_text_str(text, " accepted");
        return HM_ERR_MALFORMED_PAYLOAD;
    }
    for (i = 0; i < n; ++i) {
        hm_tensor_view_t *t = &tensors[i];
        uint32_t itemsize;
        uint32_t d;
        uint64_t elements = 1;
        const uint8_t *p;
        t->dtype = hm_read_u8(r);
        t->rank = hm_read_u8(r);
        t->name_len = hm_read_u8(r);
        (void)hm_read_u8(r);
        if (r->short_read) {
            return malformed(text, "header", i, ": payload ends early");
        }
        itemsize = hm_dtype_bytes(t->dtype);
        if (itemsize == 0) {
            return malformed(text, "dtype", i, " code is unknown; accepted 1 (int8) .. 5 (float32)");
        }
        if (t->rank > HM_MAX_TENSOR_RANK) {
            return malformed(text, "rank", i, " is above 6");
        }
        if (t->name_len > HM_MAX_STRING_BYTES) {
            return malformed(text, "name", i, " is longer than 63 bytes");
        }
        for (d = 0; d < t->rank; ++d) {
            t->dims[d] = hm_read_u16(r);
            elements *= t->dims[d];
        }
        if (r->short_read) {
            return malformed(text, "dims", i, ": payload ends early");
        }
        p = hm_read_bytes(r, t->name_len);
        if (p == NULL) {
            return malformed(text, "name", i, ": payload ends early");
        }
        t->name = (const char *)p;
        if (elements * itemsize > (uint64_t)(r->length - r->offset)) {
            return malformed(text, "data", i, ": payload ends before the data its dims announce");
        }
        t->elements = (uint32_t)elements;
        t->data_bytes = (uint32_t)(elements * itemsize);
        t->data = hm_read_bytes(r, t->data_bytes);
    }
    if (r->offset != r->length) {
        hm_text_str(text, "INFER: ");
        hm_text_u32(text, r->length - r->offset);
        hm_text_str(text, " unexpected bytes after the last tensor");
        return HM_ERR_MALFORMED_PAYLOAD;
    }
    *count = n;
    return HM_OK;
}

void hm_write_tensor_block_header(hm_writer_t *w, uint8_t count)
{
    hm_write_u8(w, count);
    hm_write_u8(w, 0);
    hm_write_u16(w, 0);
}

void hm_write_tensor_header(hm_writer_t *w, uint8_t dtype, uint8_t rank, const uint16_t *dims, const char *name)
{
    uint32_t name_len = name ? utf8_cut(name, HM_MAX_STRING_BYTES) : 0;
    uint32_t d;
    hm_write_u8(w, dtype);
    hm_write_u8(w, rank);
    hm_write_u8(w, (uint8_t)name_len);
    hm_write_u8(w, 0);
    for (d = 0; d < rank; ++d) {
        hm_write_u16(w, dims[d]);
    }
    hm_write_bytes(w, name, name_len);
}

int hm_parse_bench(hm_reader_t *r, hm_bench_request_t *bench, hm_text_t *text)
{
    bench->runs = hm_read_u32(r);
    bench->warmup = hm_read_u32(r);
    bench->flags = hm_read_u8(r);
    (void)hm_read_u8(r);
    (void)hm_read_u16(r);
    if (r->short_read || r->offset != r->length) {
        hm_text_str(text, "BENCH: payload is ");
        hm_text_u32(text, r->length);
        hm_text_str(text, " bytes; expected 12 (u32 runs, u32 warmup, u8 flags, u8 0, u16 0)");
        return HM_ERR_MALFORMED_PAYLOAD;
    }
    if (bench->runs < 1 || bench->runs > HM_MAX_BENCH_RUNS) {
        hm_text_str(text, "BENCH: runs = ");
        hm_text_u32(text, bench->runs);
        hm_text_str(text, "; accepted 1..100000");
        return HM_ERR_OUT_OF_RANGE;
    }
    if (bench->warmup > HM_MAX_BENCH_RUNS) {
        hm_text_str(text, "BENCH: warmup = ");
        hm_text_u32(text, bench->warmup);
        hm_text_str(text, "; accepted 0..100000");
        return HM_ERR_OUT_OF_RANGE;
    }
    return HM_OK;
}

void hm_write_bench_result(hm_writer_t *w, const hm_bench_result_t *result)
{
    uint32_t i;
    hm_write_u32(w, result->runs);
    hm_write_u8(w, result->unit);
    hm_write_u8(w, 0);
    hm_write_u16(w, result->n_ops);
    hm_write_u32(w, result->min);
    hm_write_u32(w, result->median);
    hm_write_u32(w, result->mean);
    hm_write_u32(w, result->max);
    hm_write_u32(w, result->n_samples);
    for (i = 0; i < result->n_samples; ++i) {
        hm_write_u32(w, result->samples[i]);
    }
    for (i = 0; i < result->n_ops; ++i) {
        hm_write_string(w, result->op_names[i], HM_MAX_STRING_BYTES);
        hm_write_u32(w, result->op_values[i]);
    }
}

void hm_sample_stats(const uint32_t *samples, uint32_t n, uint32_t *scratch,
                     uint32_t *min, uint32_t *median, uint32_t *mean, uint32_t *max)
{
    uint64_t sum = 0;
    uint32_t gap;
    uint32_t i;
    for (i = 0; i < n; ++i) {
        scratch[i] = samples[i];
        sum += samples[i];
    }
    /* Shell sort (Ciura-like gaps): no recursion, no extra memory, fast enough for 8192 values. */
    for (gap = n / 2u; gap > 0; gap = (gap == 2u) ? 1u : (gap * 5u) / 11u) {
        for (i = gap; i < n; ++i) {
            uint32_t value = scratch[i];
            uint32_t j = i;
            while (j >= gap && scratch[j - gap] > value) {
                scratch[j] = scratch[j - gap];
                j -= gap;
            }
            scratch[j] = value;
        }
    }
    *min = scratch[0];
    *max = scratch[n - 1];
    *mean = (uint32_t)((sum + n / 2u) / n);
    if (n % 2u) {
        *median = scratch[n / 2u];
    } else {
        *median = (uint32_t)(((uint64_t)scratch[n / 2u - 1u] + scratch[n / 2u] + 1u) / 2u);
    }
}

/* ------------------------------------------------------------------ device */

int hm_device_init(hm_device_t *dev, uint8_t *rx_buffer, size_t rx_bytes, uint8_t *tx_buffer, size_t tx_bytes,
                   uint32_t max_payload_bytes, const hm_handler_entry_t *handlers, size_t n_handlers,
                   void *context, hm_write_fn write, void *write_context)
{
    memset(dev, 0, sizeof(*dev));
    if (hm_receiver_init(&dev->receiver, rx_buffer, rx_bytes, max_payload_bytes) != 0) {
        return -1;
    }
    if (tx_buffer == NULL || tx_bytes < HM_TX_BUFFER_BYTES((size_t)max_payload_bytes)) {
        return -1;
    }
    dev->tx = tx_buffer;
    dev->tx_capacity = tx_bytes;
    dev->max_payload_bytes = max_payload_bytes;
    dev->handlers = handlers;
    dev->n_handlers = n_handlers;
    dev->context = context;
    dev->write = write;
    dev->write_context = write_context;
    return 0;
}

static void device_send(hm_device_t *dev, uint8_t message_type, uint16_t seq, uint32_t payload_len)
{
    size_t raw_length = hm_frame_finish(dev->tx, message_type, seq, payload_len);
    hm_frame_send(dev->tx, raw_length, dev->write, dev->write_context);
}

void hm_device_send_error(hm_device_t *dev, uint16_t seq, uint16_t code, const char *text)
{
    hm_writer_t w;
    hm_writer_init(&w, dev->tx + HM_FRAME_HEADER_BYTES, dev->max_payload_bytes);
    hm_write_error(&w, code, text);
    device_send(dev, HM_MSG_ERROR, seq, w.length);
}

static int is_known_message_type(uint8_t message_type)
{
    switch (message_type) {
    case HM_MSG_HELLO: case HM_MSG_INFO: case HM_MSG_ACK: case HM_MSG_ERROR: case HM_MSG_RESET:
    case HM_MSG_LOAD_MODEL: case HM_MSG_SET_AUDIOGRAM: case HM_MSG_SET_STRENGTHS:
    case HM_MSG_INFER: case HM_MSG_INFER_RESULT: case HM_MSG_BENCH: case HM_MSG_BENCH_RESULT:
    case HM_MSG_STREAM: case HM_MSG_STREAM_RESULT: case HM_MSG_POWER: case HM_MSG_POWER_RESULT:
        return 1;
    default:
        return 0;
    }
}

static void device_dispatch(hm_device_t *dev, const hm_frame_t *frame)
{
    char text_buffer[HM_MAX_ERROR_TEXT_BYTES + 1];
    hm_text_t text;
    hm_writer_t reply;
    uint8_t reply_type = 0;
    int status = HM_ERR_UNSUPPORTED;
    size_t i;
    hm_handler_fn handler = NULL;
    dev->requests_served += 1;
    hm_text_init(&text, text_buffer, sizeof(text_buffer));
    hm_writer_init(&reply, dev->tx + HM_FRAME_HEADER_BYTES, dev->max_payload_bytes);
    for (i = 0; i < dev->n_handlers; ++i) {
        if (dev->handlers[i].message_type == frame->message_type) {
            handler = dev->handlers[i].handler;
            break;
        }
    }
    if (handler != NULL) {
        status = handler(dev->context, frame, &reply, &reply_type, &text);
    } else if (is_known_message_type(frame->message_type)) {
        hm_text_str(&text, "message type 0x");
        hm_text_strn(&text, &"0123456789abcdef"[frame->message_type >> 4], 1);
        hm_text_strn(&text, &"0123456789abcdef"[frame->message_type & 15u], 1);
        hm_text_str(&text, " is not served by this device");
    } else {
        status = HM_ERR_UNKNOWN_MESSAGE;
        hm_text_str(&text, "message type 0x");
        hm_text_strn(&text, &"0123456789abcdef"[frame->message_type >> 4], 1);
        hm_text_strn(&text, &"0123456789abcdef"[frame->message_type & 15u], 1);
        hm_text_str(&text, " is unknown");
    }
    if (status != HM_OK) {
        hm_device_send_error(dev, frame->seq, (uint16_t)status, text.data);
    } else if (reply.overflow) {
        hm_text_init(&text, text_buffer, sizeof(text_buffer));
        hm_text_str(&text, "the reply exceeds the payload limit of ");
        hm_text_u32(&text, dev->max_payload_bytes);
        hm_text_str(&text, " bytes");
        hm_device_send_error(dev, frame->seq, HM_ERR_REPLY_TOO_LARGE, text.data);
    } else {
        device_send(dev, reply_type, frame->seq, reply.length);
    }
}

void hm_device_call(hm_device_t *dev, uint8_t message_type, uint16_t seq, const uint8_t *payload,
                    uint32_t payload_len)
{
    hm_frame_t frame;
    frame.version = (uint8_t)HM_PROTO_VERSION;
    frame.message_type = message_type;
    frame.seq = seq;
    frame.payload = payload;
    frame.payload_len = payload_len;
    device_dispatch(dev, &frame);
}

static const char *frame_error_name(uint8_t kind)
{
    switch (kind) {
    case HM_FRAME_BAD_COBS: return "bad_cobs";
    case HM_FRAME_TRUNCATED: return "truncated";
    case HM_FRAME_BAD_CRC: return "bad_crc";
    case HM_FRAME_BAD_VERSION: return "bad_version";
    case HM_FRAME_BAD_LENGTH: return "bad_length";
    case HM_FRAME_OVERSIZE: return "oversize";
    default: return "unknown";
    }
}

void hm_device_push_byte(hm_device_t *dev, uint8_t byte)
{
    hm_frame_t frame;
    hm_frame_error_t error;
    int event = hm_receiver_push(&dev->receiver, byte, &frame, &error);
    if (event == HM_RX_FRAME) {
        device_dispatch(dev, &frame);
    } else if (event == HM_RX_ERROR) {
        /* Unsolicited (seq 0) so the host resends at once instead of waiting for its timeout. */
        char text_buffer[96];
        hm_text_t text;
        uint16_t code = HM_ERR_FRAME_CORRUPT;
        uint16_t seq = 0;
        hm_text_init(&text, text_buffer, sizeof(text_buffer));
        hm_text_str(&text, "frame dropped (");
        hm_text_str(&text, frame_error_name(error.kind));
        hm_text_str(&text, ")");
        if (error.kind == HM_FRAME_OVERSIZE) {
            code = HM_ERR_FRAME_OVERSIZE;
            hm_text_str(&text, ": payload limit ");
            hm_text_u32(&text, dev->max_payload_bytes);
            hm_text_str(&text, " bytes");
        } else if (error.kind == HM_FRAME_BAD_VERSION) {
            code = HM_ERR_BAD_VERSION;
            seq = error.seq;
            hm_text_str(&text, ": this device speaks protocol version 1");
        }
        hm_device_send_error(dev, seq, code, text.data);
    }
}
