"""What the tests add to both ports: read, set and reset every variable of the graph."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

tf1 = tf.compat.v1


class VariableHooks:
  """Mixed into a port; ``start_session()`` is called in its graph once it is built."""

  graph: tf.Graph

  def start_session(self) -> None:
    """Opens the session, initialises the variables as the script does and keeps them."""
    self._variables = {v.name[:-2]: v for v in tf1.global_variables()}
    self._placeholders = {name: tf1.placeholder(v.dtype.base_dtype, v.shape)
                          for name, v in self._variables.items()}
    self._assign = {name: v.assign(self._placeholders[name]) for name, v in self._variables.items()}
    self._initialise = tf1.global_variables_initializer()
    self.sess = tf1.Session(graph=self.graph)
    self.sess.run(self._initialise)
    self.initial = self.get()

  def draw_initial(self) -> dict[str, np.ndarray]:
    """A fresh draw of the script's initialisers (unseeded: a new one each call).

    Leaves every variable at :attr:`initial`.
    """
    self.sess.run(self._initialise)
    values = self.get()
    self.reset()
    return values

  def get(self) -> dict[str, np.ndarray]:
    """Every variable (parameters, batch-norm averages, Adam slots) by name."""
    return self.sess.run(self._variables)

  def set(self, values: dict[str, np.ndarray]) -> None:
    self.sess.run([self._assign[name] for name in values],
                  {self._placeholders[name]: value for name, value in values.items()})

  def reset(self) -> None:
    """Every variable (Adam's slots and step counts too) back to its initial value."""
    self.set(self.initial)
