"""The MNIST model and balancing rule in PyTorch eager: the bench's reference peer.

What a user would write instead of this project: the same networks (docs/paper.md §3,
as :mod:`deligan_jax.models.networks`), the same mixture prior, losses, Adam settings
and streak rule, in PyTorch's default layout (NCHW) with a host-side loop (each
probe's ``g`` is read on the host to choose the update). ``from_jax`` copies a
JAX parameter pytree in, so the forward passes can be tested equal
(tests/test_torch_peer.py). torch is an optional extra (``pip install .[bench]``);
nothing else in the package imports this module.
"""

from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn.functional as F
from jax import lax
from torch import nn

from deligan_jax.step import balancing
from deligan_jax.models import conv
from deligan_jax.models import networks

BN_MOMENTUM = 1.0 - networks.BN_MOMENTUM  # torch weighs the new batch, flax the old average


def _batch_norm(cls, features: int, eps: float = networks.BN_EPSILON) -> nn.Module:
  return cls(features, eps=eps, momentum=BN_MOMENTUM)


def _same_conv(x: torch.Tensor, conv_layer: nn.Conv2d) -> torch.Tensor:
  """A strided convolution with lax's 'SAME' padding (more at the end when odd)."""
  k, s = conv_layer.kernel_size, conv_layer.stride
  (top, bottom), (left, right) = lax.padtype_to_pads(x.shape[2:], k, s, "SAME")
  return conv_layer(F.pad(x, (left, right, top, bottom)))


def _transpose(x: torch.Tensor, layer: nn.ConvTranspose2d,
               pads: tuple[tuple[int, int], tuple[int, int]]) -> torch.Tensor:
  """``lax.conv_transpose`` with explicit pads: torch's padding k-1-lo, then the end cropped."""
  (k, _), (s, _) = layer.kernel_size, layer.stride
  lo, hi = pads[0]
  y = layer(x)
  out = (x.shape[2] - 1) * s + 1 + lo + hi - k + 1
  return y[:, :, :out, :out]


class Generator(nn.Module):
  """MnistGenerator: dense -> 4x4x4w -> 7x7x2w -> 14x14xw -> 28x28x1 (NCHW)."""

  def __init__(self, latent_dim: int = 30, width: int = 16):
    super().__init__()
    w = width
    self.width = w
    self.dense = nn.Linear(latent_dim, 16 * 4 * w)
    self.bn0 = _batch_norm(nn.BatchNorm1d, 16 * 4 * w)
    self.pads = [((1, 1), (1, 1))] + [(conv._transpose_padding(5, 2, "SAME"),) * 2] * 2
    self.deconvs = nn.ModuleList([
        nn.ConvTranspose2d(4 * w, 2 * w, 3, 2, padding=3 - 1 - self.pads[0][0][0]),
        nn.ConvTranspose2d(2 * w, w, 5, 2, padding=5 - 1 - self.pads[1][0][0]),
        nn.ConvTranspose2d(w, 1, 5, 2, padding=5 - 1 - self.pads[2][0][0])])
    self.bns = nn.ModuleList([_batch_norm(nn.BatchNorm2d, c) for c in (2 * w, w)])

  def forward(self, z: torch.Tensor) -> torch.Tensor:
    h = F.relu(self.bn0(self.dense(z)))
    h = h.view(-1, 4, 4, 4 * self.width).permute(0, 3, 1, 2)  # the JAX reshape is NHWC
    for deconv, pads, bn in zip(self.deconvs[:2], self.pads, self.bns):
      h = F.relu(bn(_transpose(h, deconv, pads)))
    return torch.tanh(_transpose(h, self.deconvs[2], self.pads[2]))


