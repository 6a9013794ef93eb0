"""Reference transcription of the official ``nn.py`` (val-iisc/deligan, src/cifar/nn.py and
src/sketches/nn.py, MIT licence; the two files are identical) to PyTensor, with the few
Lasagne layers the CIFAR-10 and sketch scripts use. Test code only.

Kept as written: relu, lrelu, log_sum_exp, adam_updates (epsilon under the square root),
WeightNormLayer and weight_norm (1e-6 under the norm's root; data-dependent init of b and
g), Deconv2DLayer (the input gradient of a stride-2 convolution with border_mode='half'),
MinibatchLayer (data-dependent init of log_weight_scale and b), MoGLayer, BatchNormLayer
and batch_norm (epsilon 1e-6, running averages that the scripts never update),
GaussianNoiseLayer.

Changed, because it no longer exists:

* ``theano`` -> ``pytensor``; ``T.nnet.softplus`` -> ``pytensor.tensor.softplus``,
  ``T.nnet.sigmoid`` -> ``pytensor.tensor.sigmoid``, ``T.nnet.binary_crossentropy`` (removed)
  -> :func:`binary_crossentropy`, Theano's formula;
  ``np.cast[floatX](v)`` -> ``np.asarray(v, floatX)``.
* Lasagne (which needs Theano) -> the minimal layers below with Lasagne 0.2's semantics:
  ``Layer``, ``InputLayer``, ``DenseLayer``, ``NINLayer``, ``Conv2DDNNLayer``,
  ``ReshapeLayer``, ``GlobalPoolLayer``, ``DropoutLayer``, ``get_output``,
  ``get_all_params``, ``init.Normal``/``init.Constant``.
* PyTensor has no CNN convolution (``theano.tensor.nnet.conv2d``, cuDNN's ``dnn_conv``
  and ``AbstractConv2d_gradInputs`` were removed): :class:`Conv2d`,
  :class:`Conv2dGradInputs` and :class:`Conv2dGradWeights` are Theano's three
  ``AbstractConv2d`` ops (a true convolution, i.e. flipped filters, with Lasagne's pad and
  stride; its input gradient; its filter gradient), each the others' gradient as in Theano,
  with a numpy ``perform``. ``Deconv2DLayer`` applies ``Conv2dGradInputs`` as the official
  layer applies ``AbstractConv2d_gradInputs``.
* ``T.eye(input.shape[0])`` in ``MinibatchLayer`` -> :func:`_eye_like_rows`, the same
  matrix: PyTensor's ``Eye`` infers its static shape while the graph is built, walking the
  whole network above it.
* Functions run without graph rewrites (``optimizer=None``), on Python implementations of
  the ops (``linker='py'``): the graphs as written compile in a second; rewriting and C
  compilation took minutes per function on a 2-core CPU.
* ``MRG_RandomStreams`` -> PyTensor's ``RandomStream`` (the stream differs; tests set
  the noise to 0 or feed it).
"""

from __future__ import annotations

import numpy as np
import pytensor
import pytensor.tensor as T
from pytensor.graph.basic import Apply
from pytensor.graph.op import Op
from pytensor.tensor.random.utils import RandomStream

FLOATX = "float32"
pytensor.config.floatX = FLOATX
# The graphs as written, on Python implementations of the ops (see the header).
MODE = pytensor.compile.mode.Mode(linker="py", optimizer=None)
# No stack trace recorded per graph node: it only improves error messages, at seconds a graph.
pytensor.config.traceback__limit = 0


def floatx(value):
  return np.asarray(value, FLOATX)


def binary_crossentropy(output, target):
  """Theano's ``T.nnet.binary_crossentropy`` (removed from PyTensor), as Theano defined it."""
  return -(target * T.log(output) + (1.0 - target) * T.log(1.0 - output))


# --- the Lasagne subset ----------------------------------------------------------------------

