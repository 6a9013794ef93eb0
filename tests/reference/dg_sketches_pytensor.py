"""Reference port of the official sketch script (val-iisc/deligan, src/sketches/dg_sketches.py,
MIT licence, Theano + Lasagne) to PyTensor, on the transcribed nn.py
(:mod:`tests.reference.improved_gan_nn_pytensor`). Test code only.

Kept as written: the networks layer by layer (widths are arguments, the official ones by
default), the costs (``binary_crossentropy`` of sigmoids), ``adam_updates(mom1=0.5)`` for D on
``loss_real + unlabeled_weight * loss_fake`` and for G on ``loss_gen + sigloss``, the
data-dependent ``init_param``, ``train_batch_disc``, ``train_batch_gen``, ``batch_gen`` (the
probe: both networks in training mode, no update) and the balancing loop of one batch
(:meth:`SketchReference.run_batch`: one probe, the forced half-lr D update, five updates).

Changed, because it no longer exists or cannot be shared otherwise: as in
:mod:`tests.reference.dg_cifar_pytensor` (G's noise is the shared variable ``self.noise``,
which the loop takes from ``noise(call, k)`` before every call that runs G; input noise and
dropout are arguments; functions compile on first call); ``xrange`` -> ``range``; the
batch's loop calls ``after()`` after each update, for the tests to read the parameters.
"""

from __future__ import annotations

import numpy as np
import pytensor as th
import pytensor.tensor as T

from tests.reference import improved_gan_nn_pytensor as nn
from tests.reference.dg_cifar_pytensor import ReferenceHooks, _function
from tests.reference.improved_gan_nn_pytensor import Normal

ll = nn  # lasagne.layers
dnn = nn  # lasagne.layers.dnn


