"""A Triton Python-backend model that runs an ONNX file with onnxruntime (copied into the repository as
<model>/1/model.py by posecast/triton/repository.py; it runs inside Triton's backend stub process).

Triton's dynamic batcher hands `execute` every request it gathered; requests of one input shape are stacked
into one onnxruntime run and the rows handed back to each. Tensors cross by DLPack: the stub that
nvidia-pytriton 0.7 bundles was built against NumPy 1, and its `as_numpy()` / `Tensor(name, array)` read
NumPy 2 arrays wrongly (every element became the first), while DLPack has no NumPy ABI in it.
"""
import json

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args: dict) -> None:
        config = json.loads(args["model_config"])
        params = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        self.inputs = [t["name"] for t in config["input"]]
        self.outputs = [t["name"] for t in config["output"]]
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = int(params.get("threads", "1"))
        opts.inter_op_num_threads = 1
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")  # as posecast/runtime.py
        providers = ["CPUExecutionProvider"]
        if params.get("device") == "cuda":
            providers.insert(0, ("CUDAExecutionProvider", {"cudnn_conv_algo_search": "HEURISTIC"}))
        self.session = ort.InferenceSession(params["onnx_path"], opts, providers=providers)
        if params.get("device") == "cuda" and self.session.get_providers()[0] != "CUDAExecutionProvider":
            raise RuntimeError("CUDA was asked for but onnxruntime cannot use it in the Triton model")
        pb_utils.Logger.log_info(f"{config['name']}: {params['onnx_path']} on {self.session.get_providers()[0]}")

    def execute(self, requests: list) -> list:
        feeds = [{name: np.from_dlpack(pb_utils.get_input_tensor_by_name(r, name)) for name in self.inputs}
                 for r in requests]
        responses: list = [None] * len(requests)
        groups: dict[tuple, list[int]] = {}
        for i, feed in enumerate(feeds):
            groups.setdefault(tuple(v.shape[1:] for v in feed.values()), []).append(i)
        for members in groups.values():
            try:
                stacked = {name: np.concatenate([feeds[i][name] for i in members]) for name in self.inputs}
                outputs = self.session.run(self.outputs, stacked)
            except Exception as exc:  # noqa: BLE001 - the requests get the error, the model stays up
                for i in members:
                    responses[i] = pb_utils.InferenceResponse(error=pb_utils.TritonError(str(exc)))
                continue
            start = 0
            for i in members:
                n = len(feeds[i][self.inputs[0]])
                responses[i] = pb_utils.InferenceResponse([
                    pb_utils.Tensor.from_dlpack(name, np.ascontiguousarray(out[start:start + n]))
                    for name, out in zip(self.outputs, outputs)])
                start += n
        return responses