class Normal:
  def __init__(self, std=0.01, mean=0.0):
    self.std, self.mean = std, mean

  def sample(self, shape, rng):
    return floatx(rng.normal(self.mean, self.std, size=shape))


class Constant:
  def __init__(self, val=0.0):
    self.val = val

  def sample(self, shape, rng):
    return floatx(np.full(shape, self.val))


def identity(x):
  return x


class Layer:
  rng = np.random.RandomState(0)  # lasagne.random.get_rng()

  def __init__(self, incoming, name=None):
    self.input_layer = incoming
    self.input_shape = incoming.output_shape
    self.params = {}
    self.name = name

  @property
  def output_shape(self):
    return self.get_output_shape_for(self.input_shape)

  def get_output_shape_for(self, input_shape):
    return input_shape

  def add_param(self, spec, shape, name=None, trainable=True, **tags):
    if isinstance(spec, (Normal, Constant)):
      value = spec.sample(shape, Layer.rng)
      spec = pytensor.shared(value, name=name)
    self.params[spec] = {"trainable": trainable}
    return spec

  def get_params(self, trainable=None):
    return [p for p, tags in self.params.items()
            if trainable is None or tags["trainable"] == trainable]


class InputLayer:
  def __init__(self, shape, input_var=None):
    self.output_shape = shape
    self.input_var = input_var
    self.params = {}
    self.input_layer = None

  def get_params(self, trainable=None):
    return []


def _all_layers(layer_or_layers):
  layers = layer_or_layers if isinstance(layer_or_layers, list) else [layer_or_layers]
  seen, ordered = set(), []

  def visit(layer):
    if layer is None or id(layer) in seen:
      return
    visit(layer.input_layer)
    seen.add(id(layer))
    ordered.append(layer)

  for layer in layers:
    visit(layer)
  return ordered


def get_all_params(layer_or_layers, trainable=True):
  params = []
  for layer in _all_layers(layer_or_layers):
    params += [p for p in layer.get_params(trainable=trainable) if p not in params]
  return params


def get_output(layer, inputs=None, **kwargs):
  """Lasagne's get_output: ``inputs`` replaces the (single) InputLayer's variable."""
  outputs = {}
  for node in _all_layers(layer):
    if isinstance(node, InputLayer):
      outputs[node] = inputs if inputs is not None else node.input_var
    else:
      outputs[node] = node.get_output_for(outputs[node.input_layer], **kwargs)
  return outputs[layer]


class DenseLayer(Layer):
  def __init__(self, incoming, num_units, W=Normal(0.05), b=Constant(0.0), nonlinearity=None):
    super().__init__(incoming)
    self.num_units = num_units
    self.nonlinearity = identity if nonlinearity is None else nonlinearity
    num_inputs = int(np.prod(self.input_shape[1:]))
    self.W = self.add_param(W, (num_inputs, num_units), name="W")
    self.b = self.add_param(b, (num_units,), name="b") if b is not None else None

  def get_output_shape_for(self, input_shape):
    return (input_shape[0], self.num_units)

  def get_output_for(self, input, **kwargs):
    if input.ndim > 2:
      input = input.flatten(2)
    activation = T.dot(input, self.W)
    if self.b is not None:
      activation = activation + self.b.dimshuffle("x", 0)
    return self.nonlinearity(activation)


class NINLayer(Layer):
  """Lasagne's network-in-network layer: a dense layer over the channel axis."""

  def __init__(self, incoming, num_units, W=Normal(0.05), b=Constant(0.0), nonlinearity=None):
    super().__init__(incoming)
    self.num_units = num_units
    self.nonlinearity = identity if nonlinearity is None else nonlinearity
    self.W = self.add_param(W, (self.input_shape[1], num_units), name="W")
    self.b = self.add_param(b, (num_units,), name="b") if b is not None else None

  def get_output_shape_for(self, input_shape):
    return (input_shape[0], self.num_units, *input_shape[2:])

  def get_output_for(self, input, **kwargs):
    out_r = T.tensordot(input, self.W, axes=[[1], [0]])  # (B, H, W, units)
    activation = out_r.dimshuffle(0, 3, 1, 2)
    if self.b is not None:
      activation = activation + self.b.dimshuffle("x", 0, "x", "x")
    return self.nonlinearity(activation)


