"""Reference port of the official toy script (val-iisc/deligan, src/Toy/dg_toy.py, MIT
licence, TensorFlow 0.10) to TensorFlow 2's ``tf.compat.v1`` graph mode. Test code only.

Kept as written: G (2 -> 32 tanh -> 2 tanh), D (2 -> 32 tanh -> 1), the mixture (mu ~ U(-1,
1), sigma 0.02, ``0.1 * mean((sigma - 1)^2)``), the losses, Adam(1e-4, beta1=0.5) on the
'd_' and 'g_' variables, and the training loop's batches (:class:`ScriptLoop`): one
z ~ U(-1, 1) per batch, reused by all 5 probed updates, and the count rule (:class:`CountRule`).

Changed, because it no longer exists: ``tf.mul`` -> ``tf.multiply``; the positional
arguments of ``sigmoid_cross_entropy_with_logits`` -> ``logits=, labels=``; ``xrange`` ->
``range``; ``tf.initialize_all_variables`` -> ``global_variables_initializer``; ``linear``'s
weights get TF 0.10's default initialiser, ``uniform_unit_scaling``, explicitly (TF 2's
default is Glorot-uniform). Plotting and checkpoints are left out. ``model='gan'`` is the
script's ``G = generator(z, 0)`` line.

Tests drive one update at a time (:meth:`ToyReference.probe`, ``update_generator``,
``update_discriminator``) with injected parameters, real batches and z, or whole batches
(:meth:`ScriptLoop.run_batch`).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from tests.reference import hooks

tf1 = tf.compat.v1
# get_variable's default initialiser in TensorFlow 0.10 (Glorot-uniform from 0.12 on).
TF010_DEFAULT_INIT = tf1.uniform_unit_scaling_initializer


def _linear(x, output_dim, name):
  w = tf1.get_variable(name + "/w", [x.get_shape()[1], output_dim],
                       initializer=TF010_DEFAULT_INIT())
  b = tf1.get_variable(name + "/b", [output_dim], initializer=tf1.constant_initializer(0.0))
  return tf.matmul(x, w) + b


class ToyReference(hooks.VariableHooks):
  """The toy script's graph, with hooks to read and set every variable."""

  def __init__(self, model: str = "deligan", batchsize: int = 50, z_dim: int = 2,
               gf_dim: int = 32, df_dim: int = 32, learningrate: float = 0.0001,
               beta1: float = 0.5):
    self.batchsize, self.z_dim, self.learningrate = batchsize, z_dim, learningrate
    self.graph = tf.Graph()
    with self.graph.as_default():
      tf1.enable_resource_variables()
      self._build(model, gf_dim, df_dim, beta1)
      self.start_session()

  def _build(self, model, gf_dim, df_dim, beta1):
    def discriminator(image):
      with tf1.variable_scope("disc", reuse=tf1.AUTO_REUSE):
        return _linear(tf.tanh(_linear(image, df_dim, "d_l1")), 1, "d_l2")

    def generator(z, n):
      with tf1.variable_scope("gen" + str(n)):
        return tf.nn.tanh(_linear(tf.tanh(_linear(z, gf_dim, "g_l1")), 2, "g_l2"))

    self.images = tf1.placeholder(tf.float32, [self.batchsize, 2], name="real_images")
    self.z = tf1.placeholder(tf.float32, [None, self.z_dim], name="z")
    self.lr1 = tf1.placeholder(tf.float32, name="lr")
    zin = tf1.get_variable("g_z", [self.batchsize, self.z_dim],
                           initializer=tf1.random_uniform_initializer(-1, 1))
    zsig = tf1.get_variable("g_sig", [self.batchsize, self.z_dim],
                            initializer=tf1.constant_initializer(0.02))
    inp = self.z if model == "gan" else tf.add(zin, tf.multiply(self.z, zsig))
    self.samples = generator(inp, 0)
    d_logit = discriminator(self.images)
    d_fake_logit = discriminator(self.samples)
    bce = tf.nn.sigmoid_cross_entropy_with_logits
    sig_loss = 0.1 * tf.reduce_mean(tf.square(zsig - 1))
    d_loss_real = tf.reduce_mean(bce(logits=d_logit, labels=tf.ones_like(d_logit)))
    d_loss_fake = tf.reduce_mean(bce(logits=d_fake_logit, labels=tf.zeros_like(d_fake_logit)))
    self.gloss = tf.reduce_mean(bce(logits=d_fake_logit, labels=tf.ones_like(d_fake_logit)))
    self.gloss1 = self.gloss + (0.0 if model == "gan" else sig_loss)
    self._mixture_gradients = {
        name: tf.gradients(loss, [zin, zsig], unconnected_gradients="zero")
        for name, loss in (("adversarial", self.gloss), ("regulariser", sig_loss))}
    self.dloss = d_loss_real + d_loss_fake
    t_vars = tf1.trainable_variables()
    d_vars = [var for var in t_vars if "d_" in var.name]
    g_vars = [var for var in t_vars if "g_" in var.name]
    if model == "gan":
      g_vars = [var for var in g_vars if var not in (zin, zsig)]
    self.d_optim = tf1.train.AdamOptimizer(self.lr1, beta1=beta1).minimize(self.dloss,
                                                                          var_list=d_vars)
    self.g_optim = tf1.train.AdamOptimizer(self.lr1, beta1=beta1).minimize(self.gloss1,
                                                                          var_list=g_vars)

  def probe(self, z: np.ndarray) -> float:
    """``gloss.eval({z: batch_z})``."""
    return float(self.sess.run(self.gloss, {self.z: z}))

  def update_generator(self, z: np.ndarray, lr: float, images: np.ndarray | None = None
                       ) -> float:
    """One ``g_optim`` step; returns ``gloss1`` (G's loss plus the sigma term) before it.

    ``images`` is not read (the toy D has no batch norm); the MNIST port's signature.
    """
    del images
    loss, _ = self.sess.run([self.gloss1, self.g_optim], {self.z: z, self.lr1: lr})
    return float(loss)

  def mixture_gradients(self, z: np.ndarray, images: np.ndarray | None = None
                        ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """d/d(g_z, g_sig) of G's loss ('adversarial') and of the sigma term ('regulariser')."""
    del images
    return {name: tuple(value) for name, value in
            self.sess.run(self._mixture_gradients, {self.z: z}).items()}

  def update_discriminator(self, images: np.ndarray, z: np.ndarray, lr: float) -> float:
    loss, _ = self.sess.run([self.dloss, self.d_optim],
                            {self.images: images, self.z: z, self.lr1: lr})
    return float(loss)


class CountRule:
  """The script's threshold rule: thres, the signed count of G (+1) and D (-1) updates, t1.

  ``number`` is the type of thres and t1: the script's Python float, or e.g. ``np.float32``
  to follow the project's float32 arithmetic step for step.
  """

  def __init__(self, number=float):
    self.number = number
    self.thres, self.count, self.t1 = number(1.0), 0, number(0.73)

  def start_epoch(self):
    n = self.number
    if self.count < -1000:
      self.t1 = max(self.t1 - n(0.005), n(0.70))

  def start_batch(self):
    n = self.number
    if self.count > 10:
      self.thres = min(self.thres + n(0.01), n(1.0))
      self.count = 0
    if self.count < -150 and self.thres > self.t1:
      self.thres = max(self.thres - n(0.001), self.t1)
      self.count = 0

  def record(self, updated_generator: bool):
    self.count += 1 if updated_generator else -1


class ScriptLoop:
  """The script's loop over batches: :class:`CountRule` and one z per batch for all 5 updates.

  The caller supplies each batch's images and z and calls ``rule.start_epoch()`` before an
  epoch's first batch (the script: a RandomState(1) permutation per epoch; z drawn by
  ``np.random``, a normal batch overwritten by a uniform one).
  """

  def __init__(self, reference: ToyReference):
    self.reference = reference
    self.rule = CountRule()

  def run_batch(self, batch_images: np.ndarray, batch_z: np.ndarray, lr: float) -> dict:
    """One batch: the rule's batch start, then 5 probed updates, all on ``batch_z``."""
    reference, rule = self.reference, self.rule
    rule.start_batch()
    g_updates, probes = 0, []
    for _ in range(5):
      g = reference.probe(batch_z)
      probes.append(g)
      update_g = g > rule.thres
      if update_g:
        reference.update_generator(batch_z, lr)
      else:
        reference.update_discriminator(batch_images, batch_z, lr)
      rule.record(update_g)
      g_updates += update_g
    return {"g_updates": int(g_updates), "d_updates": 5 - int(g_updates), "thres": rule.thres,
            "probe": float(np.mean(probes))}
