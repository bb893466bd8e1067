"""Reading and writing audiogram files; resolving a profile name or a file path.

Formats
-------
hearmask JSON (``.json``), written by :func:`save_audiogram`::

    {
      "format": "hearmask-audiogram",    # identifies the file; may be omitted on reading
      "version": 1,                       # may be omitted on reading
      "name": "listener 7",               # optional on reading (default: the file stem)
      "frequencies_hz": [250, 500, ...],  # strictly increasing, 125-16000 Hz
      "thresholds_db_hl": [20, 25, ...],  # mono thresholds, -10..120 dB HL; may be
                                          # omitted when an ear is given (then the mean
                                          # of the ears, or the one ear)
      "left_db_hl": [...],                # optional, same length as frequencies_hz
      "right_db_hl": [...]                # optional
    }

    Other keys are rejected, so a misspelt key is reported rather than ignored.

CSV (``.csv``): a header row, then one row per frequency (and ear)::

    frequency_hz,threshold_db_hl[,ear]

    ``ear`` is ``left``, ``right`` or ``both`` (both = the mono thresholds); without the
    column every row is ``both``. Each ear's rows are in increasing frequency and all
    ears share one frequency list. The audiogram is named after the file stem. The
    writer emits ``both`` rows only where the mono thresholds are not just the ears'.

Clarity challenge listener JSON (read; :func:`clarity_listener_dict` builds one): a
single listener ``{"name", "audiogram_cfs", "audiogram_levels_l",
"audiogram_levels_r"}`` or the metadata file's dict of such listeners keyed by
listener id, from which ``listener_id`` picks one (needed when there are several).

Every problem with a file raises HearmaskError whose message starts with the path.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

from hearmask.errors import HearmaskError
from hearmask.profiles.audiogram import Audiogram
from hearmask.profiles.standard import (
    is_standard_profile_name,
    standard_audiogram,
    unknown_profile_message,
)

JSON_FORMAT = "hearmask-audiogram"
JSON_VERSION = 1
_JSON_KEYS = (
    "format", "version", "name", "frequencies_hz", "thresholds_db_hl", "left_db_hl", "right_db_hl",
)
CLARITY_KEYS = ("audiogram_cfs", "audiogram_levels_l", "audiogram_levels_r")
CSV_COLUMNS = ("frequency_hz", "threshold_db_hl", "ear")
CSV_EARS = ("left", "right", "both")
FILE_SUFFIXES = (".json", ".csv")


def load_audiogram(name_or_path: str | Path, listener_id: str | None = None) -> Audiogram:
    """A standard profile by name (``"N3"``, any case) or an audiogram file.

    A ``str`` that is a standard name gives that profile; any other ``str`` or a ``Path``
    is read as a file: ``.csv`` as CSV, ``.json`` as hearmask or Clarity JSON (told apart
    by content), any other suffix by its first character (``{`` means JSON).
    ``listener_id`` picks one listener from a Clarity listener dict.
    """
    if isinstance(name_or_path, str) and is_standard_profile_name(name_or_path):
        if listener_id is not None:
            raise HearmaskError(
                f"listener id {listener_id!r} given with the standard profile "
                f"{name_or_path!r}; a listener id selects from a Clarity listener file only"
            )
        return standard_audiogram(name_or_path)
    if not isinstance(name_or_path, (str, Path)):
        raise HearmaskError(
            "an audiogram must be given as a profile name or a file path, got "
            f"{type(name_or_path).__name__} {name_or_path!r}"
        )
    path = Path(name_or_path)
    if isinstance(name_or_path, str) and not path.exists() and not _looks_like_path(name_or_path):
        raise HearmaskError(unknown_profile_message(name_or_path))
    text = _read_text(path)
    if path.suffix.lower() == ".csv" or (path.suffix.lower() != ".json" and not text.lstrip().startswith("{")):
        if listener_id is not None:
            raise HearmaskError(f"{path}: a listener id applies to Clarity JSON files, not CSV")
        return _audiogram_from_csv_text(text, path)
    return _audiogram_from_json_text(text, path, listener_id)


def save_audiogram(audiogram: Audiogram, path: str | Path) -> Path:
    """Write ``audiogram`` as hearmask JSON (``.json``) or CSV (``.csv``); returns the path.

    Parent folders are created. Reading the file back gives an equal audiogram (for CSV
    the name becomes the file stem).
    """
    if not isinstance(audiogram, Audiogram):
        raise HearmaskError(f"save_audiogram needs an Audiogram, got {type(audiogram).__name__}")
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".json":
        text = json.dumps(
            {"format": JSON_FORMAT, "version": JSON_VERSION, **audiogram.to_json_dict()}, indent=2
        ) + "\n"
    elif suffix == ".csv":
        text = _audiogram_to_csv_text(audiogram)
    else:
        raise HearmaskError(
            f"{path}: cannot tell the audiogram format from suffix {path.suffix!r}; "
            f"accepted: {', '.join(FILE_SUFFIXES)}"
        )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as error:
        raise HearmaskError(f"{path}: cannot write the audiogram: {error.strerror or error}") from error
    return path


def audiogram_from_json_dict(data: Any, source: str = "<dict>") -> Audiogram:
    """An audiogram from a hearmask JSON object (format in the module docstring)."""
    if not isinstance(data, dict):
        raise HearmaskError(f"{source}: expected a JSON object, got {_json_type(data)}")
    unknown_keys = sorted(set(data) - set(_JSON_KEYS))
    if unknown_keys:
        raise HearmaskError(
            f"{source}: unknown key(s) {', '.join(map(repr, unknown_keys))}; "
            f"accepted: {', '.join(_JSON_KEYS)}"
        )
    if data.get("format", JSON_FORMAT) != JSON_FORMAT:
        raise HearmaskError(
            f"{source}: format is {data['format']!r}; expected {JSON_FORMAT!r}"
        )
    if data.get("version", JSON_VERSION) != JSON_VERSION:
        raise HearmaskError(
            f"{source}: version {data['version']!r} is not supported; this hearmask reads "
            f"version {JSON_VERSION}"
        )
    if "frequencies_hz" not in data:
        raise HearmaskError(f"{source}: missing key 'frequencies_hz' (a list of frequencies in Hz)")
    if not any(key in data for key in ("thresholds_db_hl", "left_db_hl", "right_db_hl")):
        raise HearmaskError(
            f"{source}: missing key 'thresholds_db_hl' (a list of dB HL values, one per "
            "frequency); or give 'left_db_hl'/'right_db_hl'"
        )
    name = data.get("name", Path(source).stem)
    if not isinstance(name, str):
        raise HearmaskError(f"{source}: 'name' must be a string, got {_json_type(name)}")
    return _build(
        source,
        name,
        frequencies_hz=_json_number_list(data, "frequencies_hz", source),
        thresholds_db_hl=_json_number_list(data, "thresholds_db_hl", source),
        left_db_hl=_json_number_list(data, "left_db_hl", source),
        right_db_hl=_json_number_list(data, "right_db_hl", source),
    )


def audiogram_from_clarity_listener(listener: Any, source: str = "<dict>", name: str | None = None) -> Audiogram:
    """An audiogram with both ears from one Clarity listener object.

    The name is ``name``, else the listener's ``"name"`` field, else the source's stem.
    """
    if not isinstance(listener, dict):
        raise HearmaskError(f"{source}: a Clarity listener must be a JSON object, got {_json_type(listener)}")
    missing = [key for key in CLARITY_KEYS if key not in listener]
    if missing:
        raise HearmaskError(
            f"{source}: Clarity listener lacks key(s) {', '.join(map(repr, missing))}; "
            f"needed: {', '.join(CLARITY_KEYS)}"
        )
    if name is None:
        name = listener.get("name", Path(source).stem)
    if not isinstance(name, str):
        raise HearmaskError(f"{source}: listener 'name' must be a string, got {_json_type(name)}")
    return _build(
        source,
        name,
        frequencies_hz=_json_number_list(listener, "audiogram_cfs", source),
        thresholds_db_hl=None,
        left_db_hl=_json_number_list(listener, "audiogram_levels_l", source),
        right_db_hl=_json_number_list(listener, "audiogram_levels_r", source),
    )


def clarity_listener_dict(audiogram: Audiogram) -> dict[str, Any]:
    """The Clarity listener object for ``audiogram`` (each ear via ``for_ear``)."""
    return {
        "name": audiogram.name,
        "audiogram_cfs": list(audiogram.frequencies_hz),
        "audiogram_levels_l": list(audiogram.for_ear("left").thresholds_db_hl),
        "audiogram_levels_r": list(audiogram.for_ear("right").thresholds_db_hl),
    }


# --- JSON -----------------------------------------------------------------------------


def _audiogram_from_json_text(text: str, path: Path, listener_id: str | None) -> Audiogram:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise HearmaskError(
            f"{path}: not valid JSON ({error.msg} at line {error.lineno}, column {error.colno})"
        ) from error
    source = str(path)
    if isinstance(data, dict) and any(key in data for key in CLARITY_KEYS):
        _check_no_listener_id(listener_id, path, data.get("name"))
        return audiogram_from_clarity_listener(data, source)
    if isinstance(data, dict) and data and all(isinstance(value, dict) for value in data.values()) and any(
        key in value for value in data.values() for key in CLARITY_KEYS
    ):
        return _pick_clarity_listener(data, path, listener_id)
    if isinstance(data, dict) and any(key in data for key in _JSON_KEYS):
        if listener_id is not None:
            raise HearmaskError(
                f"{path}: a listener id ({listener_id!r}) applies to Clarity listener files; "
                "this is a hearmask audiogram file"
            )
        return audiogram_from_json_dict(data, source)
    raise HearmaskError(
        f"{path}: not a recognised audiogram JSON; expected a hearmask audiogram "
        "(keys 'frequencies_hz', 'thresholds_db_hl'), a Clarity listener (keys "
        f"{', '.join(map(repr, CLARITY_KEYS))}) or a dict of Clarity listeners; got "
        + (f"an object with keys {sorted(data)[:8]}" if isinstance(data, dict) else _json_type(data))
    )


def _check_no_listener_id(listener_id: str | None, path: Path, name: Any) -> None:
    # A single-listener file may still be asked for by its own name.
    if listener_id is not None and listener_id != name:
        raise HearmaskError(
            f"{path}: holds one Clarity listener ({name!r}), not {listener_id!r}"
        )


def _pick_clarity_listener(listeners: dict[str, Any], path: Path, listener_id: str | None) -> Audiogram:
    listener_ids = list(listeners)
    if listener_id is None:
        if len(listener_ids) > 1:
            raise HearmaskError(
                f"{path}: holds {len(listener_ids)} Clarity listeners; choose one with a "
                f"listener id (--listener): {_list_ids(listener_ids)}"
            )
        listener_id = listener_ids[0]
    if listener_id not in listeners:
        raise HearmaskError(
            f"{path}: no Clarity listener {listener_id!r}; listeners in the file: "
            f"{_list_ids(listener_ids)}"
        )
    return audiogram_from_clarity_listener(
        listeners[listener_id], f"{path} (listener {listener_id!r})", name=listener_id
    )


def _list_ids(listener_ids: list[str], limit: int = 20) -> str:
    shown = ", ".join(listener_ids[:limit])
    return shown + (f", ... ({len(listener_ids)} in all)" if len(listener_ids) > limit else "")


def _json_number_list(data: dict[str, Any], key: str, source: str) -> list[float] | None:
    if key not in data:
        return None
    values = data[key]
    if not isinstance(values, list):
        raise HearmaskError(f"{source}: {key!r} must be a list of numbers, got {_json_type(values)}")
    for index, value in enumerate(values):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise HearmaskError(
                f"{source}: {key!r} item #{index + 1} is {_json_type(value)} {value!r}; "
                "expected a number"
            )
    try:
        return [float(value) for value in values]
    except OverflowError:
        raise HearmaskError(f"{source}: {key!r} holds a number too large for a float") from None


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number" if isinstance(value, (int, float)) else type(value).__name__)


# --- CSV ------------------------------------------------------------------------------


def _audiogram_from_csv_text(text: str, path: Path) -> Audiogram:
    rows = [
        (line_number, row)
        for line_number, row in enumerate(csv.reader(io.StringIO(text)), start=1)
        if any(cell.strip() for cell in row)
    ]
    if not rows:
        raise HearmaskError(f"{path}: no rows; expected the header {','.join(CSV_COLUMNS[:2])}[,ear]")
    header_line, header = rows[0]
    header = [cell.strip().lower() for cell in header]
    if header not in (list(CSV_COLUMNS[:2]), list(CSV_COLUMNS)):
        raise HearmaskError(
            f"{path}, line {header_line}: header is {','.join(header)!r}; expected "
            f"'frequency_hz,threshold_db_hl' or 'frequency_hz,threshold_db_hl,ear'"
        )
    if len(rows) == 1:
        raise HearmaskError(f"{path}: has a header but no data rows")
    per_ear: dict[str, tuple[list[float], list[float]]] = {}
    for line_number, row in rows[1:]:
        if len(row) != len(header):
            raise HearmaskError(
                f"{path}, line {line_number}: {len(row)} cells; expected {len(header)} "
                f"({','.join(header)})"
            )
        frequency_hz = _csv_number(row[0], "frequency_hz", path, line_number)
        threshold_db_hl = _csv_number(row[1], "threshold_db_hl", path, line_number)
        ear = row[2].strip().lower() if len(header) == 3 else "both"
        if ear not in CSV_EARS:
            raise HearmaskError(
                f"{path}, line {line_number}: ear is {row[2]!r}; accepted: {', '.join(CSV_EARS)}"
            )
        frequencies_hz, thresholds_db_hl = per_ear.setdefault(ear, ([], []))
        frequencies_hz.append(frequency_hz)
        thresholds_db_hl.append(threshold_db_hl)
    grids = {ear: frequencies for ear, (frequencies, _) in per_ear.items()}
    first_ear, frequencies_hz = next(iter(grids.items()))
    for ear, ear_frequencies_hz in grids.items():
        if ear_frequencies_hz != frequencies_hz:
            raise HearmaskError(
                f"{path}: ear {ear!r} lists frequencies {_short(ear_frequencies_hz)} but ear "
                f"{first_ear!r} lists {_short(frequencies_hz)}; all ears need the same frequencies"
            )
    return _build(
        str(path),
        path.stem,
        frequencies_hz=frequencies_hz,
        thresholds_db_hl=per_ear.get("both", (None, None))[1],
        left_db_hl=per_ear.get("left", (None, None))[1],
        right_db_hl=per_ear.get("right", (None, None))[1],
    )


def _csv_number(cell: str, column: str, path: Path, line_number: int) -> float:
    try:
        value = float(cell)
    except ValueError:
        raise HearmaskError(
            f"{path}, line {line_number}: {column} {cell.strip()!r} is not a number"
        ) from None
    if not math.isfinite(value):
        raise HearmaskError(f"{path}, line {line_number}: {column} is {cell.strip()!r}; expected a finite number")
    return value


def _audiogram_to_csv_text(audiogram: Audiogram) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    if not audiogram.has_per_ear:
        writer.writerow(CSV_COLUMNS[:2])
        for frequency_hz, threshold_db_hl in zip(audiogram.frequencies_hz, audiogram.thresholds_db_hl):
            writer.writerow((repr(frequency_hz), repr(threshold_db_hl)))
        return buffer.getvalue()
    writer.writerow(CSV_COLUMNS)
    ears = [("left", audiogram.left_db_hl), ("right", audiogram.right_db_hl)]
    if audiogram.has_explicit_mono:
        ears.append(("both", audiogram.thresholds_db_hl))
    for ear, thresholds_db_hl in ears:
        if thresholds_db_hl is None:
            continue
        for frequency_hz, threshold_db_hl in zip(audiogram.frequencies_hz, thresholds_db_hl):
            # repr() is the shortest text that reads back to the same float.
            writer.writerow((repr(frequency_hz), repr(threshold_db_hl), ear))
    return buffer.getvalue()


def _short(values: list[float], limit: int = 6) -> str:
    text = ", ".join(f"{value:g}" for value in values[:limit])
    return f"[{text}{', ...' if len(values) > limit else ''}]"


# --- shared ---------------------------------------------------------------------------


def _build(source: str, name: str, **fields: Any) -> Audiogram:
    """Construct and validate, prefixing any validation message with the file."""
    try:
        return Audiogram(name, **fields)
    except HearmaskError as error:
        raise HearmaskError(f"{source}: {error}") from error


def _looks_like_path(text: str) -> bool:
    return Path(text).suffix.lower() in FILE_SUFFIXES or "/" in text or "\\" in text


def _read_text(path: Path) -> str:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise HearmaskError(f"{path}: no such audiogram file") from None
    except IsADirectoryError:
        raise HearmaskError(f"{path}: is a folder, not an audiogram file") from None
    except OSError as error:
        raise HearmaskError(f"{path}: cannot read the audiogram file: {error.strerror or error}") from None
    if not data.strip():
        raise HearmaskError(f"{path}: the file is empty; expected hearmask JSON, CSV or Clarity listener JSON")
    try:
        # utf-8-sig: spreadsheet programs often write a byte-order mark before the header.
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise HearmaskError(
            f"{path}: not a text file (byte {error.start} is not UTF-8); expected JSON or CSV"
        ) from None