# --- convolution: Theano's AbstractConv2d family, in numpy ---------------------------------
#
# Theano's conv2d, its weight gradient and its input gradient were three ops whose gradients
# are each other; PyTensor removed them. These are the same three operations (Lasagne's true
# convolution, i.e. flipped filters, with pad and stride; NCHW, W (out, in, kh, kw)), their
# perform in numpy. Written as PyTensor slices instead, the graphs took minutes to build,
# differentiate and compile.


def _taps(filter_size, stride, out_size):
  """(dy, dx, rows, columns): the padded-input window that each filter tap reads."""
  (kh, kw), (height, width) = filter_size, out_size
  return [(dy, dx, slice(dy, dy + stride * (height - 1) + 1, stride),
           slice(dx, dx + stride * (width - 1) + 1, stride))
          for dy in range(kh) for dx in range(kw)]


class _ConvOp(Op):
  __props__ = ("filter_size", "pad", "stride", "image_size")

  def __init__(self, filter_size, pad, stride, image_size):
    self.filter_size, self.pad, self.stride = tuple(filter_size), int(pad), int(stride)
    self.image_size = tuple(int(n) for n in image_size)

  @property
  def out_size(self):
    return tuple((n + 2 * self.pad - k) // self.stride + 1
                 for n, k in zip(self.image_size, self.filter_size))

  def _node(self, *inputs):
    inputs = [T.as_tensor_variable(x) for x in inputs]
    return Apply(self, inputs, [T.tensor(dtype=FLOATX, shape=(None,) * 4)])

  def _flipped(self, W):
    return W[:, :, ::-1, ::-1]

  def _padded(self, x):
    p = self.pad
    return np.pad(x, ((0, 0), (0, 0), (p, p), (p, p))) if p else x


class Conv2d(_ConvOp):
  """conv2d(x, W): (B, in, H, W) -> (B, out, H', W')."""

  def make_node(self, x, W):
    return self._node(x, W)

  def perform(self, node, inputs, outputs):
    x, W = inputs
    padded, flipped = self._padded(x), self._flipped(W)
    out = np.zeros((len(x), len(W), *self.out_size), FLOATX)
    for dy, dx, rows, columns in _taps(self.filter_size, self.stride, self.out_size):
      out += np.einsum("bchw,oc->bohw", padded[:, :, rows, columns], flipped[:, :, dy, dx])
    outputs[0][0] = out

  def pullback(self, inputs, outputs, output_grads):
    x, W = inputs
    (top,) = output_grads
    args = (self.filter_size, self.pad, self.stride, self.image_size)
    return [Conv2dGradInputs(*args)(W, top), Conv2dGradWeights(*args)(x, top)]


class Conv2dGradInputs(_ConvOp):
  """AbstractConv2d_gradInputs(W, top): the input gradient of conv2d, (B, in, H, W)."""

  def make_node(self, W, top):
    return self._node(W, top)

  def perform(self, node, inputs, outputs):
    W, top = inputs
    flipped, p = self._flipped(W), self.pad
    padded = np.zeros((len(top), W.shape[1], *(n + 2 * p for n in self.image_size)), FLOATX)
    for dy, dx, rows, columns in _taps(self.filter_size, self.stride, self.out_size):
      padded[:, :, rows, columns] += np.einsum("bohw,oc->bchw", top, flipped[:, :, dy, dx])
    height, width = self.image_size
    outputs[0][0] = np.ascontiguousarray(padded[:, :, p:p + height, p:p + width])

  def pullback(self, inputs, outputs, output_grads):
    W, top = inputs
    (g,) = output_grads  # gradient with respect to this op's output, an image
    args = (self.filter_size, self.pad, self.stride, self.image_size)
    return [Conv2dGradWeights(*args)(g, top), Conv2d(*args)(g, W)]


