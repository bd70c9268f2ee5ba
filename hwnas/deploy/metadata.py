"""TFLite Model Metadata for an image classifier, written with the ``flatbuffers`` builder.

The layout follows the TensorFlow Lite Support metadata schema (``metadata_schema.fbs``, file
identifier ``M001``): a ``ModelMetadata`` table (name, description, version, author, license,
``min_parser_version``) with one ``SubGraphMetadata`` whose input ``TensorMetadata`` carries
``ImageProperties`` (colour space, image size) and a ``NormalizationOptions`` process unit (mean /
std in pixel units, ``(pixel - mean) / std``), and whose output ``TensorMetadata`` carries the
labels as a ``TENSOR_AXIS_LABELS`` associated file. The LiteRT support library, the metadata
extractor of the Task libraries and MediaPipe Tasks ``ImageClassifier`` read exactly these fields.

Field slots are the schema's field order (flatbuffers slot ``i`` is the ``i``-th field of a
table); union members are numbered from 1 in declaration order. Only the fields written here are
listed.

The same facts, as a plain dict, go into the ONNX file's ``metadata_props`` (:meth:`ModelFacts.to_dict`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from hwnas.errors import HwnasError

#: file identifier of a metadata flatbuffer, and the name of the model metadata entry holding it.
METADATA_IDENTIFIER = b"M001"
METADATA_NAME = "TFLITE_METADATA"
#: every field written here exists since metadata schema 1.0.0.
MIN_PARSER_VERSION = "1.0.0"
LABELS_FILE = "labels.txt"

COLOR_SPACES = {"RGB": 1, "GRAYSCALE": 2}  # enum ColorSpaceType
_IMAGE_PROPERTIES = 2  # union ContentProperties: FeatureProperties=1, ImageProperties=2
_FEATURE_PROPERTIES = 1
_NORMALIZATION_OPTIONS = 1  # union ProcessUnitOptions
_TENSOR_AXIS_LABELS = 2  # enum AssociatedFileType
INPUT_KINDS = ("float", "uint8", "int8")
OUTPUT_KINDS = ("probabilities", "logits")


@dataclass(frozen=True)
class ModelFacts:
    """What an app needs to know about an exported classifier (TFLite metadata, ONNX metadata_props).

    ``mean`` / ``std`` are the dataset's normalization of images scaled to [0, 1]; ``input`` is
    what the input tensor takes: ``float`` (the normalized image), ``uint8`` (raw pixels 0..255,
    normalization folded into the model) or ``int8`` (raw pixels minus 128, folded likewise).
    """

    name: str
    version: str
    description: str
    labels: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    height: int
    width: int
    color_space: str = "RGB"
    input: str = "float"
    output: str = "probabilities"
    author: str = "hwnas"
    license: str = ""

    def __post_init__(self) -> None:
        if self.input not in INPUT_KINDS:
            raise HwnasError(f"input {self.input!r} is not allowed; use {', '.join(INPUT_KINDS)}")
        if self.output not in OUTPUT_KINDS:
            raise HwnasError(f"output {self.output!r} is not allowed; use {', '.join(OUTPUT_KINDS)}")
        if self.color_space not in COLOR_SPACES:
            raise HwnasError(f"colour space {self.color_space!r} is not allowed; use {', '.join(COLOR_SPACES)}")
        if not self.labels:
            raise HwnasError("a classifier needs its class names (labels)")
        if len(self.mean) != len(self.std) or not self.mean or min(self.std) <= 0:
            raise HwnasError(f"normalization needs one mean and one positive std per channel, got "
                             f"mean={list(self.mean)} std={list(self.std)}")

    @property
    def folded(self) -> bool:
        """Whether the normalization is part of the graph (integer inputs take raw pixels)."""
        return self.input != "float"

    def pixel_normalization(self) -> tuple[list[float], list[float]]:
        """Mean / std in pixel units (0..255) that an app applies before the input tensor:
        the dataset's for a float input; identity (0, 1) when the model folds them in."""
        if self.folded:
            return [0.0], [1.0]
        return [255.0 * m for m in self.mean], [255.0 * s for s in self.std]

    def labels_text(self) -> str:
        return "".join(f"{name}\n" for name in self.labels)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["labels"] = list(self.labels)
        d["mean"], d["std"] = list(self.mean), list(self.std)
        d["normalization_folded"] = self.folded
        d["pixel_mean"], d["pixel_std"] = self.pixel_normalization()
        d["layout"] = "NHWC"
        return d


def _string_vector(b, items: list[int]) -> int:
    b.StartVector(4, len(items), 4)
    for off in reversed(items):
        b.PrependUOffsetTRelative(off)
    return b.EndVector()


def _table(b, fields: list[tuple[str, int, Any]]) -> int:
    """One table from ``(kind, slot, value)``: kind ``off`` (an offset), ``u8``, ``i8`` or ``u32``."""
    b.StartObject(1 + max(slot for _, slot, _ in fields))
    for kind, slot, value in fields:
        if kind == "off":
            b.PrependUOffsetTRelativeSlot(slot, value, 0)
        elif kind == "u8":
            b.PrependUint8Slot(slot, value, 0)
        elif kind == "i8":
            b.PrependInt8Slot(slot, value, 0)
        elif kind == "u32":
            b.PrependUint32Slot(slot, value, 0)
        else:  # pragma: no cover - programming error
            raise ValueError(kind)
    return b.EndObject()


