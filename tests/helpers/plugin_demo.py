"""A third-party plugin module, as an installed package would declare it in the ``w2slab.plugins`` group."""

from dataclasses import dataclass

from w2slab.losses import CrossEntropy, Loss, register_loss


@register_loss("demo_halved_xent", replace=True)
@dataclass(frozen=True)
class HalvedXent(Loss):
    """Half the cross-entropy (a stand-in for a plugin's loss)."""

    factor: float = 0.5

    def __call__(self, logits, labels, step_frac):
        return self.factor * CrossEntropy()(logits, labels, step_frac)
