"""Reference port of the official CIFAR-10 script (val-iisc/deligan, src/cifar/dg_cifar.py, MIT
licence, Theano + Lasagne) to PyTensor, on the transcribed nn.py
(:mod:`tests.reference.improved_gan_nn_pytensor`). Test code only.

Kept as written: the seeds and the training subset (:func:`select_training_subset`), the
networks layer by layer (widths are arguments, the official ones by default), the
costs, ``adam_updates(mom1=0.5)`` for D on ``loss_lab + unlabeled_weight * loss_unl`` and
for G on ``loss_gen`` (the sigma term is computed, never added), the data-dependent
``init_param``, ``train_batch_disc``, ``train_batch_gen``, ``samplefun`` (G with batch
statistics), the learning-rate schedule and the batch order of the training loop.

Changed, because it no longer exists or cannot be shared otherwise:

* ``theano`` -> ``pytensor``, Lasagne -> the transcription's layers; ``cPickle``,
  plotting, printing and saving are left out; ``xrange`` -> ``range``.
* G's input noise ``theano_rng.normal(size=noise_dim)`` -> the shared variable
  ``self.noise`` that the caller sets before each call, so that both sides see one eps.
* ``input_noise`` and ``dropout_p`` (the script's 0.2 and 0.5) are arguments: random
  streams cannot be shared with JAX, so the step-level tests set them to 0 on both sides.
* ``th.function`` compiles when first called (:func:`_function`).
* Hooks for the tests: :meth:`disc_grads`, :meth:`gen_grads` (G's, then the sigma term's
  for sig), :meth:`get`, :meth:`set`, :meth:`reset_optimiser`, :meth:`param_names`.
"""

from __future__ import annotations

import numpy as np
import pytensor as th
import pytensor.tensor as T
from pytensor.tensor.sharedvar import TensorSharedVariable

from tests.reference import improved_gan_nn_pytensor as nn
from tests.reference.improved_gan_nn_pytensor import Normal

ll = nn  # lasagne.layers
dnn = nn  # lasagne.layers.dnn


def select_training_subset(trainx, trainy, seed=1):
  """The script's seeds and subset: returns (trainx, trainy, trainx_unl, rng) as it leaves them."""
  rng = np.random.RandomState(seed)
  rng.randint(2 ** 15)  # theano_rng = MRG_RandomStreams(rng.randint(2 ** 15))
  rng.randint(2 ** 15)  # lasagne.random.set_rng(np.random.RandomState(rng.randint(2 ** 15)))
  ind = rng.permutation(trainx.shape[0])
  trainx = trainx[ind]
  trainy = trainy[ind]
  trainx = trainx[:2000]
  trainy = trainy[:2000]
  trainx_unl = trainx.copy()
  return trainx, trainy, trainx_unl, rng


def _function(*args, **kwargs):
  """th.function, compiled on first call: a test compiles only the functions it calls."""
  compiled = []

  def call(*inputs):
    if not compiled:
      compiled.append(th.function(*args, **kwargs))
    return compiled[0](*inputs)

  return call


class ReferenceHooks:
  """What the tests read and set on a port: parameters by name, Adam's state."""

  def _hooks(self, gen_layers, disc_layers, adam_updates):
    self.named = named_params(gen_layers, disc_layers)
    trained = self.disc_params + self.gen_params
    self._adam_state = [(var, var.get_value()) for var, _ in adam_updates
                        if all(var is not p for p in trained)]

  def get(self):
    return {name: p.get_value() for name, p in self.named.items()}

  def set(self, values):
    for name, value in values.items():
      self.named[name].set_value(np.asarray(value, np.float32))

  def reset_optimiser(self):
    """Both adam_updates' moments and step counts back to their initial values."""
    for var, initial in self._adam_state:
      var.set_value(initial)

  def param_names(self, params):
    return [next(name for name, p in self.named.items() if p is var) for var in params]