class Conv2dGradWeights(_ConvOp):
  """AbstractConv2d_gradWeights(x, top): the filter gradient of conv2d, (out, in, kh, kw)."""

  def make_node(self, x, top):
    return self._node(x, top)

  def perform(self, node, inputs, outputs):
    x, top = inputs
    padded = self._padded(x)
    flipped = np.zeros((top.shape[1], x.shape[1], *self.filter_size), FLOATX)
    for dy, dx, rows, columns in _taps(self.filter_size, self.stride, self.out_size):
      flipped[:, :, dy, dx] = np.einsum("bohw,bchw->oc", top, padded[:, :, rows, columns])
    outputs[0][0] = np.ascontiguousarray(self._flipped(flipped))

  def pullback(self, inputs, outputs, output_grads):
    x, top = inputs
    (g,) = output_grads  # a filter bank
    args = (self.filter_size, self.pad, self.stride, self.image_size)
    return [Conv2dGradInputs(*args)(g, top), Conv2d(*args)(x, g)]


def conv2d(x, W, filter_size, pad, stride, image_size):
  """Lasagne's convolution (flip_filters=True): NCHW input, W (out, in, kh, kw).

  ``image_size``: (height, width) of ``x``, as Python ints (the layers' output shapes).
  """
  return Conv2d(filter_size, pad, stride, image_size)(x, W)


class Conv2DDNNLayer(Layer):
  def __init__(self, incoming, num_filters, filter_size, stride=1, pad=0, W=Normal(0.05),
               b=Constant(0.0), nonlinearity=None):
    super().__init__(incoming)
    self.num_filters, self.filter_size = num_filters, filter_size
    self.stride, self.pad = stride, pad
    self.nonlinearity = identity if nonlinearity is None else nonlinearity
    self.W = self.add_param(W, (num_filters, self.input_shape[1], *filter_size), name="W")
    self.b = self.add_param(b, (num_filters,), name="b") if b is not None else None

  def get_output_shape_for(self, input_shape):
    size = [(n + 2 * self.pad - k) // self.stride + 1
            for n, k in zip(input_shape[2:], self.filter_size)]
    return (input_shape[0], self.num_filters, *size)

  def get_output_for(self, input, **kwargs):
    activation = conv2d(input, self.W, self.filter_size, self.pad, self.stride,
                        self.input_shape[2:])
    if self.b is not None:
      activation = activation + self.b.dimshuffle("x", 0, "x", "x")
    return self.nonlinearity(activation)


class ReshapeLayer(Layer):
  def __init__(self, incoming, shape):
    super().__init__(incoming)
    self.shape = shape

  def get_output_shape_for(self, input_shape):
    return self.shape

  def get_output_for(self, input, **kwargs):
    return T.reshape(input, self.shape)


class GlobalPoolLayer(Layer):
  def get_output_shape_for(self, input_shape):
    return input_shape[:2]

  def get_output_for(self, input, **kwargs):
    return T.mean(input.flatten(3), axis=2)


class DropoutLayer(Layer):
  """Lasagne's dropout (rescale=True); the mask from a PyTensor random stream."""

  def __init__(self, incoming, p=0.5):
    super().__init__(incoming)
    self.p = p
    self._srng = RandomStream(Layer.rng.randint(1, 2147462579))

  def get_output_for(self, input, deterministic=False, **kwargs):
    if deterministic or self.p == 0:
      return input
    retain = 1 - self.p
    mask = self._srng.binomial(1, retain, size=input.shape).astype(FLOATX)
    return input * mask / floatx(retain)


# --- nn.py -------------------------------------------------------------------------------------

# T.nnet.relu has some stability issues, this is better
def relu(x):
  return T.maximum(x, 0)


def lrelu(x, a=0.2):
  return T.maximum(x, a * x)


