"""Definitions for the tests of the layer view's documents (test_render_md.py, test_render_tex.py).

``LAYER``: networks of every kind (softmax and cross-entropy over two hidden layers, sigmoid and
binary cross-entropy, ReLU, layered naming with shared biases) and `shapes` definitions from the
literature (least squares with a ridge penalty, matrix factorisation), each with a point; ``MNIST``:
the 784-128-10 network of issue 8 (sigmoid, softmax, cross-entropy; 101,770 parameters), without a
point (``with_point(MNIST)`` gives it one).
"""
from __future__ import annotations

import numpy as np

# the layer view's documents (vectors and matrices): networks of every kind, and `shapes` definitions
LAYER = {
    "softmax_4884": {"network": {"inputs": 4, "layers": [{"units": 8}, {"units": 8},
                                                         {"units": 4, "activation": "softmax"}],
                                 "loss": "cross_entropy"}},
    "bce": {"network": {"inputs": 3, "layers": [{"units": 4, "activation": "tanh"}, {"units": 2}], "loss": "bce"}},
    "relu": {"network": {"inputs": 2, "layers": [{"units": 2, "activation": "relu"}, {"units": 1}], "bias": "none"},
             "at": {"x1": 0.5, "x2": -1.0, "y1": 1.0, "w1": 0.1, "w2": -0.2, "w3": 0.3, "w4": 0.4, "w5": -0.5,
                    "w6": 0.6}, "lr": 0.1},
    "layered": {"network": {"inputs": 2, "layers": [{"units": 2, "activation": "tanh"},
                                                    {"units": 3, "activation": "softmax"}],
                            "bias": "shared", "loss": "cross_entropy", "naming": "layered"},
                "at": {"x1": 0.5, "x2": -1, "y1": 1, "y2": 0, "y3": 0, "w_1_1_1": 0.1, "w_1_1_2": -0.2,
                       "w_1_2_1": 0.3, "w_1_2_2": 0.4, "w_2_1_1": -0.5, "w_2_1_2": 0.6, "w_2_2_1": 0.1,
                       "w_2_2_2": 0.2, "w_2_3_1": 0.3, "w_2_3_2": -0.1, "b_1": 0.1, "b_2": -0.1}, "lr": 0.5},
    "least_squares": {"shapes": {"X": [5, 3], "w": [3], "y": [5]},
                      "equations": {"r": "X @ w - y", "L": "sum(r*r)/2 + lambda/2 * sum(w*w)"}, "wrt": ["w"],
                      "at": {"X": [[1, 0.5, -1], [0.2, 1, 0], [-0.3, 0.4, 2], [1.5, -1, 0.5], [0, 0.3, -0.7]],
                             "w": [0.1, -0.2, 0.3], "y": [1, 0, -1, 0.5, 2], "lambda": 0.1}, "lr": 0.1},
    "factorisation": {"shapes": {"U": [4, 2], "V": [3, 2], "R": [4, 3]},
                      "equations": {"E": "U @ transpose(V) - R", "L": "mean(E*E)"},
                      "at": {"U": [[0.1, 0.2], [0.3, -0.1], [-0.2, 0.4], [0.5, 0.1]],
                             "V": [[0.2, -0.3], [0.1, 0.4], [-0.5, 0.2]],
                             "R": [[1, 0, 2], [0, 1, 1], [2, 1, 0], [1, 1, 1]]}, "lr": 0.5},
}


def with_point(spec: dict, lr: float = 0.1) -> dict:
    """A network definition with `at` for every layer leaf (lists), deterministic."""
    net = spec["network"]
    sizes = [net["inputs"]] + [layer["units"] for layer in net["layers"]]
    rng = np.random.default_rng(len(sizes) * 100 + sizes[0])
    at = {"x": rng.uniform(-1, 1, sizes[0]).round(2).tolist(), "y": np.eye(sizes[-1])[1 % sizes[-1]].tolist()}
    for l in range(1, len(sizes)):
        at[f"W{l}"] = rng.normal(0, 0.5, (sizes[l], sizes[l - 1])).round(2).tolist()
        if net.get("bias", "per_neuron") == "per_neuron":
            at[f"b{l}"] = rng.normal(0, 0.1, sizes[l]).round(2).tolist()
    return dict(spec, at=at, lr=lr)


for _k in ("softmax_4884", "bce"):
    LAYER[_k] = with_point(LAYER[_k])
MNIST = {"title": "784-128-10", "network": {"inputs": 784, "layers": [{"units": 128},
                                                                     {"units": 10, "activation": "softmax"}],
                                            "loss": "cross_entropy"}}


