"""The resolved-model record: what a model name turned into (where to load it from, with which family defaults).

Its own module because every side of :mod:`w2slab.models` passes it around: each
:class:`~w2slab.models.sources.ModelSource` makes one, the networks and the label-token reader load from one, and the
pipeline keeps one per role. Keeping it apart from all of them lets each import it without importing the others.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

    from w2slab.models.registry import FamilyDefaults


@dataclass
class ResolvedModel:
    """A name resolved to a loadable location plus its family defaults."""

    name: str
    location: str  # local folder, Hub id, or an image library's model name
    defaults: FamilyDefaults
    source: str  # "packaged", "local", "hub" or "builtin" (built from code: no weights)
    revision: str | None = None  # the Hub commit to load (pinned when the stage graph was built)
    family: str = ""  # the family's registered name (image models are built by it)

    @property
    def modality(self) -> str:
        return self.defaults.modality

    def pretrained_kwargs(self, dtype: torch.dtype) -> dict:
        """What ``from_pretrained`` takes for this model, whatever the head class: dtype, the pinned revision and
        the family's attention implementation."""
        kwargs: dict = {"dtype": dtype, "revision": self.revision}
        if self.defaults.attn_implementation:
            kwargs["attn_implementation"] = self.defaults.attn_implementation
        return kwargs
