"""Data sources for DeLiGAN: toy 2-D Gaussians, user point sets, MNIST, CIFAR-10, sketches.

One module per source (`points`, `mnist`, `cifar10`, `sketches`), what they
share in `dataset` (the Dataset record, the data folder, subsets) and
`labelled` (the 'files' / 'tfds' choice of MNIST and CIFAR-10); `datasets`
holds the entry points that a data config drives.

Everything returns plain numpy arrays; no JAX is needed. Every bad input
raises `errors.DataError`, whose message names the file or field at fault and
says how to fix it. Nothing is ever written into a data directory.

MNIST and CIFAR-10 come from one of two sources:

* 'files': a folder holding the standard files. MNIST: the idx files
  (`train-images-idx3-ubyte.gz`, ...; uncompressed names also work) or a
  Keras-style `mnist.npz`. CIFAR-10: the python-version pickles of
  `cifar-10-batches-py` (`data_batch_1` ... `data_batch_5`, `test_batch`);
  any subset of the training batches works.
* 'tfds': tensorflow-datasets. Offline, tfds builds MNIST from the same idx
  `.gz` files when the folder is passed as `DownloadConfig.manual_dir`: its
  download manager uses any file in `manual_dir` whose name is registered in
  tfds's url_checksums, and still checks the file's SHA-256. tfds stores the
  examples in a hashed order; both datasets are put back in file order, so
  both sources give identical arrays.

Sketches (TU-Berlin) come from a folder of per-category PNG folders only.
"""