class Discriminator(nn.Module):
  """MnistDiscriminator: three strided convs, max-pool, minibatch discrimination, dense."""

  def __init__(self, width: int = 16, mbd_kernels: int = 64, mbd_dims: int = 5):
    super().__init__()
    w = width
    self.convs = nn.ModuleList([nn.Conv2d(1, w, 5, 2), nn.Conv2d(w, 2 * w, 5, 2),
                                nn.Conv2d(2 * w, 4 * w, 3, 2)])
    self.bns = nn.ModuleList([_batch_norm(nn.BatchNorm2d, c, networks.CONTRIB_BN_EPSILON)
                              for c in (2 * w, 4 * w)])
    self.theta = nn.Parameter(0.05 * torch.randn(4 * w, mbd_kernels, mbd_dims))
    self.log_scale = nn.Parameter(torch.zeros(mbd_kernels, mbd_dims))
    self.out = nn.Linear(4 * w + mbd_kernels, 1)

  def forward(self, x: torch.Tensor, groups: int = 1) -> torch.Tensor:
    h = F.leaky_relu(_same_conv(x, self.convs[0]), 0.2)
    for conv_layer, bn in zip(self.convs[1:], self.bns):
      h = F.leaky_relu(bn(_same_conv(h, conv_layer)), 0.2)
    h = F.max_pool2d(h, 4).flatten(1)
    # Minibatch discrimination, normalised, each group compared only with itself; as in
    # the official code c(i, i) = 1 stays in the sum.
    direction = self.theta / self.theta.square().sum(0).sqrt()
    m = torch.einsum("bf,fkc->bkc", h, direction * self.log_scale.exp())
    m = m.view(groups, -1, *m.shape[1:])
    l1 = (m[:, :, None] - m[:, None, :]).abs().sum(-1)  # (G, n, n, K)
    o = torch.exp(-l1).sum(2)
    o = o / o.sum((1, 2), keepdim=True)
    return self.out(torch.cat([h, o.reshape(h.shape[0], -1)], 1))[:, 0]


def _copy(target: torch.Tensor, value) -> None:
  target.data.copy_(torch.from_numpy(np.array(value, np.float32)))


def from_jax(generator: Generator, discriminator: Discriminator, params, batch_stats) -> None:
  """Loads a JAX MNIST model's ``params``/``batch_stats`` (HWIO, NHWC) into the torch modules."""
  g, gs = params["generator"]["network"], batch_stats["generator"]["network"]
  _copy(generator.dense.weight, np.asarray(g["Dense_0"]["kernel"]).T)
  _copy(generator.dense.bias, g["Dense_0"]["bias"])
  for i, deconv in enumerate(generator.deconvs):
    # lax.conv_transpose correlates with the kernel; torch's is the conv's adjoint (flipped).
    kernel = np.asarray(g[f"ConvTranspose_{i}"]["kernel"])[::-1, ::-1]
    _copy(deconv.weight, kernel.transpose(2, 3, 0, 1))
    _copy(deconv.bias, g[f"ConvTranspose_{i}"]["bias"])
  d, ds = params["discriminator"], batch_stats["discriminator"]
  for i, conv_layer in enumerate(discriminator.convs):
    _copy(conv_layer.weight, np.asarray(d[f"Conv_{i}"]["kernel"]).transpose(3, 2, 0, 1))
    _copy(conv_layer.bias, d[f"Conv_{i}"]["bias"])
  norms = [(generator.bn0, g, gs, "bn0"), (generator.bns[0], g, gs, "bn1"),
           (generator.bns[1], g, gs, "bn2"), (discriminator.bns[0], d, ds, "bn1"),
           (discriminator.bns[1], d, ds, "bn2")]
  for bn, p, s, name in norms:
    _copy(bn.weight, p[name]["scale"])
    _copy(bn.bias, p[name]["bias"])
    _copy(bn.running_mean, s[name]["mean"])
    _copy(bn.running_var, s[name]["var"])
  mbd = d["MinibatchDiscrimination_0"]
  _copy(discriminator.theta, mbd["theta"])
  _copy(discriminator.log_scale, mbd["log_scale"])
  _copy(discriminator.out.weight, np.asarray(d["Dense_0"]["kernel"]).T)
  _copy(discriminator.out.bias, d["Dense_0"]["bias"])


