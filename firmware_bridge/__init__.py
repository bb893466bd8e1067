"""Host <-> device serial protocol, the device agent and emulated devices (PROTOCOL.md).

Modules: ``framing`` (COBS + CRC-32 frames), ``messages`` (payload codecs), ``client``
(host: ``DeviceClient``), ``agent`` (device: ``python -m hearmask.firmware_bridge.agent``),
``runtime`` (``InferenceRuntime``, LiteRT), ``plugins`` (STREAM pipeline and power
interfaces), ``transport`` (pyserial URLs, pty, UART pacing), ``emulate`` (``emulate://rpi``),
``mlperf`` / ``mlperf_dut`` (MLPerf Tiny DUT protocol), ``fake_runtime`` (test stand-ins).
Nothing here imports torch or tensorflow.
"""
