"""Our block dequantizers (tensor/quants.h, through tests/tools/dequant_tool) against the gguf
package's, an outside reference for the GGUF block formats.

Q8_0, Q4_0, Q4_1, Q5_0 and MXFP4 blocks come from gguf's own quantizer; the K-quants (which gguf cannot
quantize) are random bytes with sane f16 scales. Both sides compute value = d * q (+ m) in
f32 with the same operation order, so the results must agree bit for bit.
"""
import os
import subprocess

import numpy as np
import pytest
from gguf import GGMLQuantizationType, quants

BUILD_DIR = os.environ.get("SPECOFFLOAD_BUILD_DIR",
                           os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "build"))
TOOL = os.path.join(BUILD_DIR, "tests", "dequant_tool")


def ours(name, raw, row_elements):
    result = subprocess.run([TOOL, name, str(row_elements)], input=raw.tobytes(), capture_output=True, check=True)
    return np.frombuffer(result.stdout, dtype=np.float32)


@pytest.fixture(scope="module", autouse=True)
def tool_exists():
    if not os.path.exists(TOOL):
        pytest.fail(f"{TOOL} is missing: build the project (scripts/build.sh) or set SPECOFFLOAD_BUILD_DIR")


def assert_bitwise_equal(got, expected):
    assert got.shape == expected.shape
    np.testing.assert_array_equal(got.view(np.uint32), expected.astype(np.float32).view(np.uint32))


@pytest.mark.parametrize("name", ["Q8_0", "Q4_0", "Q4_1", "Q5_0", "MXFP4"])
@pytest.mark.parametrize("row_elements", [32, 576])
def test_gguf_quantized_blocks(name, row_elements):
    qtype = GGMLQuantizationType[name]
    rng = np.random.default_rng(row_elements)
    x = (rng.standard_normal((7, row_elements)) * rng.uniform(0.01, 3.0, (7, 1))).astype(np.float32)
    x[0, :] = 0.0  # an all-zero row: d = 0
    raw = quants.quantize(x, qtype)
    assert_bitwise_equal(ours(name, raw, row_elements), quants.dequantize(raw, qtype).reshape(-1))


def random_k_blocks(qtype, n_rows, row_elements, rng):
    block_bytes = {GGMLQuantizationType.Q4_K: 144, GGMLQuantizationType.Q5_K: 176, GGMLQuantizationType.Q6_K: 210,
                   GGMLQuantizationType.Q2_K: 84, GGMLQuantizationType.Q3_K: 110}[qtype]
    n_blocks = n_rows * row_elements // 256
    blocks = rng.integers(0, 256, (n_blocks, block_bytes), dtype=np.uint8)
    if qtype in (GGMLQuantizationType.Q4_K, GGMLQuantizationType.Q5_K, GGMLQuantizationType.Q2_K):
        # d and dmin: the first two f16 (the last two for Q2_K)
        scales = rng.uniform(1e-3, 0.05, (n_blocks, 2)).astype(np.float16)
        scales[0, 1] = -0.02  # a negative dmin
        at = 80 if qtype == GGMLQuantizationType.Q2_K else 0
        blocks[:, at:at + 4] = scales.view(np.uint8).reshape(n_blocks, 4)
    else:  # Q6_K, Q3_K: d is the last f16
        d = rng.uniform(1e-4, 0.01, n_blocks).astype(np.float16)
        d[0] = -d[0]
        blocks[:, block_bytes - 2:block_bytes] = d.view(np.uint8).reshape(n_blocks, 2)
    return blocks.reshape(n_rows, -1)


@pytest.mark.parametrize("name", ["Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K"])
@pytest.mark.parametrize("row_elements", [256, 768])
def test_k_quant_random_blocks(name, row_elements):
    qtype = GGMLQuantizationType[name]
    rng = np.random.default_rng(row_elements + len(name))
    raw = random_k_blocks(qtype, 5, row_elements, rng)
    assert_bitwise_equal(ours(name, raw, row_elements), quants.dequantize(raw, qtype).reshape(-1))


@pytest.mark.parametrize("name", ["F16", "BF16"])
def test_float_rows(name):
    rng = np.random.default_rng(3)
    x = (rng.standard_normal((4, 64)) * 100).astype(np.float32)
    qtype = GGMLQuantizationType[name]
    raw = quants.quantize(x, qtype)
    assert_bitwise_equal(ours(name, raw, 64), quants.dequantize(raw, qtype).reshape(-1))


def test_tool_rejects_a_bad_dtype():
    result = subprocess.run([TOOL, "IQ2_XS", "256"], input=b"", capture_output=True)
    assert result.returncode == 2
    assert b"expected a weight dtype" in result.stderr