class CifarReference(ReferenceHooks):

  def __init__(self, batch_size=100, z_dim=100, gen_dim=128, disc_dim=96, mbd_kernels=100,
               mbd_dims=5, input_noise=0.2, dropout_p=0.5, unlabeled_weight=1.,
               sig_range=0.2):
    self.batch_size = batch_size
    noise_dim = (batch_size, z_dim)
    rng = np.random.RandomState(1)
    Z = th.shared(value=rng.uniform(-1.0, 1.0, noise_dim).astype(np.float32), name='Z',
                  borrow=True)
    sig = th.shared(value=rng.uniform(-sig_range, sig_range, noise_dim).astype(np.float32),
                    name='sig', borrow=True)
    self.noise = th.shared(np.zeros(noise_dim, np.float32), name='noise')
    noise = self.noise
    gen_layers = [ll.InputLayer(shape=noise_dim, input_var=noise)]
    gen_layers.append(nn.MoGLayer(gen_layers[-1], noise_dim=noise_dim, z=Z, sig=sig))
    gen_layers.append(nn.batch_norm(ll.DenseLayer(gen_layers[-1], num_units=4*4*gen_dim*4, W=Normal(0.05), nonlinearity=nn.relu), g=None))
    gen_layers.append(ll.ReshapeLayer(gen_layers[-1], (batch_size,gen_dim*4,4,4)))
    gen_layers.append(nn.batch_norm(nn.Deconv2DLayer(gen_layers[-1], (batch_size,gen_dim*2,8,8), (5,5), W=Normal(0.05), nonlinearity=nn.relu), g=None))
    gen_layers.append(nn.batch_norm(nn.Deconv2DLayer(gen_layers[-1], (batch_size,gen_dim,16,16), (5,5), W=Normal(0.05), nonlinearity=nn.relu), g=None))
    gen_layers.append(nn.weight_norm(nn.Deconv2DLayer(gen_layers[-1], (batch_size,3,32,32), (5,5), W=Normal(0.05), nonlinearity=T.tanh), train_g=True, init_stdv=0.1))
    gen_dat = ll.get_output(gen_layers[-1])

    disc_layers = [ll.InputLayer(shape=(None, 3, 32, 32))]
    disc_layers.append(nn.GaussianNoiseLayer(disc_layers[-1], sigma=input_noise))
    disc_layers.append(nn.weight_norm(dnn.Conv2DDNNLayer(disc_layers[-1], disc_dim, (3,3), pad=1, W=Normal(0.05), nonlinearity=nn.lrelu)))
    disc_layers.append(nn.weight_norm(dnn.Conv2DDNNLayer(disc_layers[-1], disc_dim, (3,3), pad=1, W=Normal(0.05), nonlinearity=nn.lrelu)))
    disc_layers.append(nn.weight_norm(dnn.Conv2DDNNLayer(disc_layers[-1], disc_dim, (3,3), pad=1, stride=2, W=Normal(0.05), nonlinearity=nn.lrelu)))
    disc_layers.append(ll.DropoutLayer(disc_layers[-1], p=dropout_p))
    disc_layers.append(nn.weight_norm(dnn.Conv2DDNNLayer(disc_layers[-1], disc_dim*2, (3,3), pad=1, W=Normal(0.05), nonlinearity=nn.lrelu)))
    disc_layers.append(nn.weight_norm(dnn.Conv2DDNNLayer(disc_layers[-1], disc_dim*2, (3,3), pad=1, W=Normal(0.05), nonlinearity=nn.lrelu)))
    disc_layers.append(nn.weight_norm(dnn.Conv2DDNNLayer(disc_layers[-1], disc_dim*2, (3,3), pad=1, stride=2, W=Normal(0.05), nonlinearity=nn.lrelu)))
    disc_layers.append(ll.DropoutLayer(disc_layers[-1], p=dropout_p))
    disc_layers.append(nn.weight_norm(dnn.Conv2DDNNLayer(disc_layers[-1], disc_dim*2, (3,3), pad=0, W=Normal(0.05), nonlinearity=nn.lrelu)))
    disc_layers.append(nn.weight_norm(ll.NINLayer(disc_layers[-1], num_units=disc_dim*2, W=Normal(0.05), nonlinearity=nn.lrelu)))
    disc_layers.append(nn.weight_norm(ll.NINLayer(disc_layers[-1], num_units=disc_dim*2, W=Normal(0.05), nonlinearity=nn.lrelu)))
    disc_layers.append(ll.GlobalPoolLayer(disc_layers[-1]))
    disc_layers.append(nn.MinibatchLayer(disc_layers[-1], num_kernels=mbd_kernels, dim_per_kernel=mbd_dims))
    disc_layers.append(nn.weight_norm(ll.DenseLayer(disc_layers[-1], num_units=10, W=Normal(0.05), nonlinearity=None), train_g=True, init_stdv=0.1))
    self.gen_layers, self.disc_layers = gen_layers, disc_layers

    # costs
    labels = T.ivector()
    x_lab = T.tensor4()
    x_unl = T.tensor4()
    temp = ll.get_output(gen_layers[-1], deterministic=False, init=True)
    temp = ll.get_output(disc_layers[-1], x_lab, deterministic=False, init=True)
    init_updates = [u for l in gen_layers+disc_layers for u in getattr(l,'init_updates',[])]

    output_before_softmax_lab = ll.get_output(disc_layers[-1], x_lab, deterministic=False)
    output_before_softmax_unl = ll.get_output(disc_layers[-1], x_unl, deterministic=False)
    output_before_softmax_gen = ll.get_output(disc_layers[-1], gen_dat, deterministic=False)
    sig1 = gen_layers[1].get_sig()
    sigloss =T.mean((1-sig1)*(1-sig1))*.05
    l_lab = output_before_softmax_lab[T.arange(batch_size),labels]
    l_unl = nn.log_sum_exp(output_before_softmax_unl)
    l_gen = nn.log_sum_exp(output_before_softmax_gen)
    loss_lab = -T.mean(l_lab) + T.mean(T.mean(nn.log_sum_exp(output_before_softmax_lab)))
    loss_unl = -0.5*T.mean(l_unl) + 0.5*T.mean(T.softplus(l_unl)) + 0.5*T.mean(T.softplus(l_gen))

    train_err = T.mean(T.neq(T.argmax(output_before_softmax_lab,axis=1),labels))

    # Theano functions for training the disc net
    lr = T.scalar()
    disc_params = ll.get_all_params(disc_layers, trainable=True)
    disc_cost = loss_lab + unlabeled_weight*loss_unl
    disc_param_updates = nn.adam_updates(disc_params, disc_cost, lr=lr, mom1=0.5)
    disc_param_avg = [th.shared(np.asarray(0.*p.get_value(), np.float32)) for p in disc_params]
    disc_avg_updates = [(a,a+0.0001*(p-a)) for p,a in zip(disc_params,disc_param_avg)]
    mode = nn.MODE
    self.init_param = _function(inputs=[x_lab], outputs=None, updates=init_updates, mode=mode)
    self.train_batch_disc = _function(inputs=[x_lab,labels,x_unl,lr], outputs=[loss_lab, loss_unl, train_err], updates=disc_param_updates+disc_avg_updates, mode=mode)
    self.samplefun = _function(inputs=[],outputs=gen_dat, mode=mode)

    # Theano functions for training the gen net
    loss_gen = -T.mean(T.softplus(l_gen))
    gen_params = ll.get_all_params(gen_layers[-1], trainable=True)
    gen_param_updates = nn.adam_updates(gen_params, loss_gen, lr=lr, mom1=0.5)
    self.train_batch_gen = _function(inputs=[lr], outputs=[sig1,sigloss,loss_gen], updates=gen_param_updates, mode=mode)

    # --- hooks for tests -----------------------------------------------------
    self.disc_params, self.gen_params = disc_params, gen_params
    self.disc_grads = _function([x_lab, labels, x_unl], T.grad(disc_cost, disc_params), mode=mode)
    self.gen_grads = _function([], T.grad(loss_gen, gen_params) + T.grad(sigloss, [sig1]),
                               mode=mode)
    self._hooks(gen_layers, disc_layers, disc_param_updates + gen_param_updates)


