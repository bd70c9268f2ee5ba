"""Fuzz of the command line: every command of ``hwnas --help`` (sub-commands included) against a
table of bad values (wrong type, NaN, infinity, negative, zero, huge, a non-UTF-8 file, a folder
for a file, a read-only or file output path, a file of another space...).

Every case must end the way docs/reliability.md promises: exit code 2, one line on stderr
(``error: ...``), no traceback, and nothing created or changed in the folder that holds the inputs
and the outputs. The cases fail at validation, so the whole file runs in seconds in process
(:func:`conftest.run_cli`). A command without cases here fails :func:`test_every_command_has_cases`.
"""

from __future__ import annotations

import hashlib
import json
import signal
from pathlib import Path

import pytest

from conftest import run_cli, tiny_space
from hwnas.cli import iter_commands

#: a folder no one can write in, for root too (``os.access`` says so on every Linux)
READ_ONLY = "/proc/sys/hwnas-fuzz-out"


def _cases() -> dict[str, list[tuple[str, list[str]]]]:
    """``command -> [(label, args)]``; ``{NAME}`` in an argument is a file of :func:`files`."""
    tiny = ["--width", "0.25", "--resolution", "16", "--num-classes", "10"]
    g21 = ",".join(["0"] * 21)
    return {
        "arch sample": [
            ("wrong type", ["-s", "mbv2", "--n", "abc"]),
            ("nan", ["-s", "mbv2", "--width", "nan"]),
            ("inf", ["-s", "mbv2", "--width", "inf"]),
            ("negative", ["-s", "mbv2", "--seed", "-1"]),
            ("zero", ["-s", "mbv2", "--n", "0"]),
            ("huge", ["-s", "mbv2", "--resolution", "100000"]),
            ("unknown space", ["-s", "nope"]),
        ],
        "arch show": [
            ("wrong type", ["-s", "mbv2", "-g", "a,b"]),
            ("double dash", ["-s", "mbv2", "--genes=--1,0"]),
            ("non-ASCII digits", ["-s", "mbv2", "-g", "\u0663,\u0661"]),
            ("huge", ["-s", "mbv2", "-g", ",".join(["99999999999999999999"] * 21)]),
            ("negative", ["-s", "mbv2", "-g", ",".join(["-1"] * 21)]),
            ("non-UTF-8 file", ["-s", "mbv2", "-g", "@{LATIN1}"]),
            ("folder", ["-s", "mbv2", "-g", "@{FOLDER}"]),
            ("file of another space", ["-s", "mbv2", "-g", "@{GENES_SHUFFLE}"]),
            ("nan", ["-s", "mbv2", "-g", g21, "--width", "nan"]),
            ("zero", ["-s", "mbv2", "-g", g21, "--resolution", "0"]),
            ("unknown op name", ["-s", "fbnet", "-g", ",".join(["k3_e1"] * 21 + ["k7_e1"])]),
            ("too few op names", ["-s", "fbnet", "-g", "k3_e1,skip"]),
            ("op index out of range", ["-s", "fbnet", "-g", ",".join(["skip"] * 21 + ["9"])]),
        ],
        "arch export": [
            ("wrong type", ["-s", "mbv2", "-g", "a,b"]),
            ("negative", ["-s", "mbv2", "-g", ",".join(["-1"] * 21)]),
            ("space it has no writer for", ["-s", "shufflenetv2", "-g", "@{GENES_SHUFFLE}"]),
            ("no space", ["-g", g21]),
            ("unknown format", ["-f", "nope", "-s", "mbv2", "-g", g21]),
            ("file of another space", ["-s", "mbv2", "-g", "@{GENES_SHUFFLE}"]),
            ("non-UTF-8 file", ["-g", "@{LATIN1}"]),
            ("nan", ["-s", "mbv2", "-g", g21, "--width", "nan"]),
            ("zero", ["-s", "mbv2", "-g", g21, "--resolution", "0"]),
            ("huge", ["-s", "mbv2", "-g", g21, "--num-classes", "1000000000"]),
            ("read-only out", ["-s", "mbv2", "-g", g21, "-o", READ_ONLY]),
            ("folder out", ["-s", "mbv2", "-g", g21, "-o", "{FOLDER}"]),
        ],
        "arch import": [
            ("non-UTF-8 file", ["{LATIN1}"]),
            ("folder", ["{FOLDER}"]),
            ("JSON list", ["{JSON_LIST}"]),
            ("unknown format", ["-f", "nope", "{NETCONFIG}"]),
            ("unknown block type", ["{NETCONFIG_BADBLOCK}"]),
            ("layout of no width", ["{NETCONFIG_BADCHANNELS}"]),
            ("space of another network", ["{NETCONFIG}", "-s", "mbv2"]),
            ("width that does not fit", ["{NETCONFIG}", "--width", "0.5"]),
            ("nan", ["{NETCONFIG}", "--width", "nan"]),
            ("zero", ["{NETCONFIG}", "--resolution", "0"]),
            ("huge", ["{NETCONFIG}", "--num-classes", "1000000000"]),
            ("read-only out", ["{NETCONFIG}", "-o", READ_ONLY]),
            ("folder out", ["{NETCONFIG}", "-o", "{FOLDER}"]),
        ],
        "bundle": [
            ("non-UTF-8 file", ["--checkpoint", "{LATIN1}", "--out", "{OUT}"]),
            ("folder", ["--checkpoint", "{FOLDER}", "--out", "{OUT}"]),
            ("read-only out", ["--checkpoint", "{CKPT}", "--out", READ_ONLY, "-g", g21]),
            ("file out", ["--checkpoint", "{CKPT}", "--out", "{A_FILE}", "-g", g21]),
            ("zero", ["--checkpoint", "{CKPT}", "--out", "{OUT}", "--calib-images", "0"]),
            ("negative", ["--checkpoint", "{CKPT}", "--out", "{OUT}", "--test-images", "-1"]),
            ("wrong type", ["--checkpoint", "{CKPT}", "--out", "{OUT}", "--calib-images", "x"]),
            ("huge", ["--checkpoint", "{CKPT}", "--out", "{OUT}", "--calib-images", "1000000000"]),
            ("file of another space", ["--checkpoint", "{CKPT}", "--out", "{OUT}", "-g", "@{GENES_SHUFFLE}"]),
        ],
        "devices check": [
            ("unknown", ["nope"]),
            ("non-UTF-8 file", ["{LATIN1_TOML}"]),
            ("folder", ["{FOLDER_TOML}"]),
            ("wrong type", ["s22", "--host", "10.0.0.1:abc"]),
        ],
        "devices list": [
            ("extra argument", ["extra"]),
            ("unknown option", ["--nope"]),
        ],
        "devices show": [
            ("unknown", ["nope"]),
            ("non-UTF-8 file", ["{LATIN1_TOML}"]),
            ("folder", ["{FOLDER_TOML}"]),
            ("wrong type", ["s22", "--host", "10.0.0.1:abc"]),
            ("wrong types in the file", ["{BAD_TYPES_TOML}"]),
        ],
        "eval": [
            ("non-UTF-8 file", ["--checkpoint", "{LATIN1}", "-g", g21]),
            ("folder", ["--checkpoint", "{FOLDER}", "-g", g21]),
            ("file of another space", ["--checkpoint", "{CKPT}", "-g", "@{GENES_SHUFFLE}"]),
            ("negative", ["--checkpoint", "{CKPT}", "-g", g21, "--calib-batches", "-1"]),
            ("zero", ["--checkpoint", "{CKPT}", "-g", g21, "--batch-size", "0"]),
            ("wrong type", ["--checkpoint", "{CKPT}", "-g", g21, "--batch-size", "nan"]),
            ("huge", ["--checkpoint", "{CKPT}", "-g", g21, "--batch-size", "1000000000"]),
            ("crafted checkpoint", ["--checkpoint", "{CKPT_CRAFTED}", "-g", g21]),
            ("malicious checkpoint", ["--checkpoint", "{CKPT_EVIL}", "-g", g21]),
        ],
        "export": [
            ("read-only out", ["-s", "mbv2", "-g", g21, "--out", READ_ONLY, *tiny]),
            ("file out", ["-s", "mbv2", "-g", g21, "--out", "{A_FILE}", *tiny]),
            ("nan", ["-s", "mbv2", "-g", g21, "--out", "{OUT}", "--width", "nan"]),
            ("inf", ["-s", "mbv2", "-g", g21, "--out", "{OUT}", "--width", "inf"]),
            ("zero", ["-s", "mbv2", "-g", g21, "--out", "{OUT}", "--resolution", "0"]),
            ("negative", ["-s", "mbv2", "-g", g21, "--out", "{OUT}", "--seed", "-5"]),
            ("huge", ["-s", "mbv2", "-g", g21, "--out", "{OUT}", "--num-classes", "1000000000"]),
            ("non-UTF-8 file", ["-s", "mbv2", "-g", "@{LATIN1}", "--out", "{OUT}"]),
            ("folder", ["-s", "mbv2", "-g", "@{FOLDER}", "--out", "{OUT}"]),
            ("file of another space", ["-s", "mbv2", "-g", g21, "--checkpoint", "{CKPT_SHUFFLE}",
                                       "--out", "{OUT}"]),
            ("wrong type", ["-s", "mbv2", "-g", g21, "--out", "{OUT}", "-f", "pb"]),
        ],
        "finetune": [
            ("non-UTF-8 file", ["--checkpoint", "{LATIN1}", "-g", g21, "--out", "{OUT}"]),
            ("folder", ["--checkpoint", "{FOLDER}", "-g", g21, "--out", "{OUT}"]),
            ("read-only out", ["--checkpoint", "{CKPT}", "-g", g21, "--out", READ_ONLY]),
            ("file out", ["--checkpoint", "{CKPT}", "-g", g21, "--out", "{A_FILE}"]),
            ("zero", ["--checkpoint", "{CKPT}", "-g", g21, "--out", "{OUT}", "--epochs", "0"]),
            ("nan", ["--checkpoint", "{CKPT}", "-g", g21, "--out", "{OUT}", "--lr", "nan"]),
            ("inf", ["--checkpoint", "{CKPT}", "-g", g21, "--out", "{OUT}", "--kd-temperature", "inf"]),
            ("huge", ["--checkpoint", "{CKPT}", "-g", g21, "--out", "{OUT}", "--kd-ratio", "2"]),
            ("negative", ["--checkpoint", "{CKPT}", "-g", g21, "--out", "{OUT}", "--batch-size", "-1"]),
            ("file of another space", ["--checkpoint", "{CKPT}", "-g", "@{GENES_SHUFFLE}", "--out", "{OUT}"]),
        ],
        "lut calibrate": [
            ("nan", ["-d", "host", "--width", "nan"]),
            ("zero", ["-d", "host", "--threads", "0"]),
            ("negative", ["-d", "host", "--resolution", "-3"]),
            ("zero n", ["-d", "host", "--n", "0"]),
            ("huge", ["-d", "host", "--threads", "100000"]),
            ("non-UTF-8 file", ["-d", "{LATIN1_TOML}"]),
            ("empty tables folder", ["-d", "host", "--tables-dir", "{FOLDER}"]),
            ("file of another space", ["-d", "host", "-s", "shufflenetv2", "--tables-dir", "{TABLES_SWAPPED}"]),
            ("negative sustained", ["-d", "host", "--sustained", "-5"]),
            ("no sustained table", ["-d", "host", "--sustained", "30", "--tables-dir", "{FOLDER}"]),
        ],
        "lut import": [
            ("non-UTF-8 file", ["{LATIN1}", "-d", "x", "--tables-dir", "{OUT}"]),
            ("folder", ["{FOLDER}", "-d", "x", "--tables-dir", "{OUT}"]),
            ("not a mapping", ["{JSON_LIST}", "-d", "x", "--tables-dir", "{OUT}"]),
            ("unknown key type", ["{LUT_BADKEY}", "-d", "x", "--tables-dir", "{OUT}"]),
            ("missing keys", ["{LUT_MISSING}", "-d", "x", "--tables-dir", "{OUT}"]),
            ("nan mean", ["{LUT_NAN}", "-d", "x", "--tables-dir", "{OUT}"]),
            ("space of other keys", ["{LUT}", "-d", "x", "-s", "mbv2", "--tables-dir", "{OUT}"]),
            ("two files of one resolution", ["{LUT}", "{LUT}", "-d", "x", "--tables-dir", "{OUT}"]),
            ("unknown format", ["{LUT}", "-f", "nope", "-d", "x", "--tables-dir", "{OUT}"]),
            ("not a device name", ["{LUT}", "-d", "../x", "--tables-dir", "{OUT}"]),
            ("nan", ["{LUT}", "-d", "x", "--width", "nan", "--tables-dir", "{OUT}"]),
            ("zero", ["{LUT}", "-d", "x", "--threads", "0", "--tables-dir", "{OUT}"]),
            ("huge", ["{LUT}", "-d", "x", "--num-classes", "1000000000", "--tables-dir", "{OUT}"]),
            ("read-only tables", ["{LUT}", "-d", "x", "--tables-dir", READ_ONLY]),
            ("file for tables", ["{LUT}", "-d", "x", "--tables-dir", "{A_FILE}"]),
        ],
        "lut show": [
            ("unknown device", ["-d", "nope"]),
            ("non-UTF-8 file", ["-d", "{LATIN1_TOML}"]),
            ("file for a folder", ["-d", "host", "--tables-dir", "{A_FILE}"]),
            ("file of another space", ["-d", "host", "-s", "shufflenetv2", "--tables-dir", "{TABLES_SWAPPED}"]),
            ("non-UTF-8 table", ["-d", "host", "--tables-dir", "{TABLES_LATIN1}"]),
            ("inf sustained", ["-d", "host", "--sustained", "inf"]),
            ("no sustained table", ["-d", "host", "--sustained", "10"]),
        ],
        "lut fit": [
            ("neither --n nor --from-csv", ["-d", "host"]),
            ("both", ["-d", "host", "--n", "20", "--from-csv", "{A_FILE}"]),
            ("zero n", ["-d", "host", "--n", "0"]),
            ("wrong type", ["-d", "host", "--n", "1.5"]),
            ("too few to fit", ["-d", "host", "--n", "3"]),
            ("negative seed", ["-d", "host", "--n", "20", "--seed", "-1"]),
            ("nan", ["-d", "host", "--n", "20", "--width", "nan"]),
            ("unknown predictor", ["-d", "host", "--n", "20", "--predictors", "nope"]),
            ("non-UTF-8 csv", ["-d", "host", "--from-csv", "{LATIN1}"]),
            ("folder for a csv", ["-d", "host", "--from-csv", "{FOLDER}"]),
            ("csv without columns", ["-d", "host", "--from-csv", "{A_FILE}"]),
            ("not a device name", ["-d", "../x", "--from-csv", "{A_FILE}"]),
            ("file of another space", ["-d", "host", "-s", "shufflenetv2", "--n", "20", "--tables-dir", "{TABLES_SWAPPED}"]),
        ],
        "lut validate": [
            ("no stored predictors for a csv", ["-d", "host", "--from-csv", "{A_FILE}"]),
            ("unknown predictor", ["-d", "host", "--predictors", "nope"]),
            ("too few", ["-d", "host", "--n", "2"]),
            ("negative", ["-d", "host", "--threads", "-2"]),
            ("negative seed", ["-d", "host", "--seed", "-1"]),
            ("inf", ["-d", "host", "--width", "inf"]),
            ("wrong type", ["-d", "host", "--n", "1.5"]),
            ("file of another space", ["-d", "host", "-s", "shufflenetv2", "--tables-dir", "{TABLES_SWAPPED}"]),
            ("negative sustained", ["-d", "host", "--sustained", "-1"]),
            ("sustained with a csv", ["-d", "host", "--sustained", "5", "--from-csv", "{A_FILE}"]),
            ("no sustained table", ["-d", "host", "--sustained", "5", "--n", "3"]),
        ],
        "pick": [
            ("non-UTF-8 file", ["--checkpoint", "{LATIN1}", "--max-macs", "1M"]),
            ("folder", ["--checkpoint", "{FOLDER}", "--max-macs", "1M"]),
            ("negative", ["--checkpoint", "{CKPT}", "--max-macs", "-5"]),
            ("nan", ["--checkpoint", "{CKPT}", "--max-macs", "nan"]),
            ("inf", ["--checkpoint", "{CKPT}", "--max-latency-ms", "inf"]),
            ("zero", ["--checkpoint", "{CKPT}", "--max-macs", "1M", "--max-images", "0"]),
            ("huge", ["--checkpoint", "{CKPT}", "--max-macs", "1e400"]),
        ],
        "profile": [
            ("zero", ["-d", "host", "--threads", "0", "--tables-dir", "{OUT}"]),
            ("negative", ["-d", "host", "--threads", "-2", "--tables-dir", "{OUT}"]),
            ("huge", ["-d", "host", "--threads", "100000", "--tables-dir", "{OUT}"]),
            ("nan", ["-d", "host", "--width", "nan", "--tables-dir", "{OUT}"]),
            ("zero runs", ["-d", "host", "--runs", "0", "--tables-dir", "{OUT}"]),
            ("negative warm-up", ["-d", "host", "--warmup", "-1", "--tables-dir", "{OUT}"]),
            ("wrong type", ["-d", "host", "--rounds", "x", "--tables-dir", "{OUT}"]),
            ("non-UTF-8 file", ["-d", "{LATIN1_TOML}", "--tables-dir", "{OUT}"]),
            ("read-only tables", ["-d", "host", "--tables-dir", READ_ONLY]),
            ("file for tables", ["-d", "host", "--tables-dir", "{A_FILE}"]),
            ("unknown method", ["-d", "host", "--method", "fast", "--tables-dir", "{OUT}"]),
            ("trace without an op profiler", ["-d", "host", "--method", "trace", "--tables-dir", "{OUT}"]),
            ("trace with --max-keys", ["-d", "host", "--runtime", "onnx", "--method", "trace", "--max-keys", "2",
                                       "--tables-dir", "{OUT}"]),
            ("negative sustained", ["-d", "host", "--sustained", "-1", "--tables-dir", "{OUT}"]),
            ("nan sustained", ["-d", "host", "--sustained", "nan", "--tables-dir", "{OUT}"]),
            ("huge sustained", ["-d", "host", "--sustained", "1e9", "--tables-dir", "{OUT}"]),
            ("wrong type sustained", ["-d", "host", "--sustained", "long", "--tables-dir", "{OUT}"]),
        ],
        "quickstart": [
            ("read-only out", ["--out", READ_ONLY]),
            ("file out", ["--out", "{A_FILE}"]),
            ("zero", ["--out", "{OUT}", "--epochs", "0"]),
            ("nan", ["--out", "{OUT}", "--max-latency-ms", "nan"]),
            ("inf", ["--out", "{OUT}", "--max-latency-ms", "inf"]),
            ("negative", ["--out", "{OUT}", "--seed", "-1"]),
            ("too small", ["--out", "{OUT}", "--pop", "2"]),
            ("wrong type", ["--out", "{OUT}", "--until", "nope"]),
            ("list state", ["--out", "{QS_LIST}"]),
        ],
        "rank-check": [
            ("non-UTF-8 file", ["--checkpoint", "{LATIN1}"]),
            ("folder", ["--checkpoint", "{FOLDER}"]),
            ("zero", ["--checkpoint", "{CKPT}", "--n", "0"]),
            ("zero epochs", ["--checkpoint", "{CKPT}", "--epochs", "0"]),
            ("negative", ["--checkpoint", "{CKPT}", "--seed", "-3"]),
            ("huge", ["--checkpoint", "{CKPT}", "--seeds", "100000"]),
            ("read-only out", ["--checkpoint", "{CKPT}", "--out", READ_ONLY]),
            ("non-UTF-8 ground truth", ["--checkpoint", "{CKPT}", "--ground-truth", "{LATIN1}"]),
        ],
        "search": [
            ("read-only out", ["-s", "mbv2", "--out", READ_ONLY]),
            ("file out", ["-s", "mbv2", "--out", "{A_FILE}"]),
            ("nan", ["-s", "mbv2", "--out", "{OUT}", "--max-latency-ms", "nan"]),
            ("negative", ["-s", "mbv2", "--out", "{OUT}", "--max-macs", "-5"]),
            ("inf", ["-s", "mbv2", "--out", "{OUT}", "--max-bitops", "inf"]),
            ("huge", ["-s", "mbv2", "--out", "{OUT}", "--max-params", "1e400"]),
            ("zero", ["-s", "mbv2", "--out", "{OUT}", "--gens", "0"]),
            ("wrong type", ["-s", "mbv2", "--out", "{OUT}", "--pop", "many"]),
            ("nan width", ["-s", "mbv2", "--out", "{OUT}", "--width", "nan"]),
            ("non-UTF-8 file", ["--checkpoint", "{LATIN1}", "--out", "{OUT}"]),
            ("folder", ["--checkpoint", "{FOLDER}", "--out", "{OUT}"]),
            ("file of another space", ["--checkpoint", "{CKPT_SHUFFLE}", "-s", "mbv2", "--out", "{OUT}"]),
        ],
        "sparse fit": [
            ("non-UTF-8 file", ["--pairs", "{LATIN1}", "--out", "{OUT}"]),
            ("folder", ["--pairs", "{FOLDER}", "--out", "{OUT}"]),
            ("wrong type", ["--pairs", "{JSON_LIST}", "--out", "{OUT}"]),
            ("huge", ["--pairs", "{LATIN1}", "--out", "{OUT}", "--test-fraction", "1.5"]),
            ("nan", ["--pairs", "{LATIN1}", "--out", "{OUT}", "--test-fraction", "nan"]),
            ("negative", ["--pairs", "{LATIN1}", "--out", "{OUT}", "--seed", "-1"]),
        ],
        "sparse pairs": [
            ("non-UTF-8 file", ["--checkpoint", "{LATIN1}", "--out", "{OUT}"]),
            ("folder", ["--checkpoint", "{FOLDER}", "--out", "{OUT}"]),
            ("zero", ["--checkpoint", "{CKPT}", "--out", "{OUT}", "--n", "0"]),
            ("negative", ["--checkpoint", "{CKPT}", "--out", "{OUT}", "--batch-size", "-4"]),
            ("read-only out", ["--checkpoint", "{CKPT}", "--out", READ_ONLY]),
        ],
        "sparse proxy": [
            ("read-only out", ["--out", READ_ONLY]),
            ("zero", ["--out", "{OUT}", "--epochs", "0"]),
            ("nan", ["--out", "{OUT}", "--width", "nan"]),
            ("negative", ["--out", "{OUT}", "--lr", "-1"]),
            ("huge", ["--out", "{OUT}", "--workers", "100000"]),
            ("unknown space", ["--out", "{OUT}", "--space", "nope"]),
        ],
        "sparse space": [
            ("non-UTF-8 file", ["--predictor", "{LATIN1}", "--out", "{OUT}"]),
            ("folder", ["--predictor", "{FOLDER}", "--out", "{OUT}"]),
            ("zero", ["--predictor", "{LATIN1}", "--out", "{OUT}", "--buckets", "0"]),
            ("too small", ["--predictor", "{LATIN1}", "--out", "{OUT}", "--pop", "1"]),
            ("wrong type", ["--predictor", "{JSON_LIST}", "--out", "{OUT}"]),
        ],
        "sparse teacher": [
            ("read-only out", ["--out", READ_ONLY]),
            ("zero", ["--out", "{OUT}", "--epochs", "0"]),
            ("inf", ["--out", "{OUT}", "--lr", "inf"]),
            ("zero width", ["--out", "{OUT}", "--width", "0"]),
        ],
        "spaces": [
            ("extra argument", ["extra"]),
            ("unknown option", ["--nope"]),
        ],
        "strategies": [
            ("extra argument", ["extra"]),
            ("unknown option", ["--nope"]),
        ],
        "train": [
            ("read-only out", ["--out", READ_ONLY]),
            ("file out", ["--out", "{A_FILE}"]),
            ("zero", ["--out", "{OUT}", "--epochs", "0"]),
            ("nan", ["--out", "{OUT}", "--lr", "nan"]),
            ("inf", ["--out", "{OUT}", "--width", "inf"]),
            ("negative", ["--out", "{OUT}", "--batch-size", "-1"]),
            ("out of range", ["--out", "{OUT}", "--momentum", "1"]),
            ("huge", ["--out", "{OUT}", "--resolution", "100000"]),
            ("non-UTF-8 file", ["--out", "{OUT}", "--strategy", "sparse", "--sparse-space", "{LATIN1}"]),
            ("folder", ["--out", "{OUT}", "--strategy", "sparse", "--sparse-space", "{FOLDER}"]),
        ],
        "verify": [
            ("unknown device", ["-d", "nope", "--bundle", "{FOLDER}"]),
            ("file for a bundle", ["-d", "host", "--bundle", "{LATIN1}"]),
            ("empty bundle", ["-d", "host", "--bundle", "{FOLDER}"]),
            ("zero", ["-d", "host", "--bundle", "{FOLDER}", "--rounds", "0"]),
            ("negative", ["-d", "host", "--bundle", "{FOLDER}", "--inputs", "-1"]),
            ("huge", ["-d", "host", "--bundle", "{FOLDER}", "--threads", "100000"]),
        ],
    }


