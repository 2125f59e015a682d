"""The JAX peer of examples/digits_cnn.nn: the same network, data, split
sizes and hyper-parameters, so `slope train examples/digits_cnn.nn` has a
peer measured in the same run (benches/peers/run.sh, workload CNN).

Network (NCHW, PyTorch's layouts, as slope): 1x8x8 -> conv 16 3x3 same relu
-> maxpool 2x2 -> conv 32 3x3 same relu -> maxpool 2x2 -> dense 10 softmax,
cross-entropy; SGD lr 0.05 momentum 0.9 (v = m*v + g; w -= lr*v); batch 32,
the last partial batch kept; 20% of the rows held out and evaluated after
every epoch; the training rows reshuffled every epoch (host-side NumPy), as
slope does. The step (value_and_grad + momentum update) is one jax.jit with
the state donated; an epoch's time includes the shuffle, the steps and the
validation pass, as slope's `seconds` does. Init: He normal for the convs,
Glorot uniform for the dense layer, zero biases (slope's defaults; NumPy's
generator, so not slope's numbers).

Run: python peer_jax_cnn.py [--epochs N] [--threads 1]
Prints one JSON line: first_step_s (trace + compile + one step),
epoch1_s, epoch_median_s (epochs 2..N), final val_accuracy.
"""
import argparse
import json
import os
import statistics
import time

T0 = time.perf_counter()
import numpy as np  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

jax.config.update("jax_platforms", "cpu")
T_IMPORT = time.perf_counter() - T0

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "..", "examples", "digits.csv")
LR, MOMENTUM, BATCH, VALIDATION = 0.05, 0.9, 32, 0.2
DN = ("NCHW", "OIHW", "NCHW")


def init(rng):
    def he(shape):
        fan_in = int(np.prod(shape[1:]))
        return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)

    lim = np.sqrt(6.0 / (128 + 10))
    return [
        he((16, 1, 3, 3)), np.zeros(16, np.float32),
        he((32, 16, 3, 3)), np.zeros(32, np.float32),
        rng.uniform(-lim, lim, (10, 128)).astype(np.float32), np.zeros(10, np.float32),
    ]


def logits(p, x):
    def conv(h, w, b):
        y = jax.lax.conv_general_dilated(h, w, (1, 1), "SAME", dimension_numbers=DN)
        return jax.nn.relu(y + b[None, :, None, None])

    def pool(h):
        return jax.lax.reduce_window(h, -jnp.inf, jax.lax.max, (1, 1, 2, 2), (1, 1, 2, 2), "VALID")

    h = pool(conv(x, p[0], p[1]))
    h = pool(conv(h, p[2], p[3]))
    return h.reshape(h.shape[0], -1) @ p[4].T + p[5]


def loss_fn(p, x, t):
    z = logits(p, x)
    return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(z), t[:, None], axis=1))


def step(state, x, t):
    p, v = state
    loss, g = jax.value_and_grad(loss_fn)(p, x, t)
    v = [MOMENTUM * vi + gi for vi, gi in zip(v, g)]
    p = [pi - LR * vi for pi, vi in zip(p, v)]
    return (p, v), loss


def evaluate(p, x, t):
    z = logits(p, x)
    loss = -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(z), t[:, None], axis=1))
    return loss, jnp.mean(jnp.argmax(z, axis=1) == t)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--threads", default="1")
    a = ap.parse_args()
    raw = np.loadtxt(DATA, delimiter=",", skiprows=1, dtype=np.float32)
    rng = np.random.default_rng(42)
    raw = raw[rng.permutation(len(raw))]
    n_val = int(round(len(raw) * VALIDATION))
    train, val = raw[: len(raw) - n_val], raw[len(raw) - n_val:]
    to_x = lambda r: jnp.asarray(r[:, :64].reshape(-1, 1, 8, 8))
    to_t = lambda r: jnp.asarray(r[:, 64].astype(np.int32))
    xv, tv = to_x(val), to_t(val)
    params = [jnp.asarray(q) for q in init(rng)]
    state = (params, [jnp.zeros_like(q) for q in params])
    step_j = jax.jit(step, donate_argnums=(0,))
    eval_j = jax.jit(evaluate)

    t_start = time.perf_counter()
    first, epochs = None, []
    val_acc = None
    for _ in range(a.epochs):
        te = time.perf_counter()
        rows = train[rng.permutation(len(train))]
        losses = []
        for s in range(0, len(rows), BATCH):
            b = rows[s: s + BATCH]
            state, loss = step_j(state, to_x(b), to_t(b))
            losses.append(loss)
            if first is None:
                jax.block_until_ready(loss)
                first = time.perf_counter() - t_start
        _, val_acc = eval_j(state[0], xv, tv)
        jax.block_until_ready((state, losses, val_acc))
        epochs.append(time.perf_counter() - te)
    print(json.dumps(dict(
        peer="jax", workload="digits_cnn", threads=a.threads, jax=jax.__version__,
        import_s=T_IMPORT, first_step_s=first, epoch1_s=epochs[0],
        epoch_median_s=statistics.median(epochs[1:]) if len(epochs) > 1 else epochs[0],
        epochs=len(epochs), val_accuracy=float(val_acc),
    )))


if __name__ == "__main__":
    main()
