/*
 * hm_board_port.h -- what the TFLM firmware template needs from your board. Implement these
 * three functions in one .c/.cc file of your project (vendor HAL or register access).
 */
#ifndef HM_BOARD_PORT_H
#define HM_BOARD_PORT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Bring up clocks and the serial port (115200 8N1 or faster; the host's --baud must match). */
void hm_board_init(void);
/* Write bytes to the serial port; may block until they are queued. context is unused. */
void hm_board_write(void *context, const uint8_t *data, size_t length);
/* The next received byte, or -1 when none is waiting (never blocks). */
int hm_board_read_byte(void);

#ifdef __cplusplus
}
#endif

#endif /* HM_BOARD_PORT_H */