class SketchReference(ReferenceHooks):

  def __init__(self, batch_size=100, z_dim=100, gen_dim=40, disc_dim=20, mbd_kernels=50,
               mbd_dims=5, input_noise=0.2, dropout_p=0.5, unlabeled_weight=1.):
    self.batch_size = batch_size
    noise_dim = (batch_size, z_dim)
    rng = np.random.RandomState(1)
    Z = th.shared(value=rng.uniform(-1.0,1.0,noise_dim).astype(np.float32), name='Z', borrow=True)
    sig = th.shared(value=rng.uniform(0.2, 0.2,noise_dim).astype(np.float32), name='sig', borrow=True)
    self.noise = th.shared(np.zeros(noise_dim, np.float32), name='noise')
    noise = self.noise
    gen_layers = [ll.InputLayer(shape=noise_dim, input_var=noise)]
    gen_layers.append(nn.MoGLayer(gen_layers[-1], noise_dim=noise_dim, z=Z, sig=sig))
    gen_layers.append(nn.batch_norm(ll.DenseLayer(gen_layers[-1], num_units=4*4*gen_dim*4, W=Normal(0.05), nonlinearity=nn.relu), g=None))
    gen_layers.append(ll.ReshapeLayer(gen_layers[-1], (batch_size,gen_dim*4,4,4)))
    gen_layers.append(nn.batch_norm(nn.Deconv2DLayer(gen_layers[-1], (batch_size,gen_dim*2,8,8), (5,5), W=Normal(0.05), nonlinearity=nn.relu), g=None)) # 4 -> 8
    gen_layers.append(nn.batch_norm(nn.Deconv2DLayer(gen_layers[-1], (batch_size,gen_dim,16,16), (5,5), W=Normal(0.05), nonlinearity=nn.relu), g=None)) # 8 -> 16
    gen_layers.append(nn.weight_norm(nn.Deconv2DLayer(gen_layers[-1], (batch_size,1,32,32), (5,5), W=Normal(0.05), nonlinearity=T.tanh), train_g=True, init_stdv=0.1)) # 16 -> 32
    gen_dat = ll.get_output(gen_layers[-1])

    disc_layers = [ll.InputLayer(shape=(None, 1, 32, 32))]
    disc_layers.append(nn.GaussianNoiseLayer(disc_layers[-1], sigma=input_noise))
    disc_layers.append(nn.weight_norm(dnn.Conv2DDNNLayer(disc_layers[-1],disc_dim,(5,5), pad=1, W=Normal(0.05), nonlinearity=nn.lrelu)))
    disc_layers.append(nn.weight_norm(dnn.Conv2DDNNLayer(disc_layers[-1], disc_dim, (5,5), pad=1, stride=2, W=Normal(0.05), nonlinearity=nn.lrelu)))
    disc_layers.append(ll.DropoutLayer(disc_layers[-1], p=dropout_p))
    disc_layers.append(nn.weight_norm(dnn.Conv2DDNNLayer(disc_layers[-1],disc_dim*2,(5,5), pad=1, stride=2, W=Normal(0.05), nonlinearity=nn.lrelu)))
    disc_layers.append(ll.DropoutLayer(disc_layers[-1], p=dropout_p))
    disc_layers.append(nn.weight_norm(dnn.Conv2DDNNLayer(disc_layers[-1],disc_dim*4,(3,3),pad=0, stride=2, W=Normal(0.05), nonlinearity=nn.lrelu)))
    disc_layers.append(nn.weight_norm(ll.NINLayer(disc_layers[-1], num_units=disc_dim*4, W=Normal(0.05), nonlinearity=nn.lrelu)))
    disc_layers.append(ll.GlobalPoolLayer(disc_layers[-1]))
    disc_layers.append(nn.MinibatchLayer(disc_layers[-1], num_kernels=mbd_kernels, dim_per_kernel=mbd_dims))
    disc_layers.append(nn.weight_norm(ll.DenseLayer(disc_layers[-1], num_units=1, W=Normal(0.05), nonlinearity=None), train_g=True, init_stdv=0.1))
    self.gen_layers, self.disc_layers = gen_layers, disc_layers

    # costs
    x_lab = T.tensor4()
    temp = ll.get_output(gen_layers[-1], deterministic=False, init=True)
    temp = ll.get_output(disc_layers[-1], x_lab, deterministic=False, init=True)
    init_updates = [u for l in gen_layers+disc_layers for u in getattr(l,'init_updates',[])]

    D_logit = ll.get_output(disc_layers[-1], x_lab, deterministic=False)
    D_prob = T.sigmoid(D_logit)
    D_fake_logit = ll.get_output(disc_layers[-1], gen_dat, deterministic=False)
    D_fake_prob = T.sigmoid(D_fake_logit)

    sig1 = gen_layers[1].get_sig()
    # sigma regularizer
    sigloss =T.mean((1-sig1)*(1-sig1))*.05
    loss_real = T.mean(nn.binary_crossentropy(D_prob,T.ones_like(D_prob)))
    loss_fake = T.mean(nn.binary_crossentropy(D_fake_prob,T.zeros_like(D_fake_prob)))

    # Theano functions for training the disc net
    lr = T.scalar()
    disc_params = ll.get_all_params(disc_layers, trainable=True)
    disc_cost = loss_real + unlabeled_weight*loss_fake
    disc_param_updates = nn.adam_updates(disc_params, disc_cost, lr=lr, mom1=0.5)
    disc_param_avg = [th.shared(np.asarray(0.*p.get_value(), np.float32)) for p in disc_params]
    disc_avg_updates = [(a,a+0.0001*(p-a)) for p,a in zip(disc_params,disc_param_avg)]
    mode = nn.MODE
    self.init_param = _function(inputs=[x_lab], outputs=None, updates=init_updates, mode=mode)
    self.train_batch_disc = _function(inputs=[x_lab,lr], outputs=[loss_real,loss_fake], updates=disc_param_updates+disc_avg_updates, mode=mode)
    self.samplefun = _function(inputs=[],outputs=gen_dat, mode=mode)

    # Theano functions for training the gen net
    loss_gen = T.mean(nn.binary_crossentropy(D_fake_prob,T.ones_like(D_fake_prob)))
    gen_params = ll.get_all_params(gen_layers[-1],trainable=True)

    gen_param_updates = nn.adam_updates(gen_params, loss_gen + sigloss, lr=lr, mom1=0.5)
    self.train_batch_gen = _function(inputs=[lr], outputs=[sig1,sigloss,loss_gen], updates=gen_param_updates, mode=mode)
    self.batch_gen = _function(inputs=[], outputs=[sig1,sigloss,loss_gen],updates=None, mode=mode)

    # --- hooks for tests -----------------------------------------------------
    self.disc_params, self.gen_params = disc_params, gen_params
    self.disc_grads = _function([x_lab], T.grad(disc_cost, disc_params), mode=mode)
    self.gen_grads = _function([], T.grad(loss_gen, gen_params) + T.grad(sigloss, [sig1]),
                               mode=mode)
    self._hooks(gen_layers, disc_layers, disc_param_updates + gen_param_updates)
    self.count1, self.count2, self.t1, self.thres = 0, 0, 0.70, 1.0

  def run_batch(self, batch, lr, lrd, noise, log, after=lambda: None):
    """One pass of the script's ``for t in range(nr_batches_train)`` body on ``batch`` (NCHW).

    ``noise(call, k)`` gives G's eps for each call that runs G: the batch's first probe
    ('first'), the forced D update ('forced'), inner update k ('update') and the probe after
    a D update ('probe'). ``log(event, value)`` sees the forced update ('forced', its loss)
    and each update ('G' or 'D', with the genloss that decided it); ``after()`` is called
    after each of them has changed the parameters.
    """
    def call(function, name, k, *args):
      self.noise.set_value(noise(name, k))
      return function(*args)

    sigm , sigmloss, genloss = call(self.batch_gen, "first", 0)
    if self.count1>5:
        self.thres=min(self.thres+0.003,1.0)
        self.count1=0
        ll, lu =call(self.train_batch_disc, "forced", 0, batch,lrd)
        log("forced", ll + lu)
        after()
    if self.count2<-1:
        self.thres=max(self.thres-0.003, self.t1)
        self.count2=0

    for k in range(5):
        if(genloss>self.thres):
            log("G", genloss)
            sigm, sigmloss, genloss = call(self.train_batch_gen, "update", k, lr)
            after()
            self.count1+=1
            self.count2=0
        else:
            log("D", genloss)
            ll, lu = call(self.train_batch_disc, "update", k, batch,lr)
            after()
            sigm, sigmloss, genloss = call(self.batch_gen, "probe", k)
            self.count1=0
            self.count2-=1