CASES = _cases()


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """The inputs the cases name, made once: in one folder the test watches for changes."""
    import torch

    from hwnas.checkpoint import save_checkpoint
    from hwnas.supernet import build_supernet

    root = tmp_path_factory.mktemp("fuzz")
    f = {"ROOT": root}
    f["LATIN1"] = root / "latin1.json"
    f["LATIN1"].write_bytes(b"\xe9t\xe9 [1, 2]")  # Latin-1 text: not UTF-8
    f["LATIN1_TOML"] = root / "latin1.toml"
    f["LATIN1_TOML"].write_bytes(b'name = "latin1"\nhuman_name = "\xe9"\n')
    f["BAD_TYPES_TOML"] = root / "types.toml"
    f["BAD_TYPES_TOML"].write_text('name = "types"\nhuman_name = 3\n', encoding="utf-8")
    f["FOLDER"] = root / "a-folder"
    f["FOLDER"].mkdir()
    f["FOLDER_TOML"] = root / "folder.toml"
    f["FOLDER_TOML"].mkdir()
    f["A_FILE"] = root / "a-file"
    f["A_FILE"].write_text("x", encoding="utf-8")
    f["JSON_LIST"] = root / "list.json"
    f["JSON_LIST"].write_text("[1, 2, 3]", encoding="utf-8")
    f["QS_LIST"] = root / "qs"
    f["QS_LIST"].mkdir()
    (f["QS_LIST"] / "quickstart.json").write_text("[1, 2]", encoding="utf-8")
    # Once-for-All files (tests/fixtures/ofa): a published net.config and lookup table, and broken copies
    import yaml

    ofa_dir = Path(__file__).resolve().parent / "fixtures" / "ofa"
    net = json.loads((ofa_dir / "note10_lat-8ms_top1-71.4_finetune-25" / "net.config").read_text())
    f["NETCONFIG"] = root / "net.config"
    f["NETCONFIG"].write_text(json.dumps(net))
    bad = json.loads(json.dumps(net))
    bad["blocks"][3]["mobile_inverted_conv"]["name"] = "DepthConvLayer"
    f["NETCONFIG_BADBLOCK"] = root / "badblock.config"
    f["NETCONFIG_BADBLOCK"].write_text(json.dumps(bad))
    bad = json.loads(json.dumps(net))
    bad["blocks"][4]["mobile_inverted_conv"]["out_channels"] = 48
    f["NETCONFIG_BADCHANNELS"] = root / "badchannels.config"
    f["NETCONFIG_BADCHANNELS"].write_text(json.dumps(bad))
    lut_text = (ofa_dir / "note10_224_lookup_table.yaml").read_text()
    f["LUT"] = root / "lut.yaml"
    f["LUT"].write_text(lut_text)
    lut = yaml.safe_load(lut_text)
    f["LUT_BADKEY"] = root / "badkey.yaml"
    f["LUT_BADKEY"].write_text(yaml.safe_dump({**lut, "Squeeze-input:1x1x8-output:1x1x8": {"mean": 1.0}}))
    f["LUT_MISSING"] = root / "missing.yaml"
    f["LUT_MISSING"].write_text(yaml.safe_dump({k: v for k, v in lut.items() if "56x56x32" not in k}))
    f["LUT_NAN"] = root / "nan.yaml"
    f["LUT_NAN"].write_text(lut_text.replace("mean: 0.994418", "mean: .nan", 1))
    shuffle = tiny_space("shufflenetv2", resolution=16)
    f["GENES_SHUFFLE"] = root / "shuffle-genes.json"
    f["GENES_SHUFFLE"].write_text(json.dumps({"space": shuffle.config(), "genes": list(shuffle.smallest())}))
    for key, name in (("CKPT", "mbv2"), ("CKPT_SHUFFLE", "shufflenetv2")):
        s = tiny_space(name, resolution=16)
        f[key] = save_checkpoint(root / f"{name}.pt", kind="supernet", space=s,
                                 model_state=build_supernet(s).state_dict())
    crafted = torch.load(f["CKPT"], weights_only=True)
    crafted["model"] = [1, 2]
    f["CKPT_CRAFTED"] = root / "crafted.pt"
    torch.save(crafted, f["CKPT_CRAFTED"])
    f["CKPT_EVIL"] = root / "evil.pt"
    torch.save({"format": "hwnas.checkpoint", "model": _Payload(root / "PWNED")}, f["CKPT_EVIL"])
    # latency tables: the shipped host mbv2 table filed as shufflenetv2's; one that is not UTF-8
    from hwnas.latency.table import default_table_dir

    f["TABLES_SWAPPED"] = root / "tables-swapped"
    (f["TABLES_SWAPPED"] / "host").mkdir(parents=True)
    (f["TABLES_SWAPPED"] / "host" / "shufflenetv2-tflite.json").write_bytes(
        (default_table_dir() / "host" / "mbv2-tflite.json").read_bytes())
    f["TABLES_LATIN1"] = root / "tables-latin1"
    (f["TABLES_LATIN1"] / "host").mkdir(parents=True)
    (f["TABLES_LATIN1"] / "host" / "mbv2-tflite.json").write_bytes(b'{"metadata": "\xe9"}')
    return f