def log_sum_exp(x, axis=1):
  m = T.max(x, axis=axis)
  return m + T.log(T.sum(T.exp(x - m.dimshuffle(0, "x")), axis=axis))


def adam_updates(params, cost, lr=0.001, mom1=0.9, mom2=0.999):
  updates = []
  grads = T.grad(cost, params)
  t = pytensor.shared(floatx(1.))
  for p, g in zip(params, grads):
    v = pytensor.shared(floatx(p.get_value() * 0.))
    mg = pytensor.shared(floatx(p.get_value() * 0.))
    v_t = mom1 * v + (1. - mom1) * g
    mg_t = mom2 * mg + (1. - mom2) * T.square(g)
    v_hat = v_t / (1. - mom1 ** t)
    mg_hat = mg_t / (1. - mom2 ** t)
    g_t = v_hat / T.sqrt(mg_hat + 1e-8)
    p_t = p - lr * g_t
    updates.append((v, v_t))
    updates.append((mg, mg_t))
    updates.append((p, p_t))
  updates.append((t, t + 1))
  return updates


class WeightNormLayer(Layer):
  def __init__(self, incoming, b=Constant(0.), g=Constant(1.), W=Normal(0.05), train_g=False,
               init_stdv=1., nonlinearity=relu):
    super().__init__(incoming)
    self.nonlinearity = nonlinearity
    self.init_stdv = init_stdv
    k = self.input_shape[1]
    if b is not None:
      self.b = self.add_param(b, (k,), name="b", regularizable=False)
    if g is not None:
      self.g = self.add_param(g, (k,), name="g", regularizable=False, trainable=train_g)
    if len(self.input_shape) == 4:
      self.axes_to_sum = (0, 2, 3)
      self.dimshuffle_args = ["x", 0, "x", "x"]
    else:
      self.axes_to_sum = 0
      self.dimshuffle_args = ["x", 0]

    # scale weights in layer below
    incoming.W_param = incoming.W
    if incoming.W_param.ndim == 4:
      if isinstance(incoming, Deconv2DLayer):
        W_axes_to_sum = (0, 2, 3)
        W_dimshuffle_args = ["x", 0, "x", "x"]
      else:
        W_axes_to_sum = (1, 2, 3)
        W_dimshuffle_args = [0, "x", "x", "x"]
    else:
      W_axes_to_sum = 0
      W_dimshuffle_args = ["x", 0]
    if g is not None:
      incoming.W = incoming.W_param * (self.g / T.sqrt(1e-6 + T.sum(
          T.square(incoming.W_param), axis=W_axes_to_sum))).dimshuffle(*W_dimshuffle_args)
    else:
      incoming.W = incoming.W_param / T.sqrt(1e-6 + T.sum(
          T.square(incoming.W_param), axis=W_axes_to_sum, keepdims=True))

  def get_output_for(self, input, init=False, **kwargs):
    if init:
      m = T.mean(input, self.axes_to_sum)
      input -= m.dimshuffle(*self.dimshuffle_args)
      inv_stdv = self.init_stdv / T.sqrt(T.mean(T.square(input), self.axes_to_sum))
      input *= inv_stdv.dimshuffle(*self.dimshuffle_args)
      self.init_updates = [(self.b, -m * inv_stdv), (self.g, self.g * inv_stdv)]
    elif hasattr(self, "b"):
      input += self.b.dimshuffle(*self.dimshuffle_args)

    return self.nonlinearity(input)


def weight_norm(layer, **kwargs):
  nonlinearity = getattr(layer, "nonlinearity", None)
  if nonlinearity is not None:
    layer.nonlinearity = identity
  if getattr(layer, "b", None) is not None:
    del layer.params[layer.b]
    layer.b = None
  return WeightNormLayer(layer, nonlinearity=nonlinearity, **kwargs)


