"""The key of a blind listening test: which system and item each opaque id on the page stands for.

``gan-enhance listen`` writes it beside (never inside) the folder served to listeners, by default
``<out>-key.json``; the experimenter keeps it. ``gan-enhance listen-results --key`` joins it to the
listeners' answers, which name only trials, condition ids and A/B sides. Layout::

    {"format": "gan_enhance.listening_key", "version": 1, "test_id": ..., "seed": ...,
     "systems": {name: folder}, "reference_dir": ...,
     "mushra": {trial: {"item": ..., "conditions": {condition id: system}, "files": {src: system}}},
     "ab": {pair: {"item": ..., "a": system, "b": system}}}

The hidden reference and the low anchor appear as the systems ``reference`` and ``anchor``.
"""

from __future__ import annotations

import json
import os

from gan_enhance.errors import DataError

KEY_FORMAT = "gan_enhance.listening_key"
KEY_VERSION = 1


def default_key_path(out_dir: str) -> str:
    """``<out_dir>-key.json``, beside the served folder."""
    return os.path.normpath(os.path.abspath(out_dir)) + "-key.json"


def write_key(path: str, key: dict) -> None:
    """Write ``key`` (atomically) with its format header."""
    from gan_enhance.atomic import write_text

    write_text(path, json.dumps({"format": KEY_FORMAT, "version": KEY_VERSION} | key, indent=1) + "\n")


def read_key(path: str) -> dict:
    """Read a key file written by :func:`write_key`."""
    if not os.path.isfile(path):
        raise DataError(f"key file '{path}' does not exist; pass the -key.json that gan-enhance listen wrote")
    try:
        with open(path, encoding="utf-8") as handle:
            key = json.load(handle)
    except json.JSONDecodeError as error:
        raise DataError(f"key file '{path}' is not valid JSON ({error})") from None
    if not isinstance(key, dict) or key.get("format") != KEY_FORMAT:
        raise DataError(f"'{path}' is not a listening-test key (the -key.json that gan-enhance listen wrote)")
    return key


def apply_key(answers, key: dict, key_path: str) -> None:
    """Fill in ``system`` and ``item`` of every answer in ``answers`` (an :class:`.results.Answers`) from
    ``key``, checking that the key belongs to the same build of the test."""
    if answers.test_id != key["test_id"]:
        raise DataError(
            f"'{answers.source}' answers test {answers.test_id}, but key '{key_path}' is for test "
            f"{key['test_id']}; pass the key written with that page"
        )
    for row in answers.mushra:
        trial = key["mushra"].get(row["trial"], {})
        if row["condition"] not in trial.get("conditions", {}):
            raise DataError(
                f"'{answers.source}': trial {row['trial']} condition {row['condition']} is not in key "
                f"'{key_path}'; the key belongs to another build of test {key['test_id']}"
            )
        row.update(system=trial["conditions"][row["condition"]], item=trial["item"])
    for row in answers.ab:
        if row["pair"] not in key["ab"]:
            raise DataError(
                f"'{answers.source}': A/B pair {row['pair']} is not in key '{key_path}'; the key belongs "
                f"to another build of test {key['test_id']}"
            )
        entry = key["ab"][row["pair"]]
        row.update(item=entry["item"], a=entry["a"], b=entry["b"])