def named_params(gen_layers, disc_layers):
  """Every parameter of both networks by name: '<net><index in its layer list>.<attribute>'.

  A layer wrapped by weight_norm or batch_norm lends its W to the wrapper's name.
  """
  named = {}
  for prefix, layers in (("gen", gen_layers), ("disc", disc_layers)):
    for i, layer in enumerate(layers):
      wrapped = getattr(layer, "input_layer", None)
      sources = [layer] + ([wrapped] if wrapped is not None and
                           all(wrapped is not other for other in layers) else [])
      for source in sources:
        for attr in ("W_param", "W", "b", "g", "z", "sig", "theta", "log_weight_scale"):
          value = getattr(source, attr, None)
          if isinstance(value, TensorSharedVariable) and all(
              value is not known for known in named.values()):
            named[f"{prefix}{i}.{'W' if attr == 'W_param' else attr}"] = value
  return named


def training_batches(trainx, trainy, trainx_unl, rng, batch_size=100, epochs=2):
  """The script's loop order: one permutation of the labelled set, then every epoch the same
  ``nr_batches_train`` pairs (labelled batch t, unlabelled batch t). Yields the index arrays
  (into the subset) of each pair, labelled first.
  """
  inds = rng.permutation(trainx.shape[0])
  nr_batches_train = int(trainx.shape[0]/batch_size)
  for epoch in range(epochs):
    for t in range(nr_batches_train):
      yield inds[t*batch_size:(t+1)*batch_size], np.arange(t*batch_size, (t+1)*batch_size)
