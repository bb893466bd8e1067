"""The live hearing-aid loop in a Raspberry Pi bundle: its config section, systemd units and needs.

For the bundle exporter (:mod:`hearmask.targets.bundle_rpi`): put
:func:`live_config_section` under ``"live"`` in the bundle's ``config.json``, copy
:data:`LIVE_ENTRY_MODULES` (and what they import) into ``agent/``, add
:data:`LIVE_REQUIREMENTS` to ``requirements.txt``, and write the two units:

- ``hearmask-jackd.service`` (:func:`jackd_systemd_unit`): the JACK server on the USB
  sound card, real-time scheduling, as the bundle's user;
- ``hearmask-live.service`` (:func:`live_systemd_unit`): ``python -m
  hearmask.firmware_bridge.live --config config.json`` after the server; logs to the
  journal; restarts on failure but not on a configuration error (exit status 2). It
  conflicts with ``hearmask-agent.service``: both serve the serial port (the live loop
  answers SET_STRENGTHS / SET_AUDIOGRAM itself), so one runs at a time.

Debian packages on the Pi: :data:`LIVE_APT_PACKAGES` (``jackd2``; answer "no" to its
real-time question: the units grant real-time priority themselves).
"""

from __future__ import annotations

import shlex

from hearmask.errors import HearmaskError

LIVE_SERVICE_NAME = "hearmask-live"
JACKD_SERVICE_NAME = "hearmask-jackd"
AGENT_SERVICE_NAME = "hearmask-agent"
LIVE_ENTRY_MODULES = (
    "hearmask.firmware_bridge.live",
    "hearmask.firmware_bridge.live_processor",
    "hearmask.firmware_bridge.live_limiter",
    "hearmask.firmware_bridge.live_jack",
    "hearmask.firmware_bridge.live_blocks",
    "hearmask.firmware_bridge.resample",
    "hearmask.firmware_bridge.agent",
)
LIVE_REQUIREMENTS = ("JACK-Client>=0.5",)
LIVE_APT_PACKAGES = ("jackd2",)
DEFAULT_JACK_DEVICE = "hw:USB"  # ALSA name of most USB audio interfaces (see `aplay -l`)
DEFAULT_JACK_RATE_HZ = 48000  # what USB interfaces run natively; the loop resamples to 16 kHz
# Frames per period: 2.67 ms at 48 kHz. Loop + card latency at 48 kHz, n = 2 (hearmask's budget + one
# capture and two playback periods): 64 -> 12.2 ms, 128 -> 16.2 ms, 192 -> 17.5 ms (one hop per period,
# no block queue, but longer periods); smaller periods cost more callbacks per second.
DEFAULT_JACK_PERIOD = 128
DEFAULT_JACK_PERIODS = 2  # periods of playback buffering (ALSA minimum for most USB cards)


def live_config_section(*, capture_ports=None, playback_ports=None, jack_server: str | None = None,
                        client_name: str = "hearmask-live", max_output_dbfs: float = -6.0, max_gain_db: float = 40.0,
                        ramp_hops: int = 8, allow_exaggeration: bool = False, serial_control: bool = True,
                        summary_file: str | None = "live-summary.json") -> dict:
    """The ``"live"`` object of ``config.json`` (read by :func:`hearmask.firmware_bridge.live.options_from_bundle_config`).

    ``capture_ports`` / ``playback_ports``: JACK port names, or None for the first physical
    capture port and the first two physical playback ports. The listener (audiogram,
    strengths), the serial port and the runtime come from the config's other sections.
    """
    from hearmask.firmware_bridge.live_limiter import LimiterConfig

    LimiterConfig(max_output_dbfs=float(max_output_dbfs), max_gain_db=float(max_gain_db))  # validates both
    for name, ports in (("capture_ports", capture_ports), ("playback_ports", playback_ports)):
        if ports is not None and (isinstance(ports, str) or not all(isinstance(p, str) and ":" in p for p in ports)):
            raise HearmaskError(f"{name} must be a list of JACK port names such as 'system:capture_1', or None; "
                                f"got {ports!r}")
    if isinstance(ramp_hops, bool) or not isinstance(ramp_hops, int) or ramp_hops < 1:
        raise HearmaskError(f"ramp_hops must be an integer >= 1, got {ramp_hops!r}")
    return {
        "backend": "jack",
        "jack_server": jack_server,
        "client_name": client_name,
        "capture_ports": None if capture_ports is None else list(capture_ports),
        "playback_ports": None if playback_ports is None else list(playback_ports),
        "max_output_dbfs": float(max_output_dbfs),
        "max_gain_db": float(max_gain_db),
        "ramp_hops": ramp_hops,
        "allow_exaggeration": bool(allow_exaggeration),
        "serial_control": bool(serial_control),
        "summary_file": summary_file,
    }


