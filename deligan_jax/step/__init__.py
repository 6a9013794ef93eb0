"""One training step: the balanced G/D updates (:mod:`~deligan_jax.step.updates`), their parts
(losses, balancing rule, Adam, augmentation, batch drawing, the state) and the jitted driver
that runs K batches per dispatch on a device mesh (:mod:`~deligan_jax.step.driver`)."""
