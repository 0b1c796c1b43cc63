"""The field's methods as their papers define them (or as the adaptation their docstrings name): co-teaching's
independent twins, EnsemW2S's held-out boosting error, selective W2S's selector, trust functions' rounds."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from w2slab.config import TrainConfig
from w2slab.losses import make_loss
from w2slab.models.loading import resolve_model
from w2slab.pipeline.role_model import CoTeachingTwins, EncodedSplit, RoleModel


def _probe_role_model(features: np.ndarray) -> RoleModel:
    """A probe-mode role model of ``coords:`` vectors with its features set (no backbone is run)."""
    model = RoleModel("strong", resolve_model(f"coords:0-{features.shape[1] - 1}"),
                      TrainConfig(mode="probe", epochs=1, batch_size=50, precision="fp32"), 16, "left")
    model.splits["transfer"] = EncodedSplit([{"index": i} for i in range(len(features))], 0)
    model.set_features("transfer", features.astype(np.float32))
    return model


# --- co-teaching ---------------------------------------------------------------------------------


def test_coteaching_twins_start_independently_and_predict_with_the_first_network():
    """Han et al. 2018 train two networks from different random initialisations: the twins' heads differ by far more
    than the old 0.01 nudge of a zero head; predictions are the first network's (``predict: mean`` averages)."""
    rng = np.random.default_rng(0)
    features = rng.standard_normal((200, 6)).astype(np.float32)
    targets = np.eye(2, dtype=np.float32)[(features[:, 0] > 0).astype(int)]
    role = _probe_role_model(features)
    loss = make_loss("coteach")
    first, second = role.new_model(), role.new_model()
    twins = role._twins(first, "transfer", targets, None, seed=3, predict=loss.predict)
    assert isinstance(twins, CoTeachingTwins)
    gap = (twins.first.head.weight - twins.second.head.weight).abs().max().item()
    assert gap > 0.1, gap  # independent inits (nn.Linear's default bound is 1/sqrt(6) = .41 here), not noise
    assert twins.first.head.weight.abs().max().item() > 0.05  # not a zero head
    again = role._twins(role.new_model(), "transfer", targets, None, seed=3, predict="first")
    assert torch.equal(again.second.head.weight, twins.second.head.weight)  # seeded: a rerun repeats it

    model, _ = role.fit("transfer", targets, loss, seed=0, desc="coteach")
    assert isinstance(model, CoTeachingTwins) and model.predict == "first"
    inputs = torch.from_numpy(features)
    with torch.no_grad():
        predicted = model(features=inputs)
        first_only = model.first(features=inputs)
        second_only = model.second(features=inputs)
    assert torch.equal(predicted, first_only)
    assert not torch.allclose(first_only.softmax(-1), second_only.softmax(-1), atol=1e-3)
    assert np.allclose(role.predict(model, "transfer"), first_only.numpy())
    model.predict = "mean"
    with torch.no_grad():
        mixed = model(features=inputs)
    assert torch.allclose(mixed.exp(), (first_only.softmax(-1) + second_only.softmax(-1)) / 2, atol=1e-5)
    with torch.enable_grad():  # training sees both networks' logits
        assert model(features=inputs).shape == (200, 4)
    with pytest.raises(ValueError, match="first or mean"):
        CoTeachingTwins(first, second, "both")