class _Payload:
    """Pickles as a call of os.system (the weights-only loader must refuse it, never run it)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


#: a case still running after this long went past validation into real work: a failure
CASE_LIMIT_S = 20.0


class PastValidation(BaseException):
    """Raised in a case that ran too long (a BaseException: no ``except Exception`` swallows it)."""


def _past_validation(signum, frame):
    raise PastValidation(f"still running after {CASE_LIMIT_S:g} s: the bad value was not refused "
                         f"before the work started")


def _snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): (hashlib.sha1(p.read_bytes()).hexdigest() if p.is_file() else "dir")
            for p in sorted(root.rglob("*"))}


def test_every_command_has_cases():
    """A new command (or sub-command) without fuzz cases fails here: add its bad values above."""
    commands = {" ".join(path) for path, _ in iter_commands()}
    assert commands == set(CASES), (f"no fuzz cases for {sorted(commands - set(CASES))}; "
                                    f"cases for unknown commands {sorted(set(CASES) - commands)}")


def test_every_numeric_option_has_a_range():
    """Every int / float option of every command is in hwnas.checks.OPTION_RANGES, and its default
    is inside that range."""
    from hwnas.checks import option_range
    from hwnas.cli import option_flag

    missing, bad_default = [], []
    for path, command in iter_commands():
        for param in command.params:
            flag = option_flag(param)
            annotation = getattr(getattr(param, "type_descriptor", None), "annotation", None)
            rng = option_range(" ".join(path), flag)
            if annotation in (int, float) and not getattr(param, "is_flag", False) and rng is None:
                missing.append(f"{' '.join(path)} {flag}")
            if rng is not None:
                try:
                    rng.check(flag, param.default)
                except Exception as exc:  # noqa: BLE001 (collected and reported below)
                    bad_default.append(f"{' '.join(path)} {flag}: {exc}")
    assert not missing, f"numeric options without a range in OPTION_RANGES: {missing}"
    assert not bad_default, bad_default


@pytest.mark.parametrize("command,label,args", [(c, label, args) for c, cases in CASES.items()
                                                for label, args in cases],
                         ids=[f"{c}-{label}" for c, cases in CASES.items() for label, _ in cases])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(command, label, args, files, capsys):
    root = files["ROOT"]
    out = root / "out"
    values = {k: str(v) for k, v in files.items()} | {"OUT": str(out)}
    argv = [*command.split(), *(a.format(**values) if "{" in a else a for a in args)]
    before = _snapshot(root)
    signal.signal(signal.SIGALRM, _past_validation)
    signal.setitimer(signal.ITIMER_REAL, CASE_LIMIT_S)
    try:
        code, _, err = run_cli(argv, capsys)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    assert code == 2, f"{argv}: exit {code}\n{err}"
    assert err.startswith("error: ") and err.count("\n") == 1, f"{argv}: not one error line:\n{err}"
    assert "Traceback" not in err and "╭" not in err
    assert _snapshot(root) == before, f"{argv} changed files in {root}"
    assert not out.exists()
