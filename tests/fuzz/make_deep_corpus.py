#!/usr/bin/env python3
"""Writes the deeply nested inputs of the saved fuzz corpus (tests/fuzz/corpus/TARGET/deep-*).

Each nests 60,000 levels (about 120 KB): deep enough to overflow the stack wherever a parser or printer
recurses once per level, which the fuzzers cannot reach by themselves from short seeds.
Run from the repository root: python3 tests/fuzz/make_deep_corpus.py
"""
import pathlib
import struct
import zlib

DEPTH = 60000
CORPUS = pathlib.Path(__file__).parent / "corpus"


def nested(inner="1"):
    return "[" * DEPTH + inner + "]" * DEPTH


def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def write(target, name, data):
    path = CORPUS / target / name
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    print(path, len(path.read_bytes()), "bytes")


# A prompt line whose seed nests deep, between two good lines.
write("prompt_file", "deep-seed.txt", 'bag\n{"prompt": "coat", "seed": ' + nested() + "}\ncoat\n")

# A PNG (no pixels: the text reader stops at IEND) whose ditgen record nests deep.
ihdr = struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0)
record = '{"schema": 1, "seed": ' + nested() + "}"
write("png_text", "deep-record.png",
      b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"tEXt", b"ditgen\0" + record.encode()) +
      png_chunk(b"IEND", b""))


def safetensors(header):
    header = header.encode()
    return struct.pack("<Q", len(header)) + header


# A safetensors header nested deep, and a model description (a metadata string) nested deep.
write("safetensors", "deep-header", safetensors('{"t": {"dtype": "F32", "shape": ' + nested("") +
                                                ', "data_offsets": [0, 0]}}'))
write("safetensors", "deep-metadata", safetensors('{"__metadata__": {"ditgen.training": "' + nested() + '"}}'))

# A YAML model spec nested deep (flow style), and one whose key is a list.
write("model_spec", "deep-flow.yaml", "hidden_size: " + nested())
write("model_spec", "list-key.yaml", "? [depth, 2]\n: 1\nhidden_size: 64\n")
