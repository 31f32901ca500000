"""Runs an ONNX model in ONNX Runtime for seqnet's tests.

Usage: ort_run.py MODEL.onnx INPUT.npy OUT.npy [LENGTHS.npy]

Checks the model with onnx.checker (full check, with shape inference),
then feeds INPUT.npy as `input` (and LENGTHS.npy as `sequence_lens`, int32)
and writes the graph output `output` to OUT.npy. Any failure exits non-zero
with the reason on standard error.
"""
import sys

import numpy as np
import onnx
import onnxruntime as ort


def main(argv):
    if len(argv) not in (4, 5):
        sys.exit(__doc__)
    model_path, input_path, out_path = argv[1:4]
    model = onnx.load(model_path)
    onnx.checker.check_model(model, full_check=True)
    feeds = {"input": np.load(input_path).astype(np.float32)}
    if len(argv) == 5:
        feeds["sequence_lens"] = np.load(argv[4]).astype(np.int32)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(
        model_path, options, providers=["CPUExecutionProvider"]
    )
    names = [i.name for i in session.get_inputs()]
    if sorted(names) != sorted(feeds):
        sys.exit(f"model inputs {names}, test feeds {sorted(feeds)}")
    (y,) = session.run(["output"], feeds)
    np.save(out_path, np.asarray(y, dtype=np.float32))


if __name__ == "__main__":
    main(sys.argv)
