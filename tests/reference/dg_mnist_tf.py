"""Reference port of the official MNIST script (val-iisc/deligan, src/mnist/dg_mnist.py, MIT
licence, TensorFlow 0.10) to TensorFlow 2's ``tf.compat.v1`` graph mode. Test code only.

Kept as written: the networks (G with its hand-written EMA batch norm, decay 0.9, eps 1e-5;
D with tf.contrib batch norm, two separate D calls sharing variables), minibatch
discrimination (its j = i term included: the script masks the distance, not exp(-distance)),
the losses, the sigma term /3, Adam(lr, beta1=0.5) for D on 'd_' variables and for G on 'g_'
variables, the inference-mode probe, the threshold rule (count1 > 3 / count2 < -1, steps
0.003, floor t1 = 0.70), the learning-rate schedule (:func:`learning_rate`), the per-epoch
permutation and the selection of the 500 training images (:func:`select_training_images`).

Changed, because it no longer exists or cannot be re-created otherwise:

* ``tf.mul`` -> ``tf.multiply``, ``tf.sub`` -> ``tf.subtract``, ``tf.concat(1, [x, f])`` ->
  ``tf.concat([x, f], 1)``; ``xrange`` -> ``range``; ``data_size/batchsize`` -> ``//``.
* ``sigmoid_cross_entropy_with_logits(D_logit, ones)`` -> keyword arguments ``logits=, labels=``.
* ``tf.contrib.layers.batch_norm(decay=0.9, scale=True, updates_collections=None,
  is_training=phase_train)`` -> :func:`_contrib_batch_norm`: beta 0, gamma 1, moving mean 0
  and variance 1, epsilon 0.001, moments over (N, H, W); in training mode it normalises with
  the batch's moments and, because ``updates_collections=None``, updates the moving averages
  in place (``moving -= (moving - batch) * (1 - decay)``) on every call, so D's averages also
  move during G's updates. TF 0.10 does not order the two D calls' updates within one
  ``sess.run``; here D(real)'s runs first, then D(fake)'s.
* ``fc_batch_norm`` / ``global_batch_norm``: ``ExponentialMovingAverage.apply`` on tensors
  created its shadow variables (zeros) inside ``tf.cond``, which TF 2's graph mode refuses.
  The shadows are created outside (still zeros) and ``tf.cond(phase_train)`` is replaced by
  building each network twice with a Python ``phase_train``: the training-mode graph (which
  updates the averages) for the optimisers, the inference-mode graph for the probe and
  sampling. The script feeds ``phase_train`` explicitly to every run, so this is the same.
* ``linear``'s weights (``g_h0``) get TF 0.10's default initialiser, ``uniform_unit_scaling``,
  explicitly: TF 2's default is Glorot-uniform.
* ``tf.initialize_all_variables`` -> ``global_variables_initializer``; resource variables,
  so that a read placed after an update sees it.
* Plotting, t-SNE, cv2 and the script's checkpoints are left out; :class:`ScriptLoop` logs
  instead and ``run_mnist.py`` keeps its own checkpoints.

Project deviations, as flags: ``d_batch_norm='joint'`` runs D once on [real; fake] (one
batch-norm batch; minibatch discrimination still within each set) in both networks' updates
(G's update then needs the real batch too).
``model='gan'`` feeds z to G directly (the script's commented ``inp = z`` line).

Tests drive one update at a time (:meth:`MnistReference.probe`, ``update_generator``,
``update_discriminator``) with injected parameters, real batches and eps; :class:`ScriptLoop`
runs the script's loop (resumably: ``tests/reference/run_mnist.py`` checkpoints it).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from tests.reference import hooks

tf1 = tf.compat.v1
BN_DECAY = 0.9
# get_variable's default initialiser in TensorFlow 0.10 (Glorot-uniform from 0.12 on).
TF010_DEFAULT_INIT = tf1.uniform_unit_scaling_initializer


def _lrelu(x, leak=0.2):
  f1, f2 = 0.5 * (1 + leak), 0.5 * (1 - leak)
  return f1 * x + f2 * tf.abs(x)


class MnistReference(hooks.VariableHooks):
  """The script's graph, with hooks to read and set every variable.

  Sizes default to the script's (batch 50, z 30, gf = df = 16); tests shrink them.
  ``seed`` seeds the initialisers (None: unseeded, as the script).
  """

  def __init__(self, model: str = "deligan", d_batch_norm: str = "separate",
               batchsize: int = 50, z_dim: int = 30, gf_dim: int = 16, df_dim: int = 16,
               learningrate: float = 0.0005, beta1: float = 0.5, seed: int | None = None):
    self.batchsize, self.z_dim, self.gf_dim, self.df_dim = batchsize, z_dim, gf_dim, df_dim
    self.learningrate = learningrate
    self.graph = tf.Graph()
    self._ema = {}         # name -> (shadow mean, shadow var)
    self._last_update = []  # D batch norm updates, chained in construction order
    with self.graph.as_default():
      tf1.enable_resource_variables()
      if seed is not None:  # the script leaves TF's initialisers unseeded
        tf1.set_random_seed(seed)
      self._build(model, d_batch_norm, beta1)
      self.start_session()

  # --- the script's layers ---------------------------------------------------

  def _minibatch_discriminator(self, x, num_kernels, dim_per_kernel=5, name="MD"):
    num_inputs, batchsize = self.df_dim * 4, self.batchsize
    theta = tf1.get_variable(name + "/theta", [num_inputs, num_kernels, dim_per_kernel],
                             initializer=tf1.random_normal_initializer(stddev=0.05))
    log_weight_scale = tf1.get_variable(name + "/lws", [num_kernels, dim_per_kernel],
                                        initializer=tf1.constant_initializer(0.0))
    w = tf.multiply(theta, tf.expand_dims(tf.exp(log_weight_scale)
                                          / tf.sqrt(tf.reduce_sum(tf.square(theta), 0)), 0))
    w = tf.reshape(w, [-1, num_kernels * dim_per_kernel])
    x = tf.reshape(x, [batchsize, num_inputs])
    activation = tf.reshape(tf.matmul(x, w), [-1, num_kernels, dim_per_kernel])
    abs_dif = tf.multiply(
        tf.reduce_sum(tf.abs(tf.subtract(tf.expand_dims(activation, 3),
                                         tf.expand_dims(tf.transpose(activation, [1, 2, 0]),
                                                        0))), 2),
        1 - tf.expand_dims(tf.constant(np.eye(batchsize), dtype=np.float32), 1))
    f = tf.reduce_sum(tf.exp(-abs_dif), 2) / tf.reduce_sum(tf.exp(-abs_dif))
    return tf.concat([x, f], 1)

  def _ema_moments(self, x, axes, name, phase_train):
    """The script's moments + ExponentialMovingAverage(0.9) of them (shadows start at 0)."""
    batch_mean, batch_var = tf.nn.moments(x, axes)
    if name not in self._ema:
      n = x.get_shape()[-1]
      self._ema[name] = (
          tf1.get_variable(name + "/ema_mean", [n], initializer=tf1.zeros_initializer(),
                           trainable=False),
          tf1.get_variable(name + "/ema_var", [n], initializer=tf1.zeros_initializer(),
                           trainable=False))
    shadow_mean, shadow_var = self._ema[name]
    if not phase_train:
      return shadow_mean.read_value(), shadow_var.read_value()
    updates = [shadow.assign_sub((shadow - value) * (1 - BN_DECAY))
               for shadow, value in ((shadow_mean, batch_mean), (shadow_var, batch_var))]
    with tf.control_dependencies(updates):
      return tf.identity(batch_mean), tf.identity(batch_var)

  def _fc_batch_norm(self, x, n_out, phase_train, name):
    beta = tf1.get_variable(name + "/fc_beta", shape=[n_out], initializer=tf1.constant_initializer())
    gamma = tf1.get_variable(name + "/fc_gamma", shape=[n_out],
                             initializer=tf1.random_normal_initializer(1., 0.02))
    mean, var = self._ema_moments(x, [0], name, phase_train)
    return tf.nn.batch_normalization(x, mean, var, beta, gamma, 1e-5)

  def _global_batch_norm(self, x, n_out, phase_train, name):
    beta = tf1.get_variable(name + "/beta", shape=[n_out], initializer=tf1.constant_initializer(0.))
    gamma = tf1.get_variable(name + "/gamma", shape=[n_out],
                             initializer=tf1.random_normal_initializer(1., 0.02))
    mean, var = self._ema_moments(x, [0, 1, 2], name, phase_train)
    return tf.nn.batch_normalization(x, mean, var, beta, gamma, 1e-5)

  def _contrib_batch_norm(self, x, phase_train, scope):
    """tf.contrib.layers.batch_norm(decay=0.9, scale=True, updates_collections=None)."""
    n = x.get_shape()[-1]
    with tf1.variable_scope(scope, reuse=tf1.AUTO_REUSE):
      beta = tf1.get_variable("beta", [n], initializer=tf1.zeros_initializer())
      gamma = tf1.get_variable("gamma", [n], initializer=tf1.ones_initializer())
      moving_mean = tf1.get_variable("moving_mean", [n], initializer=tf1.zeros_initializer(),
                                     trainable=False)
      moving_var = tf1.get_variable("moving_variance", [n], initializer=tf1.ones_initializer(),
                                    trainable=False)
    if not phase_train:
      mean, var = moving_mean.read_value(), moving_var.read_value()
    else:
      mean, var = tf.nn.moments(x, [0, 1, 2])
      with tf.control_dependencies(self._last_update):
        updates = [moving.assign_sub((moving - value) * (1 - BN_DECAY))
                   for moving, value in ((moving_mean, mean), (moving_var, var))]
      self._last_update = updates
      with tf.control_dependencies(updates):
        mean, var = tf.identity(mean), tf.identity(var)
    return tf.nn.batch_normalization(x, mean, var, beta, gamma, 0.001)

  @staticmethod
  def _conv(x, wx, wy, input_features, output_features, stride, name):
    w = tf1.get_variable(name + "/w", [wx, wy, input_features, output_features],
                         initializer=tf1.truncated_normal_initializer(stddev=0.02))
    b = tf1.get_variable(name + "/b", [output_features], initializer=tf1.constant_initializer(0.0))
    return tf.nn.conv2d(x, w, strides=[1, stride, stride, 1], padding="SAME") + b

  @staticmethod
  def _convt(x, output_shape, wx, wy, stride, name):
    w = tf1.get_variable(name + "/w", [wx, wy, output_shape[-1], x.get_shape()[-1]],
                         initializer=tf1.truncated_normal_initializer(stddev=0.02))
    b = tf1.get_variable(name + "/b", [output_shape[-1]], initializer=tf1.constant_initializer(0.0))
    return tf.nn.conv2d_transpose(x, w, output_shape=output_shape,
                                  strides=[1, stride, stride, 1], padding="SAME") + b

  @staticmethod
  def _linear(x, output_dim, name):
    w = tf1.get_variable(name + "/w", [x.get_shape()[1], output_dim],
                         initializer=TF010_DEFAULT_INIT())
    b = tf1.get_variable(name + "/b", [output_dim], initializer=tf1.constant_initializer(0.0))
    return tf.matmul(x, w) + b

  @staticmethod
  def _dense(x, input_features, output_features, scope):
    with tf1.variable_scope(scope):
      matrix = tf1.get_variable("Matrix", [input_features, output_features], tf.float32,
                                tf1.random_normal_initializer(stddev=0.02))
      bias = tf1.get_variable("bias", [output_features], initializer=tf1.constant_initializer(0.0))
      return tf.matmul(x, matrix) + bias

  def _discriminator(self, image, phase_train, sets=1):
    """D's logits; ``sets > 1``: one batch-norm batch of that many stacked sets (joint)."""
    df_dim, batchsize = self.df_dim, self.batchsize
    with tf1.variable_scope("disc", reuse=tf1.AUTO_REUSE):
      image = tf.reshape(image, [-1, 28, 28, 1])
      h0 = _lrelu(self._conv(image, 5, 5, 1, df_dim, 2, name="d_h0_conv"))
      h1 = _lrelu(self._contrib_batch_norm(
          self._conv(h0, 5, 5, df_dim, df_dim * 2, 2, name="d_h1_conv"), phase_train, "d_bn1"))
      h2 = _lrelu(self._contrib_batch_norm(
          self._conv(h1, 3, 3, df_dim * 2, df_dim * 4, 2, name="d_h2_conv"), phase_train,
          "d_bn2"))
      h3 = tf.nn.max_pool(h2, ksize=[1, 4, 4, 1], strides=[1, 1, 1, 1], padding="VALID")
      logits = []
      for h3_set in tf.split(h3, sets):
        h7 = self._minibatch_discriminator(h3_set, num_kernels=df_dim * 4, name="d_MD")
        logits.append(self._dense(tf.reshape(h7, [batchsize, -1]), df_dim * 4 * 2, 1,
                                  scope="d_h8_lin"))
      return tf.concat(logits, 0)

  def _generator(self, z, phase_train):
    gf_dim, batchsize = self.gf_dim, self.batchsize
    with tf1.variable_scope("gen", reuse=tf1.AUTO_REUSE):
      h0 = tf.reshape(tf.nn.relu(self._fc_batch_norm(
          self._linear(z, gf_dim * 4 * 4 * 4, name="g_h0"), gf_dim * 4 * 4 * 4, phase_train,
          "g_bn0")), [-1, 4, 4, gf_dim * 4])
      h1 = tf.nn.relu(self._global_batch_norm(
          self._convt(h0, [batchsize, 7, 7, gf_dim * 2], 3, 3, 2, name="g_h1"), gf_dim * 2,
          phase_train, "g_bn1"))
      h3 = tf.nn.relu(self._global_batch_norm(
          self._convt(h1, [batchsize, 14, 14, gf_dim], 5, 5, 2, name="g_h3"), gf_dim,
          phase_train, "g_bn3"))
      return tf.tanh(self._convt(h3, [batchsize, 28, 28, 1], 5, 5, 2, name="g_h4"))

  def _build(self, model, d_batch_norm, beta1):
    batchsize, z_dim = self.batchsize, self.z_dim
    self.images = tf1.placeholder(tf.float32, [batchsize, 28 * 28], name="real_images")
    self.z = tf1.placeholder(tf.float32, [None, z_dim], name="z")
    self.lr1 = tf1.placeholder(tf.float32, name="lr")
    self.zin = tf1.get_variable("g_z", [batchsize, z_dim],
                                initializer=tf1.random_uniform_initializer(-1, 1))
    self.zsig = tf1.get_variable("g_sig", [batchsize, z_dim],
                                 initializer=tf1.constant_initializer(0.2))
    inp = self.z if model == "gan" else tf.add(self.zin, tf.multiply(self.z, self.zsig))
    bce = tf.nn.sigmoid_cross_entropy_with_logits

    # Inference mode (phase_train=False): the probe and samples.
    self.samples = self._generator(inp, phase_train=False)
    probe_logit = self._discriminator(self.samples, phase_train=False)
    self.probe_loss = tf.reduce_mean(bce(logits=probe_logit, labels=tf.ones_like(probe_logit)))

    # Training mode: G's update runs D on G(z) only.
    self._last_update = []
    self.joint = d_batch_norm == "joint"
    g_fake = self._generator(inp, phase_train=True)
    if self.joint:
      g_fake_logit = tf.split(self._discriminator(
          tf.concat([tf.reshape(self.images, [-1, 28, 28, 1]), g_fake], 0), phase_train=True,
          sets=2), 2)[1]
    else:
      g_fake_logit = self._discriminator(g_fake, phase_train=True)
    self.sigma_loss = tf.reduce_mean(tf.square(self.zsig - 1)) / 3
    gloss = tf.reduce_mean(bce(logits=g_fake_logit, labels=tf.ones_like(g_fake_logit)))
    self.g_total_loss = gloss + (0.0 if model == "gan" else self.sigma_loss)
    self._mixture_gradients = {
        name: tf.gradients(loss, [self.zin, self.zsig], unconnected_gradients="zero")
        for name, loss in (("adversarial", gloss), ("regulariser", self.sigma_loss))}

    # D's update: D(real) and D(G(z)), two calls (or one joint batch-norm call).
    self._last_update = []
    d_fake = self._generator(inp, phase_train=True)
    if self.joint:
      d_logit, d_fake_logit = tf.split(
          self._discriminator(tf.concat([tf.reshape(self.images, [-1, 28, 28, 1]), d_fake], 0),
                              phase_train=True, sets=2), 2)
    else:
      d_logit = self._discriminator(self.images, phase_train=True)
      d_fake_logit = self._discriminator(d_fake, phase_train=True)
    d_loss_real = tf.reduce_mean(bce(logits=d_logit, labels=tf.ones_like(d_logit)))
    d_loss_fake = tf.reduce_mean(bce(logits=d_fake_logit, labels=tf.zeros_like(d_fake_logit)))
    self.dloss = d_loss_real + d_loss_fake

    t_vars = tf1.trainable_variables()
    d_vars = [var for var in t_vars if "d_" in var.name]
    g_vars = [var for var in t_vars if "g_" in var.name]
    if model == "gan":
      g_vars = [var for var in g_vars if var not in (self.zin, self.zsig)]
    self.d_optim = tf1.train.AdamOptimizer(self.lr1, beta1=beta1).minimize(self.dloss,
                                                                          var_list=d_vars)
    self.g_optim = tf1.train.AdamOptimizer(self.lr1, beta1=beta1).minimize(self.g_total_loss,
                                                                          var_list=g_vars)

  # --- hooks for tests ------------------------------------------------------

  def probe(self, eps: np.ndarray) -> float:
    """``gloss.eval({z: eps, phase_train: False})``."""
    return float(self.sess.run(self.probe_loss, {self.z: eps}))

  def update_generator(self, eps: np.ndarray, lr: float, images: np.ndarray | None = None
                       ) -> float:
    """One ``g_optim`` step; returns G's loss (plus the sigma term) before it.

    ``images``: the real batch, read only with ``d_batch_norm='joint'``.
    """
    feed = {self.z: eps, self.lr1: lr}
    if self.joint:
      feed[self.images] = images
    loss, _ = self.sess.run([self.g_total_loss, self.g_optim], feed)
    return float(loss)

  def update_discriminator(self, images: np.ndarray, eps: np.ndarray, lr: float) -> float:
    """One ``d_optim`` step on real ``images`` (B, 784); returns D's loss before it."""
    loss, _ = self.sess.run([self.dloss, self.d_optim],
                            {self.images: images, self.z: eps, self.lr1: lr})
    return float(loss)

  def sample(self, eps: np.ndarray) -> np.ndarray:
    return self.sess.run(self.samples, {self.z: eps})

  def mixture_gradients(self, eps: np.ndarray, images: np.ndarray | None = None
                        ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """d/d(g_z, g_sig) of G's loss ('adversarial') and of the sigma term ('regulariser').

    Runs G and D in training mode, so their batch-norm averages move as in ``g_optim``.
    """
    feed = {self.z: eps}
    if self.joint:
      feed[self.images] = images
    return {name: tuple(value) for name, value in
            self.sess.run(self._mixture_gradients, feed).items()}


def learning_rate(learningrate: float, epoch: int) -> float:
  """The script's ``learningrate * (np.minimum((4 - epoch/1000.), 3.)/3)``."""
  return learningrate * (np.minimum((4 - epoch / 1000.), 3.) / 3)


def select_training_images(trainx: np.ndarray, trainy: np.ndarray) -> np.ndarray:
  """The script's data selection: the last 50 images of each digit, digit by digit.

  ``trainx`` (N, 784) as stored, ``trainy`` (N, 10) one-hot (the script's ``mnist.npz``);
  scaled to [-1, 1] as the script does.
  """
  trainx = 2 * trainx / 255. - 1
  data = []
  # Uniformly sampling 50 images per category from the dataset
  for i in range(10):
    train = trainx[np.argmax(trainy, 1) == i]
    data.append(train[-50:])
  data = np.array(data)
  return np.reshape(data, [-1, 28 * 28])


class StreakRule:
  """The script's threshold rule: thres, count1 (G streak), count2 (minus the D streak)."""

  def __init__(self):
    self.thres, self.count1, self.count2, self.t1 = 1.0, 0, 0, 0.70

  def start_batch(self):
    if self.count1 > 3:
      self.thres = min(self.thres + 0.003, 1.0)
      self.count1 = 0
    if self.count2 < -1:
      self.thres = max(self.thres - 0.003, self.t1)
      self.count2 = 0

  def record(self, updated_generator: bool):
    if updated_generator:
      self.count1 += 1
      self.count2 = 0
    else:
      self.count2 -= 1
      self.count1 = 0


class ScriptLoop:
  """The script's training loop, with its whole state exposed so that a run can resume.

  ``data`` is (N, 784) in [-1, 1]; the per-epoch permutation uses the script's
  RandomState(1); eps comes from ``np.random.RandomState(noise_seed)`` (the script's global
  numpy state). Between batches, :meth:`state` and :meth:`load_state` capture everything
  besides the graph's variables: the batch counter, the epoch and position in it, the
  epoch's permutation, both random states and the rule's.
  """

  def __init__(self, reference: MnistReference, data: np.ndarray, seed: int = 1,
               noise_seed: int = 0):
    self.reference, self.data = reference, data
    self.rng, self.noise = np.random.RandomState(seed), np.random.RandomState(noise_seed)
    self.rule = StreakRule()
    self.counter, self.epoch, self.idx = 0, 0, 0
    self.order = None  # this epoch's permutation, drawn before its first batch

  def run(self, num_batches: int, log, stop=lambda: False) -> None:
    """Batches until ``num_batches`` (or ``stop()`` after a batch); ``log(counter, record)``."""
    bs, zd = self.reference.batchsize, self.reference.z_dim
    batch_idx = self.data.shape[0] // bs
    while self.counter < num_batches:
      if self.idx == 0:
        self.order = self.rng.permutation(self.data.shape[0])
      lr = learning_rate(self.reference.learningrate, self.epoch)
      batch_images = self.data[self.order[self.idx * bs:(self.idx + 1) * bs]]
      eps = [self.noise.normal(0, 1.0, [bs, zd]).astype(np.float32) for _ in range(5)]
      record = self.run_batch(batch_images, eps, lr)
      self.counter += 1
      self.idx += 1
      if self.idx == batch_idx:
        self.idx, self.epoch = 0, self.epoch + 1
      log(self.counter, record)
      if stop():
        return

  def run_batch(self, batch_images: np.ndarray, eps: list[np.ndarray], lr: float) -> dict:
    """One batch of the script: the rule's batch start, then 5 probed updates (eps[k] each)."""
    reference, rule = self.reference, self.rule
    rule.start_batch()
    g_updates, probes = 0, []
    for batch_z in eps:
      g = reference.probe(batch_z)
      probes.append(g)
      update_g = g > rule.thres
      if update_g:
        reference.update_generator(batch_z, lr, batch_images)
      else:
        reference.update_discriminator(batch_images, batch_z, lr)
      rule.record(update_g)
      g_updates += update_g
    return {"g_updates": int(g_updates), "d_updates": len(eps) - int(g_updates),
            "thres": rule.thres, "probe": float(np.mean(probes))}

  def state(self) -> dict:
    """JSON-ready; floats are Python floats, so they round-trip exactly."""
    return {"counter": self.counter, "epoch": self.epoch, "idx": self.idx,
            "order": None if self.order is None else self.order.tolist(),
            "rng": _random_state(self.rng), "noise": _random_state(self.noise),
            "rule": vars(self.rule).copy()}

  def load_state(self, state: dict) -> None:
    self.counter, self.epoch, self.idx = state["counter"], state["epoch"], state["idx"]
    self.order = None if state["order"] is None else np.asarray(state["order"])
    _set_random_state(self.rng, state["rng"])
    _set_random_state(self.noise, state["noise"])
    vars(self.rule).update(state["rule"])


def _random_state(rng: np.random.RandomState) -> list:
  name, keys, pos, has_gauss, cached = rng.get_state()
  return [name, keys.tolist(), int(pos), int(has_gauss), float(cached)]


def _set_random_state(rng: np.random.RandomState, state: list) -> None:
  name, keys, pos, has_gauss, cached = state
  rng.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
