"""Each loss against values computed by hand (see the comments for the arithmetic)."""

import math

import pytest
import torch

from w2slab.losses import LogConfLoss, ProductLoss, harden_predictions, logconf_weight, make_loss, xent_loss

LN2 = math.log(2.0)
# For logits [2, 0]: log(e^2 + 1) = 2.126928, so log-probs are [-0.126928, -2.126928].
LSE = math.log(math.exp(2) + 1)


def test_xent_uniform_logits_is_ln2():
    assert xent_loss(torch.zeros(1, 2), torch.tensor([[1.0, 0.0]]), 0.0).item() == pytest.approx(LN2, abs=1e-6)


def test_xent_soft_labels():
    # 0.75 * 0.126928 + 0.25 * 2.126928 = 0.626928
    value = xent_loss(torch.tensor([[2.0, 0.0]]), torch.tensor([[0.75, 0.25]]), 0.3).item()
    assert value == pytest.approx(0.626928, abs=1e-5)
    assert value == pytest.approx(0.75 * (LSE - 2) + 0.25 * LSE, abs=1e-6)


@pytest.mark.parametrize("step_frac, expected", [(0.0, 0.0), (0.05, 0.25), (0.1, 0.5), (0.5, 0.5), (1.0, 0.5)])
def test_logconf_weight_warms_up_linearly_to_its_maximum(step_frac, expected):
    # The reference code used weight = aux * step_frac during warm-up: 0.025 at 5% of training,
    # then a jump from 0.05 to 0.5. Fixed: linear to 0.5 over the warm-up fraction.
    assert logconf_weight(step_frac, aux_weight=0.5, warmup_frac=0.1) == pytest.approx(expected)


def test_logconf_weight_is_continuous_at_end_of_warmup():
    before = logconf_weight(0.0999, 0.5, 0.1)
    after = logconf_weight(0.1001, 0.5, 0.1)
    assert abs(after - before) < 1e-3


def test_harden_predictions_matches_weak_class_balance():
    probs = torch.tensor([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]])
    # half positive: threshold = median of p0 = [0.9, 0.8, 0.3, 0.6] = 0.7; p0 < 0.7 -> positive
    weak = torch.tensor([[0.5, 0.5]] * 4)
    assert harden_predictions(probs, weak).tolist() == [[1, 0], [1, 0], [0, 1], [0, 1]]


def test_logconf_exact_value_after_warmup():
    # probs0 = [0.880797, 0.119203]; positive share of weak labels = 0.4;
    # quantile(probs0, 0.4) = 0.119203 + 0.4 * (0.880797 - 0.119203) = 0.423841 -> hard = [[1,0],[0,1]].
    # target = 0.5 * weak + 0.5 * hard = [[0.8, 0.2], [0.3, 0.7]]
    # row 1: 0.8 * 0.126928 + 0.2 * 2.126928 = 0.526928; row 2: 0.3 * 2.126928 + 0.7 * 0.126928 = 0.726928
    logits = torch.tensor([[2.0, 0.0], [0.0, 2.0]])
    weak = torch.tensor([[0.6, 0.4], [0.6, 0.4]])
    value = LogConfLoss(aux_weight=0.5, warmup_frac=0.1)(logits, weak, 0.5).item()
    assert value == pytest.approx(0.626928, abs=1e-5)


def test_logconf_at_step_zero_equals_xent():
    logits = torch.tensor([[2.0, 0.0], [0.0, 2.0]])
    weak = torch.tensor([[0.6, 0.4], [0.6, 0.4]])
    assert LogConfLoss()(logits, weak, 0.0).item() == pytest.approx(xent_loss(logits, weak).item(), abs=1e-7)


def test_logconf_mid_warmup_uses_partial_weight():
    # step 0.05 of warm-up 0.1 -> weight 0.25: target row 1 = 0.75*[0.6,0.4] + 0.25*[1,0] = [0.7, 0.3]
    # row 2 = 0.75*[0.6,0.4] + 0.25*[0,1] = [0.45, 0.55]
    logits = torch.tensor([[2.0, 0.0], [0.0, 2.0]])
    weak = torch.tensor([[0.6, 0.4], [0.6, 0.4]])
    row1 = 0.7 * (LSE - 2) + 0.3 * LSE
    row2 = 0.45 * LSE + 0.55 * (LSE - 2)
    value = LogConfLoss(aux_weight=0.5, warmup_frac=0.1)(logits, weak, 0.05).item()
    assert value == pytest.approx((row1 + row2) / 2, abs=1e-6)


def test_product_loss_exact_values():
    # uniform student: target = weak labels renormalised -> loss = ln 2 whatever the weak labels
    assert ProductLoss()(torch.zeros(1, 2), torch.tensor([[0.8, 0.2]]), 0.0).item() == pytest.approx(LN2, abs=1e-6)
    # uniform weak labels: target = the student's own probs -> loss = its entropy
    # p = [0.880797, 0.119203]: 0.880797 * 0.126928 + 0.119203 * 2.126928 = 0.365334
    value = ProductLoss()(torch.tensor([[2.0, 0.0]]), torch.tensor([[0.5, 0.5]]), 0.0).item()
    assert value == pytest.approx(0.365334, abs=1e-5)


def test_losses_are_fp32_for_half_inputs():
    logits = torch.tensor([[2.0, 0.0]], dtype=torch.bfloat16, requires_grad=True)
    for name in ("xent", "logconf", "product"):
        loss = make_loss(name)(logits, torch.tensor([[0.75, 0.25]]), 0.5)
        assert loss.dtype == torch.float32


def test_logconf_k_classes_uses_argmax():
    probs = torch.tensor([[0.1, 0.7, 0.2], [0.5, 0.2, 0.3]])
    assert harden_predictions(probs, torch.full((2, 3), 1 / 3)).argmax(-1).tolist() == [1, 0]


def test_unknown_loss_is_a_clear_error():
    from w2slab.errors import W2SError

    with pytest.raises(W2SError, match="unknown loss 'focal'"):
        make_loss("focal")