class Deconv2DLayer(Layer):
  def __init__(self, incoming, target_shape, filter_size, stride=(2, 2), W=Normal(0.05),
               b=Constant(0.), nonlinearity=relu):
    super().__init__(incoming)
    self.target_shape = target_shape
    self.nonlinearity = (identity if nonlinearity is None else nonlinearity)
    self.filter_size = filter_size
    self.stride = stride
    self.W_shape = (incoming.output_shape[1], target_shape[1], filter_size[0], filter_size[1])
    self.W = self.add_param(W, self.W_shape, name="W")
    if b is not None:
      self.b = self.add_param(b, (target_shape[1],), name="b")
    else:
      self.b = None

  def get_output_shape_for(self, input_shape):
    return self.target_shape

  def get_output_for(self, input, **kwargs):
    # AbstractConv2d_gradInputs(imshp=target_shape, kshp=W_shape, subsample=stride,
    # border_mode='half'): the gradient of conv2d(image, W) with respect to its image.
    assert self.stride[0] == self.stride[1] and self.filter_size[0] == self.filter_size[1]
    activation = Conv2dGradInputs(self.filter_size, self.filter_size[0] // 2, self.stride[0],
                                  self.target_shape[2:])(self.W, input)

    if self.b is not None:
      activation += self.b.dimshuffle("x", 0, "x", "x")

    return self.nonlinearity(activation)


def _eye_like_rows(x):
  """T.eye(x.shape[0]), built from the rows' running count: PyTensor's Eye infers its shape
  when built by walking the whole network above ``x`` (about 30 s per graph here)."""
  index = T.cumsum(T.ones_like(x[:, 0, 0]))
  return T.cast(T.eq(index.dimshuffle(0, "x"), index.dimshuffle("x", 0)), FLOATX)


# minibatch discrimination layer
class MinibatchLayer(Layer):
  def __init__(self, incoming, num_kernels, dim_per_kernel=5, theta=Normal(0.05),
               log_weight_scale=Constant(0.), b=Constant(-1.)):
    super().__init__(incoming)
    self.num_kernels = num_kernels
    num_inputs = int(np.prod(self.input_shape[1:]))
    self.theta = self.add_param(theta, (num_inputs, num_kernels, dim_per_kernel), name="theta")
    self.log_weight_scale = self.add_param(log_weight_scale, (num_kernels, dim_per_kernel),
                                           name="log_weight_scale")
    self.W = self.theta * (T.exp(self.log_weight_scale) / T.sqrt(
        T.sum(T.square(self.theta), axis=0))).dimshuffle("x", 0, 1)
    self.b = self.add_param(b, (num_kernels,), name="b")

  def get_output_shape_for(self, input_shape):
    return (input_shape[0], np.prod(input_shape[1:]) + self.num_kernels)

  def get_output_for(self, input, init=False, **kwargs):
    if input.ndim > 2:
      # if the input has more than two dimensions, flatten it into a
      # batch of feature vectors.
      input = input.flatten(2)

    activation = T.tensordot(input, self.W, [[1], [0]])
    abs_dif = (T.sum(abs(activation.dimshuffle(0, 1, 2, "x")
                         - activation.dimshuffle("x", 1, 2, 0)), axis=2)
               + 1e6 * _eye_like_rows(activation).dimshuffle(0, "x", 1))

    if init:
      mean_min_abs_dif = 0.5 * T.mean(T.min(abs_dif, axis=2), axis=0)
      abs_dif /= mean_min_abs_dif.dimshuffle("x", 0, "x")
      self.init_updates = [(self.log_weight_scale, self.log_weight_scale
                            - T.log(mean_min_abs_dif).dimshuffle(0, "x"))]

    f = T.sum(T.exp(-abs_dif), axis=2)

    if init:
      mf = T.mean(f, axis=0)
      f -= mf.dimshuffle("x", 0)
      self.init_updates.append((self.b, -mf))
    else:
      f += self.b.dimshuffle("x", 0)

    return T.concatenate([input, f], axis=1)