def jackd_command(device: str = DEFAULT_JACK_DEVICE, rate_hz: int = DEFAULT_JACK_RATE_HZ,
                  period: int = DEFAULT_JACK_PERIOD, periods: int = DEFAULT_JACK_PERIODS) -> list[str]:
    """``jackd`` on an ALSA card, real-time: ``-R -P 70 -d alsa -d DEVICE -r RATE -p PERIOD -n PERIODS``."""
    if not isinstance(device, str) or not device or any(c.isspace() for c in device):
        raise HearmaskError(f"ALSA device {device!r} is not accepted; expected e.g. hw:USB or hw:1 (see `aplay -l`)")
    if isinstance(rate_hz, bool) or rate_hz not in (16000, 22050, 24000, 32000, 44100, 48000, 88200, 96000):
        raise HearmaskError(f"JACK sample rate {rate_hz!r} is not accepted; use a card rate such as 48000 or 44100")
    if isinstance(period, bool) or not isinstance(period, int) or not 16 <= period <= 4096:
        raise HearmaskError(f"JACK period {period!r} is not accepted; use 16..4096 frames (e.g. 64, 128, 192, 256)")
    if isinstance(periods, bool) or not isinstance(periods, int) or not 2 <= periods <= 8:
        raise HearmaskError(f"JACK periods {periods!r} is not accepted; use 2..8 (2 is the lowest latency)")
    return ["/usr/bin/jackd", "-R", "-P", "70", "-d", "alsa", "-d", device, "-r", str(rate_hz), "-p", str(period),
            "-n", str(periods)]


def jackd_systemd_unit(service_user: str, **jackd_options) -> str:
    """The JACK server on the sound card as a service of ``service_user`` (the live loop's user)."""
    command = shlex.join(jackd_command(**jackd_options))
    return f"""[Unit]
Description=JACK audio server for the hearmask live loop
After=sound.target
StartLimitIntervalSec=0

[Service]
Type=simple
User={service_user}
SupplementaryGroups=audio
# Headless: no D-Bus device reservation.
Environment=JACK_NO_AUDIO_RESERVATION=1
LimitRTPRIO=95
LimitMEMLOCK=infinity
ExecStart={command}
Restart=on-failure
RestartSec=2
StandardOutput=journal
StandardError=journal
SyslogIdentifier={JACKD_SERVICE_NAME}

[Install]
WantedBy=multi-user.target
"""


def live_systemd_unit(install_dir: str, service_user: str, config_file: str = "config.json",
                      agent_dir: str = "agent") -> str:
    """The live loop as a service: starts at boot after the JACK server, with the bundle's config."""
    if not install_dir.startswith("/"):
        raise HearmaskError(f"install_dir must be an absolute path on the Pi, got {install_dir!r}")
    return f"""[Unit]
Description=hearmask live hearing-aid loop (JACK, LiteRT int8)
Documentation=file://{install_dir}/README.md
Requires={JACKD_SERVICE_NAME}.service
After={JACKD_SERVICE_NAME}.service
# Both serve the serial port; the live loop answers SET_STRENGTHS / SET_AUDIOGRAM itself.
Conflicts={AGENT_SERVICE_NAME}.service
StartLimitIntervalSec=0

[Service]
Type=simple
User={service_user}
SupplementaryGroups=audio dialout
WorkingDirectory={install_dir}
Environment=PYTHONUNBUFFERED=1
Environment=PYTHONPATH={install_dir}/{agent_dir}
LimitRTPRIO=95
LimitMEMLOCK=infinity
ExecStart={install_dir}/.venv/bin/python -m hearmask.firmware_bridge.live --config {install_dir}/{config_file}
Restart=on-failure
RestartSec=2
RestartPreventExitStatus=2
StandardOutput=journal
StandardError=journal
SyslogIdentifier={LIVE_SERVICE_NAME}

[Install]
WantedBy=multi-user.target
"""