def build_metadata(facts: ModelFacts, input_name: str, output_name: str) -> bytes:
    """The ``ModelMetadata`` flatbuffer (identifier ``M001``) describing ``facts``."""
    import flatbuffers

    b = flatbuffers.Builder(1024)
    s = b.CreateString
    mean, std = facts.pixel_normalization()

    # input: image properties + normalization
    size = _table(b, [("u32", 0, facts.width), ("u32", 1, facts.height)])  # ImageSize
    props = _table(b, [("i8", 0, COLOR_SPACES[facts.color_space]), ("off", 1, size)])  # ImageProperties
    in_content = _table(b, [("u8", 0, _IMAGE_PROPERTIES), ("off", 1, props)])  # Content
    mean_v = b.CreateNumpyVector(np.asarray(mean, dtype=np.float32))
    std_v = b.CreateNumpyVector(np.asarray(std, dtype=np.float32))
    norm = _table(b, [("off", 0, mean_v), ("off", 1, std_v)])  # NormalizationOptions
    unit = _table(b, [("u8", 0, _NORMALIZATION_OPTIONS), ("off", 1, norm)])  # ProcessUnit
    units = _string_vector(b, [unit])
    lo = b.CreateNumpyVector(np.asarray([0.0 if facts.folded else (0 - m) / sd for m, sd in zip(mean, std)],
                                        dtype=np.float32))
    hi = b.CreateNumpyVector(np.asarray([255.0 if facts.folded else (255 - m) / sd for m, sd in zip(mean, std)],
                                        dtype=np.float32))
    in_stats = _table(b, [("off", 0, hi), ("off", 1, lo)])  # Stats: max, min
    in_desc = s(_input_description(facts))
    in_name = s(input_name)
    in_meta = _table(b, [("off", 0, in_name), ("off", 1, in_desc), ("off", 3, in_content),
                         ("off", 4, units), ("off", 5, in_stats)])  # TensorMetadata

    # output: feature properties + labels file
    feat = _empty_table(b)  # FeatureProperties {}
    out_content = _table(b, [("u8", 0, _FEATURE_PROPERTIES), ("off", 1, feat)])
    lab_name, lab_desc = s(LABELS_FILE), s("Class names, one per line, in the order of the output scores.")
    labels = _table(b, [("off", 0, lab_name), ("off", 1, lab_desc), ("i8", 2, _TENSOR_AXIS_LABELS)])
    files = _string_vector(b, [labels])
    out_desc = s("Softmax probability of each class." if facts.output == "probabilities"
                 else "Logit (unnormalized score) of each class; apply softmax for probabilities.")
    out_name = s(output_name)
    if facts.output == "probabilities":
        omax = b.CreateNumpyVector(np.asarray([1.0], dtype=np.float32))
        omin = b.CreateNumpyVector(np.asarray([0.0], dtype=np.float32))
        out_stats = _table(b, [("off", 0, omax), ("off", 1, omin)])
        out_meta = _table(b, [("off", 0, out_name), ("off", 1, out_desc), ("off", 3, out_content),
                              ("off", 5, out_stats), ("off", 6, files)])
    else:
        out_meta = _table(b, [("off", 0, out_name), ("off", 1, out_desc), ("off", 3, out_content),
                              ("off", 6, files)])

    inputs, outputs = _string_vector(b, [in_meta]), _string_vector(b, [out_meta])
    sg_name = s("image_classifier")
    subgraph = _table(b, [("off", 0, sg_name), ("off", 2, inputs), ("off", 3, outputs)])
    subgraphs = _string_vector(b, [subgraph])
    name, desc, version = s(facts.name), s(facts.description), s(facts.version)
    author, lic, minv = s(facts.author), s(facts.license), s(MIN_PARSER_VERSION)
    fields = [("off", 0, name), ("off", 1, desc), ("off", 2, version), ("off", 3, subgraphs),
              ("off", 4, author), ("off", 7, minv)]
    if facts.license:
        fields.append(("off", 5, lic))
    root = _table(b, fields)
    b.Finish(root, file_identifier=METADATA_IDENTIFIER)
    return bytes(b.Output())


def _empty_table(b) -> int:
    b.StartObject(0)
    return b.EndObject()


def _input_description(facts: ModelFacts) -> str:
    channels = "RGB" if facts.color_space == "RGB" else "grayscale"
    stats = (f"mean {[round(m, 6) for m in facts.mean]}, std {[round(v, 6) for v in facts.std]} "
             f"of pixels scaled to [0, 1]")
    if facts.input == "float":
        return (f"{channels} image, {facts.height}x{facts.width}, NHWC float32, normalized as "
                f"(pixel/255 - mean) / std with {stats}.")
    kind = "uint8 pixels 0..255" if facts.input == "uint8" else "int8 values pixel - 128"
    return (f"{channels} image, {facts.height}x{facts.width}, NHWC {kind}; the normalization "
            f"({stats}) is folded into the model.")


__all__ = ["LABELS_FILE", "METADATA_NAME", "ModelFacts", "build_metadata"]
