"""The tests' reading of a command's output: the project's lines, not other libraries'."""

from tests.process_output import own_lines, split_lines

# The stderr of `train.py --config configs/mnist.py` on a CPU with AVX-512 when it imported
# TensorFlow, with a GPU JAX cannot use and a library's Python warning.
STDERR = """\
WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
I0000 00:00:1796433678.289362   11132 port.cc:153] oneDNN custom operations are on. You may see slightly different numerical results.
I0000 00:00:1796433789.947841   11888 cpu_feature_guard.cc:227] This TensorFlow binary is optimized to use available CPU instructions.
To enable the following instructions: AVX2 AVX512F AVX512_VNNI, in other operations, rebuild TensorFlow.
W1205 01:21:21.100000 140557099903872 xla_bridge.py:850] An NVIDIA GPU may be present on this machine, but a CUDA-enabled jaxlib is not installed.
/venv/lib/python3.11/site-packages/orbax/checkpoint/x.py:12: UserWarning: something
  warnings.warn("something")
W1205 01:21:21.865198 140557099903872 datasets.py:47] MNIST: no data folder is set, so training on the paper's 500 images
deligan:  50%|█████     | 20/40 [00:10<00:10,  1.95upd/s]
error: workdir runs/x: the disk is full
"""


def test_own_lines_are_the_projects_log_lines_messages_and_progress():
  own, foreign = split_lines(STDERR)
  assert own == own_lines(STDERR) == STDERR.splitlines()[7:]
  assert foreign == STDERR.splitlines()[:7]
