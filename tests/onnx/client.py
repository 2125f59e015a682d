"""The ONNX client of tests/export_onnx.rs: a real ONNX engine runs slope's exports.

Usage: python client.py JOBS.json

JOBS.json is a list of jobs, each {"model": PATH, "out": PATH, "inputs":
{NAME: {"dtype": "float32" | "int64", "shape": [...], "data": [...]}}}. For
each job this checks the model with onnx's full checker (type and shape
inference included), checks that it is what slope promises (IR version 9,
opset 20 of the standard domain only, producer "slope", a symbolic batch
dimension), runs it in onnxruntime and writes every output as {NAME:
{"shape": [...], "data": [...]}} to the job's "out". The comparison with
slope's own numbers is the Rust test's.
"""

import json
import sys

import numpy as np
import onnx
import onnxruntime as ort


def check(path):
    model = onnx.load(path)
    onnx.checker.check_model(model, full_check=True)
    assert model.ir_version == 9, f"{path}: IR version {model.ir_version}"
    opsets = [(o.domain, o.version) for o in model.opset_import]
    assert opsets == [("", 20)], f"{path}: opsets {opsets}"
    assert model.producer_name == "slope", path
    for node in model.graph.node:
        assert node.domain == "", f"{path}: node {node.name} in domain {node.domain}"
    first = model.graph.input[0]
    assert first.name == "x", path
    assert first.type.tensor_type.shape.dim[0].dim_param == "batch", path


def run(job):
    check(job["model"])
    options = ort.SessionOptions()
    # The gradient graph's parameters are inputs with defaults on purpose
    # (a training loop feeds its own weights); onnxruntime warns about it.
    options.log_severity_level = 3
    session = ort.InferenceSession(
        job["model"], options, providers=["CPUExecutionProvider"]
    )
    feeds = {
        name: np.array(v["data"], dtype=v["dtype"]).reshape(v["shape"])
        for name, v in job["inputs"].items()
    }
    names = [o.name for o in session.get_outputs()]
    values = session.run(names, feeds)
    result = {
        name: {"shape": list(v.shape), "data": v.astype(np.float64).ravel().tolist()}
        for name, v in zip(names, values)
    }
    with open(job["out"], "w") as f:
        json.dump(result, f)


def main():
    with open(sys.argv[1]) as f:
        jobs = json.load(f)
    for job in jobs:
        run(job)
    print(f"onnx {onnx.__version__}, onnxruntime {ort.__version__}: {len(jobs)} models checked and run")


if __name__ == "__main__":
    main()
