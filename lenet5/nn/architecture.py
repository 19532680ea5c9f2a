"""LeNet-5's architecture as data: Table I, the parameter shapes and the initialization (App. A).

C1-S2-C3-S4-C5-F6 and a fixed Euclidean RBF output (§II.B). Parameters are held in a dict
name -> ndarray; gradients, curvatures and optimizer state use the same keys.
"""

import numpy as np

# Table I: for each C3 map, the S2 maps it reads.
TABLE_I = (
    (0, 1, 2), (1, 2, 3), (2, 3, 4), (3, 4, 5), (0, 4, 5), (0, 1, 5),
    (0, 1, 2, 3), (1, 2, 3, 4), (2, 3, 4, 5), (0, 3, 4, 5), (0, 1, 4, 5), (0, 1, 2, 5),
    (0, 1, 3, 4), (1, 2, 4, 5), (0, 2, 3, 5),
    (0, 1, 2, 3, 4, 5),
)

PARAM_SHAPES = {
    "C1.weight": (6, 1, 5, 5), "C1.bias": (6,),
    "S2.coef": (6,), "S2.bias": (6,),
    "C3.weight": (16, 6, 5, 5), "C3.bias": (16,),
    "S4.coef": (16,), "S4.bias": (16,),
    "C5.weight": (120, 16, 5, 5), "C5.bias": (120,),
    "F6.weight": (84, 120), "F6.bias": (84,),
}
DTYPES = ("float32", "float64")
INPUT_SHAPE = (1, 32, 32)  # one image: 28x28 MNIST padded by 2 (§II.B)
CLASSES = 10


def c3_mask(dtype="float64"):
    """``(16, 6, 1, 1)`` 0/1 mask of Table I's connections, broadcastable over C3.weight."""
    m = np.zeros((16, 6, 1, 1), dtype=dtype)
    for out_map, ins in enumerate(TABLE_I):
        m[out_map, list(ins)] = 1
    return m


def fan_in(name):
    """Inputs per unit for the init rule of Appendix A (per C3 map: 25 x its Table I inputs)."""
    if name.startswith("C3"):
        return np.array([25 * len(ins) for ins in TABLE_I], dtype=float)[:, None, None, None]  # (16,1,1,1)
    return {"C1": 25, "S2": 4, "S4": 4, "C5": 400, "F6": 120}[name.split(".")[0]]


def init_params(rng, dtype="float64"):
    """Weights and S-layer coefficients uniform in [-2.4/Fi, 2.4/Fi] (App. A).

    Biases start at 0: the paper does not say how it set them, and 0 keeps every unit's initial
    weighted sum centred in the squash's linear range.
    """
    params = {}
    for name, shape in PARAM_SHAPES.items():
        if name.endswith(".bias"):
            params[name] = np.zeros(shape, dtype=dtype)
        else:
            r = 2.4 / fan_in(name)
            params[name] = (rng.uniform(-1.0, 1.0, size=shape) * r).astype(dtype)
    params["C3.weight"] *= c3_mask(dtype)
    return params


def outside_table_i(c3_weight):
    """True when ``C3.weight`` ``(16, 6, 5, 5)`` has a non-zero connection that Table I lacks."""
    return bool(np.any(c3_weight * (1 - c3_mask()) != 0))


def num_params(params):
    """Trainable parameters, counting only Table I's connections in C3: 60,000."""
    n = sum(v.size for k, v in params.items() if k != "C3.weight")
    return int(n + c3_mask().sum() * 25)