# Input Mixture of Gaussian Layer
class MoGLayer(Layer):
  def __init__(self, incoming, noise_dim, z=Normal(0.05), sig=Constant(-1.)):
    super().__init__(incoming)
    self.z = self.add_param(z, noise_dim, name="z")
    self.sig = self.add_param(sig, noise_dim, name="sig")

  def get_output_shape_for(self, input_shape):
    return input_shape

  def get_output_for(self, input, **kwargs):
    return self.z + input * self.sig

  def get_sig(self):
    return self.sig

  def get_z(self):
    return self.z


class BatchNormLayer(Layer):
  def __init__(self, incoming, b=Constant(0.), g=Constant(1.), nonlinearity=relu):
    super().__init__(incoming)
    self.nonlinearity = nonlinearity
    k = self.input_shape[1]
    if b is not None:
      self.b = self.add_param(b, (k,), name="b", regularizable=False)
    if g is not None:
      self.g = self.add_param(g, (k,), name="g", regularizable=False)
    self.avg_batch_mean = self.add_param(Constant(0.), (k,), name="avg_batch_mean",
                                         regularizable=False, trainable=False)
    self.avg_batch_var = self.add_param(Constant(1.), (k,), name="avg_batch_var",
                                        regularizable=False, trainable=False)
    if len(self.input_shape) == 4:
      self.axes_to_sum = (0, 2, 3)
      self.dimshuffle_args = ["x", 0, "x", "x"]
    else:
      self.axes_to_sum = 0
      self.dimshuffle_args = ["x", 0]

  def get_output_for(self, input, deterministic=False, **kwargs):
    if deterministic:
      norm_features = (input - self.avg_batch_mean.dimshuffle(*self.dimshuffle_args)) / T.sqrt(
          1e-6 + self.avg_batch_var).dimshuffle(*self.dimshuffle_args)
    else:
      batch_mean = T.mean(input, axis=self.axes_to_sum).flatten()
      centered_input = input - batch_mean.dimshuffle(*self.dimshuffle_args)
      batch_var = T.mean(T.square(centered_input), axis=self.axes_to_sum).flatten()
      batch_stdv = T.sqrt(1e-6 + batch_var)
      norm_features = centered_input / batch_stdv.dimshuffle(*self.dimshuffle_args)

      # BN updates
      new_m = 0.9 * self.avg_batch_mean + 0.1 * batch_mean
      new_v = 0.9 * self.avg_batch_var + T.cast(
          (0.1 * input.shape[0]) / (input.shape[0] - 1), FLOATX) * batch_var
      self.bn_updates = [(self.avg_batch_mean, new_m), (self.avg_batch_var, new_v)]

    if hasattr(self, "g"):
      activation = norm_features * self.g.dimshuffle(*self.dimshuffle_args)
    else:
      activation = norm_features
    if hasattr(self, "b"):
      activation += self.b.dimshuffle(*self.dimshuffle_args)

    return self.nonlinearity(activation)


def batch_norm(layer, b=Constant(0.), g=Constant(1.), **kwargs):
  """
  adapted from https://gist.github.com/f0k/f1a6bd3c8585c400c190
  """
  nonlinearity = getattr(layer, "nonlinearity", None)
  if nonlinearity is not None:
    layer.nonlinearity = identity
  else:
    nonlinearity = identity
  if getattr(layer, "b", None) is not None:
    del layer.params[layer.b]
    layer.b = None
  return BatchNormLayer(layer, b, g, nonlinearity=nonlinearity, **kwargs)


class GaussianNoiseLayer(Layer):
  def __init__(self, incoming, sigma=0.1):
    super().__init__(incoming)
    self._srng = RandomStream(Layer.rng.randint(1, 2147462579))
    self.sigma = sigma

  def get_output_for(self, input, deterministic=False, use_last_noise=False, **kwargs):
    if deterministic or self.sigma == 0:
      return input
    else:
      if not use_last_noise:
        self.noise = self._srng.normal(0.0, self.sigma, size=input.shape)
      return input + self.noise