class Peer:
  """The DeLiGAN MNIST training step in PyTorch eager, with the streak rule on the host."""

  def __init__(self, config, train_x: np.ndarray):
    torch.manual_seed(config.seed)
    net, latent = config.network, config.latent
    self.batch_size = config.batch_size
    self.sigma_reg = latent.sigma_reg
    self.rule = balancing.BalanceRule.from_config(config.balance)
    self.generator = Generator(latent.dim, net.generator_width)
    self.discriminator = Discriminator(net.discriminator_width, net.mbd_kernels, net.mbd_dims)
    n = latent.num_components
    self.mu = nn.Parameter(torch.rand(n, latent.dim) * 2 - 1)
    self.sigma = nn.Parameter(torch.full((n, latent.dim), 0.2))
    betas = (config.optim.b1, config.optim.b2)
    self.g_opt = torch.optim.Adam([*self.generator.parameters(), self.mu, self.sigma],
                                  config.optim.lr, betas)
    self.d_opt = torch.optim.Adam(self.discriminator.parameters(), config.optim.lr, betas)
    self.train_x = torch.from_numpy(np.asarray(train_x, np.float32)).permute(0, 3, 1, 2)
    self.thres, self.g_streak, self.d_streak = self.rule.thres_init, 0, 0

  def latent(self) -> torch.Tensor:
    ids = torch.arange(self.batch_size) % self.mu.shape[0]
    return self.mu[ids] + self.sigma[ids] * torch.randn(self.batch_size, self.mu.shape[1])


  def probe(self) -> float:
    self.generator.eval()
    self.discriminator.eval()
    with torch.no_grad():
      g = F.softplus(-self.discriminator(self.generator(self.latent()))).mean().item()
    self.generator.train()
    self.discriminator.train()
    return g

  def generator_update(self, real) -> None:
    del real  # D's batch norm sees each set alone (network.d_batch_norm='separate')
    fake_logits = self.discriminator(self.generator(self.latent()))
    loss = (F.softplus(-fake_logits).mean()
            + self.sigma_reg * (1 - self.sigma).square().mean())
    self.g_opt.zero_grad(set_to_none=True)
    loss.backward()
    self.g_opt.step()

  def discriminator_update(self, real) -> None:
    with torch.no_grad():
      fake = self.generator(self.latent())
    real_logits, fake_logits = self.discriminator(real), self.discriminator(fake)
    loss = F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()
    self.d_opt.zero_grad(set_to_none=True)
    loss.backward()
    self.d_opt.step()

  def train_batch(self, real) -> None:
    """One batch: the streak rule moves thres, then the balanced updates."""
    rule = self.rule
    if self.g_streak > rule.g_streak:
      self.thres, self.g_streak = min(self.thres + rule.thres_up, rule.thres_max), 0
    if self.d_streak >= rule.d_streak:
      self.thres, self.d_streak = max(self.thres - rule.thres_down, rule.t1_init), 0
    for _ in range(rule.inner_updates):
      if self.probe() > self.thres:
        self.generator_update(real)
        self.g_streak, self.d_streak = self.g_streak + 1, 0
      else:
        self.discriminator_update(real)
        self.g_streak, self.d_streak = 0, self.d_streak + 1

  def train(self, num_batches: int) -> None:
    for _ in range(num_batches):
      indices = torch.randint(len(self.train_x), (self.batch_size,))
      self.train_batch(self.train_x[indices])


def seconds_per_update(config, train_x: np.ndarray, batches: int, repeats: int) -> float:
  """Median wall time of one balanced update, over ``repeats`` runs of ``batches`` batches."""
  peer = Peer(config, train_x)
  peer.train(2)  # warm-up
  seconds = []
  for _ in range(repeats):
    start = time.perf_counter()
    peer.train(batches)
    seconds.append(time.perf_counter() - start)
  return float(np.median(seconds)) / (batches * peer.rule.inner_updates)
