"""Each loss against values computed by hand (see the comments for the arithmetic)."""

import math

import numpy as np
import pytest
import torch

from w2slab.losses import (
    CrossEntropy,
    LogConfLoss,
    ProductLoss,
    TrainingContext,
    harden_predictions,
    make_loss,
)

LN2 = math.log(2.0)
CONTEXT = TrainingContext(warmup_frac=0.1)  # what a training run passes to for_training
# For logits [2, 0]: log(e^2 + 1) = 2.126928, so log-probs are [-0.126928, -2.126928].
LSE = math.log(math.exp(2) + 1)


def test_xent_uniform_logits_is_ln2():
    assert CrossEntropy()(torch.zeros(1, 2), torch.tensor([[1.0, 0.0]]), 0.0).item() == pytest.approx(LN2, abs=1e-6)


def test_xent_soft_labels():
    # 0.75 * 0.126928 + 0.25 * 2.126928 = 0.626928
    value = CrossEntropy()(torch.tensor([[2.0, 0.0]]), torch.tensor([[0.75, 0.25]]), 0.3).item()
    assert value == pytest.approx(0.626928, abs=1e-5)
    assert value == pytest.approx(0.75 * (LSE - 2) + 0.25 * LSE, abs=1e-6)


@pytest.mark.parametrize("step_frac, expected", [(0.0, 0.0), (0.05, 0.25), (0.1, 0.5), (0.5, 0.5), (1.0, 0.5)])
def test_logconf_weight_ramps_linearly_to_its_maximum(step_frac, expected):
    # The reference code used weight = aux * step_frac during warm-up: 0.025 at 5% of training,
    # then a jump from 0.05 to 0.5. Fixed: linear to 0.5 over the ramp.
    assert LogConfLoss(aux_weight=0.5, ramp_frac=0.1, ramp_start=0.0).weight(step_frac) == pytest.approx(expected)


def test_logconf_weight_is_continuous_at_end_of_ramp():
    loss = LogConfLoss(aux_weight=0.5, ramp_frac=0.1, ramp_start=0.0)
    before, after = loss.weight(0.0999), loss.weight(0.1001)
    assert abs(after - before) < 1e-3


def test_logconf_weight_schedule_exact_per_step():
    """The paper's schedule as trained: 0 through the lr warm-up (10% of 64 steps), then linear to aux_weight over
    20% of training, then flat. Each step's weight is exact, not just its shape."""
    total = 64
    loss = make_loss("logconf").for_training(TrainingContext(warmup_frac=0.1, batch_size=32, seed=0)).loss
    for step in range(total):
        frac = step / total
        expected = 0.0 if frac < 0.1 else 0.5 * min(1.0, (frac - 0.1) / 0.2)
        assert loss.weight(frac) == pytest.approx(expected, abs=1e-12), step
    assert loss.weight(6 / total) == 0.0  # the old schedule had reached its maximum by step 6
    assert loss.weight(7 / total) == pytest.approx(0.5 * (7 / 64 - 0.1) / 0.2)
    assert loss.weight(12 / total) == pytest.approx(0.5 * (12 / 64 - 0.1) / 0.2)  # half-way: .22 of .5
    assert loss.weight(0.3) == pytest.approx(0.5) and loss.weight(1.0) == 0.5
    # its own ramp length and start, as configured
    custom = make_loss({"name": "logconf", "ramp_frac": 0.5, "ramp_start": 0.0}).for_training(TrainingContext()).loss
    assert custom.weight(0.25) == pytest.approx(0.25)


@pytest.mark.parametrize("num_classes, batch", [(2, 10), (2, 7), (3, 9), (4, 13)])
def test_hardening_quotas_are_exact_under_ties(num_classes, batch):
    """Tied probabilities (a zero head: every row uniform) still get exactly the weak labels' class counts, and
    which examples go where is random (seeded), not the lowest indices to class 0."""
    from w2slab.losses import class_quota, step_generator

    probs = torch.full((batch, num_classes), 1.0 / num_classes)
    weak = torch.softmax(torch.randn(batch, num_classes, generator=torch.Generator().manual_seed(1)), dim=-1)
    quota = class_quota(batch, weak.mean(0))
    draws = []
    for step in range(20):
        hard = harden_predictions(probs, weak, generator=step_generator(0, step / 20))
        assert hard.sum(0).long().tolist() == quota
        assert (hard.sum(1) == 1).all()
        draws.append(tuple(hard.argmax(1).tolist()))
    assert len(set(draws)) > 1  # ties broken at random, not by index
    again = harden_predictions(probs, weak, generator=step_generator(0, 3 / 20))
    assert tuple(again.argmax(1).tolist()) == draws[3]  # the same seed and step: the same draw (resume-exact)


def test_binary_hardening_quota_is_round_share_times_batch():
    from w2slab.losses import step_generator

    # 39 of 100 weak mass positive -> exactly 39 hardened positives, whatever the ties: half the rows share p = .5
    probs = torch.tensor([[0.5, 0.5]] * 50 + [[0.2, 0.8]] * 10 + [[0.9, 0.1]] * 40)
    weak = torch.tensor([[0.61, 0.39]] * 100)
    hard = harden_predictions(probs, weak, generator=step_generator(3, 0.5))
    assert int(hard[:, 1].sum()) == 39
    assert hard[50:60, 1].sum() == 10 and hard[60:, 1].sum() == 0  # the most positive rows first, then tied ones


def test_adaptive_conf_breaks_argmax_ties_at_random():
    """A zero head predicts .5/.5: torch.argmax would make every student class 0 and pull all targets there."""
    loss = make_loss({"name": "adaptive_conf", "ramp_start": 0.0, "ramp_frac": 0.0}).for_training(TrainingContext())
    logits = torch.zeros(200, 2)
    labels = torch.tensor([[0.5, 0.5]] * 200)
    grads = []
    for frac in (0.3, 0.6):
        logits_ = logits.clone().requires_grad_(True)
        loss(logits_, labels, frac).backward()
        grads.append(logits_.grad[:, 0].sign())
    # pushes towards class 0 on some rows and class 1 on others, about half each
    assert 60 < int((grads[0] < 0).sum()) < 140


def test_window_midweak_radius_is_computed_once_over_the_training_set():
    import numpy as np

    train_labels = np.array([[0.9, 0.1]] * 3 + [[0.6, 0.4]] * 2)  # median max 0.9 -> radius 0.4 over the set
    loss = make_loss({"name": "window", "radius": "midweak"}).for_training(TrainingContext(labels=train_labels))
    logits = torch.tensor([[1.5, 0.0]])  # max p 0.817574 < 0.9: unsure under the set's radius
    batch_labels = torch.tensor([[0.6, 0.4]])  # this batch alone: radius 0.1 -> confident, dropped
    assert loss(logits, batch_labels, 0.5).item() > 0.0
    assert make_loss({"name": "window", "radius": "midweak"})(logits, batch_labels, 0.5).item() == 0.0


@pytest.mark.parametrize("spec, classes, batch, needle", [
    ({"name": "logconf", "buffer": 16}, 2, 32, "larger than the batch"),
    ({"name": "logconf", "buffer": 32}, 2, 32, "larger than the batch"),
    ({"name": "logconf", "buffer": 128}, 3, 32, "two classes only"),
    ({"name": "logconf", "balance_batch": True}, 4, 32, "two classes only"),
])
def test_options_that_cannot_mean_what_they_say_are_refused(spec, classes, batch, needle):
    from w2slab.errors import ConfigError

    with pytest.raises(ConfigError, match=needle):
        make_loss(spec).check_training(classes, batch)
    make_loss(spec).check_training(2, 8)  # two classes and a batch the buffer outlasts: accepted


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
    value = LogConfLoss(aux_weight=0.5, ramp_start=0.0, ramp_frac=0.1)(logits, weak, 0.5).item()
    assert value == pytest.approx(0.626928, abs=1e-5)


def test_logconf_at_step_zero_equals_xent():
    logits = torch.tensor([[2.0, 0.0], [0.0, 2.0]])
    weak = torch.tensor([[0.6, 0.4], [0.6, 0.4]])
    assert LogConfLoss()(logits, weak, 0.0).item() == pytest.approx(CrossEntropy()(logits, weak).item(), abs=1e-7)


def test_logconf_mid_warmup_uses_partial_weight():
    # step 0.05 of warm-up 0.1 -> weight 0.25: target row 1 = 0.75*[0.6,0.4] + 0.25*[1,0] = [0.7, 0.3]
    # row 2 = 0.75*[0.6,0.4] + 0.25*[0,1] = [0.45, 0.55]
    logits = torch.tensor([[2.0, 0.0], [0.0, 2.0]])
    weak = torch.tensor([[0.6, 0.4], [0.6, 0.4]])
    row1 = 0.7 * (LSE - 2) + 0.3 * LSE
    row2 = 0.45 * LSE + 0.55 * (LSE - 2)
    value = LogConfLoss(aux_weight=0.5, ramp_start=0.0, ramp_frac=0.1)(logits, weak, 0.05).item()
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


# --- per-example weights and the losses of issue 10 -------------------------------------------------
# logits [2, 0]: p = [0.880797, 0.119203], log p = [-0.126928, -2.126928] (LSE = 2.126928)
P0, P1 = math.exp(2) / (math.exp(2) + 1), 1 / (math.exp(2) + 1)


def test_weights_make_a_weighted_mean_of_per_example_losses():
    logits = torch.tensor([[2.0, 0.0], [0.0, 0.0]])
    labels = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    row1, row2 = LSE - 2, LN2
    assert make_loss("xent")(logits, labels, 0.0, weights=torch.tensor([3.0, 1.0])).item() == pytest.approx(
        (3 * row1 + row2) / 4, abs=1e-6)
    assert make_loss("xent")(logits, labels, 0.0, weights=torch.tensor([0.0, 1.0])).item() == pytest.approx(
        row2, abs=1e-6)  # weight 0 drops an example (filtering)
    for name in ("xent", "logconf", "product", "kl", "reverse_kl", "entropy", "window"):
        loss = make_loss(name)
        assert loss(logits, labels, 0.5, weights=torch.ones(2)).item() == pytest.approx(
            loss(logits, labels, 0.5).item(), abs=1e-6)


def test_kl_is_xent_minus_the_label_entropy():
    # 0.626928 (xent, see above) - H([0.75, 0.25]) = 0.626928 - 0.562335 = 0.064593
    value = make_loss("kl")(torch.tensor([[2.0, 0.0]]), torch.tensor([[0.75, 0.25]]), 0.0).item()
    entropy = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    assert value == pytest.approx(0.626928 - entropy, abs=1e-5)
    assert make_loss("kl")(torch.tensor([[2.0, 0.0]]), torch.tensor([[P0, P1]]), 0.0).item() == pytest.approx(
        0.0, abs=1e-6)  # zero at a perfect fit


def test_reverse_kl_exact_value():
    # KL(p || y) with p = [P0, P1], y = [0.5, 0.5]: P0 log(2 P0) + P1 log(2 P1) = ln 2 - H(p) = 0.693147 - 0.365334
    value = make_loss("reverse_kl")(torch.tensor([[2.0, 0.0]]), torch.tensor([[0.5, 0.5]]), 0.0).item()
    assert value == pytest.approx(LN2 - 0.365334, abs=1e-5)


def test_entropy_loss_mixes_in_the_soft_predictions():
    # after warm-up, w = 0.5: target = 0.5 * [1, 0] + 0.5 * [P0, P1] = [0.940399, 0.059601]
    # loss = 0.940399 * 0.126928 + 0.059601 * 2.126928 = 0.246130
    value = make_loss("entropy")(torch.tensor([[2.0, 0.0]]), torch.tensor([[1.0, 0.0]]), 0.5).item()
    t0 = 0.5 + 0.5 * P0
    assert value == pytest.approx(t0 * (LSE - 2) + (1 - t0) * LSE, abs=1e-6)
    assert value == pytest.approx(0.246130, abs=1e-5)


def test_window_only_counts_unsure_examples_and_divides_by_the_batch():
    # row 1: max p = 0.880797 >= 0.5 + 0.15 -> confident, dropped; row 2: uniform, unsure -> ln 2.  (0 + ln 2) / 2
    logits = torch.tensor([[2.0, 0.0], [0.0, 0.0]])
    labels = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    assert make_loss("window")(logits, labels, 0.0).item() == pytest.approx(LN2 / 2, abs=1e-6)
    # radius 0.4: both unsure (0.880797 < 0.9): (2.126928 + ln 2) / 2
    assert make_loss({"name": "window", "radius": 0.4})(logits, labels, 0.0).item() == pytest.approx(
        (LSE + LN2) / 2, abs=1e-6)
    # midweak: median weak confidence 1.0 -> radius 0.5 -> every example counts
    assert make_loss({"name": "window", "radius": "midweak"})(logits, labels, 0.0).item() == pytest.approx(
        (LSE + LN2) / 2, abs=1e-6)


def test_logconf_balance_batch_recentres_the_weak_labels():
    from w2slab.losses import balance_labels

    # log-odds of [0.8, 0.6] positives: [1.386294, 0.405465], mean 0.895880 -> sigmoid([0.490415, -0.490415])
    balanced = balance_labels(torch.tensor([[0.2, 0.8], [0.4, 0.6]]))
    assert balanced[:, 1].tolist() == pytest.approx([0.620204, 0.379796], abs=1e-5)
    assert balanced.sum(-1).tolist() == pytest.approx([1.0, 1.0])
    # at step 0 (weight 0) balanced logconf is xent against the balanced labels
    logits = torch.tensor([[2.0, 0.0], [0.0, 2.0]])
    weak = torch.tensor([[0.2, 0.8], [0.4, 0.6]])
    assert LogConfLoss(balance_batch=True)(logits, weak, 0.0).item() == pytest.approx(
        CrossEntropy()(logits, balanced).item(), abs=1e-6)


def test_bad_window_radius_is_a_config_error():
    from w2slab.errors import ConfigError

    with pytest.raises(ConfigError, match="radius"):
        make_loss({"name": "window", "radius": "wide"})


def test_adaptive_conf_exact_values():
    # logits [2, 0]: p = [P0, P1] = [0.880797, 0.119203]; student class 0.
    # teacher class 1 (labels [0.25, 0.75]): alpha = p_t / (p_s + p_t) = P1 / (P0 + P1) = 0.119203,
    # target = (1 - alpha) [0.25, 0.75] + alpha [1, 0] = [0.339402, 0.660598]
    # loss = 0.339402 * 0.126928 + 0.660598 * 2.126928 = 1.448125
    # at full ramp (after warm-up + ramp; the ramp itself is tested below: at step 0 the loss is xent)
    loss = make_loss("adaptive_conf")
    assert loss(torch.tensor([[2.0, 0.0]]), torch.tensor([[0.25, 0.75]]), 0.0).item() == pytest.approx(
        0.25 * (LSE - 2) + 0.75 * LSE, abs=1e-6)
    value = loss(torch.tensor([[2.0, 0.0]]), torch.tensor([[0.25, 0.75]]), 0.5).item()
    t0 = 0.25 + 0.75 * P1
    assert value == pytest.approx(t0 * (LSE - 2) + (1 - t0) * LSE, abs=1e-6)
    assert value == pytest.approx(1.448125, abs=1e-5)
    # student and teacher agree (labels [0.75, 0.25]): alpha = 1/2, target [0.875, 0.125]
    # loss = 0.875 * 0.126928 + 0.125 * 2.126928 = 0.376928
    agree = loss(torch.tensor([[2.0, 0.0]]), torch.tensor([[0.75, 0.25]]), 0.5).item()
    assert agree == pytest.approx(0.376928, abs=1e-5)


def test_logconf_rolling_buffer_thresholds_over_recent_predictions():
    # weight 0.5 from the start (ramp 0), weak labels 50/50, so the threshold is the median p(class 0).
    weak = torch.full((2, 2), 0.5)
    first, second = torch.tensor([[3.0, 0.0], [3.0, 0.0]]), torch.tensor([[0.0, 0.0], [0.5, 0.0]])
    buffered = make_loss({"name": "logconf", "ramp_frac": 0.0, "ramp_start": 0.0, "buffer": 4}).for_training(CONTEXT)
    per_batch = make_loss({"name": "logconf", "ramp_frac": 0.0, "ramp_start": 0.0})
    buffered(first, weak, 0.5)
    # second batch: p0 = [0.5, 0.622459]. Per batch the median is 0.561230: row 1 is hardened to class 1, row 2 to 0,
    # targets [0.25, 0.75] and [0.75, 0.25]: (ln 2 + 0.75 * 0.474077 + 0.25 * 0.974077) / 2 = 0.646112.
    # Buffer [0.952574, 0.952574, 0.5, 0.622459]: median 0.787516, both rows class 1, targets [0.25, 0.75]:
    # (ln 2 + 0.25 * 0.474077 + 0.75 * 0.974077) / 2 = 0.771112.
    lse = math.log(math.exp(0.5) + 1)
    assert per_batch(second, weak, 0.5).item() == pytest.approx(
        (LN2 + 0.75 * (lse - 0.5) + 0.25 * lse) / 2, abs=1e-6)
    assert per_batch(second, weak, 0.5).item() == pytest.approx(0.646112, abs=1e-5)
    value = buffered(second, weak, 0.5).item()
    assert value == pytest.approx((LN2 + 0.25 * (lse - 0.5) + 0.75 * lse) / 2, abs=1e-6)
    assert value == pytest.approx(0.771112, abs=1e-5)
    # a fresh training run starts with an empty buffer
    assert make_loss({"name": "logconf", "ramp_frac": 0.0, "ramp_start": 0.0, "buffer": 4}).for_training(CONTEXT)(
        second, weak, 0.5).item() == pytest.approx(0.646112, abs=1e-5)


def test_every_loss_accepts_per_example_weights():
    from w2slab.losses import LOSSES

    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    labels = torch.tensor([[0.7, 0.3], [0.2, 0.8], [0.5, 0.5]])
    # not the tests' plugins
    built_in = [name for name, cls in LOSSES.items() if cls.__module__.startswith("w2slab.losses.")]
    assert len(built_in) == 15  # the paper's, EleutherAI's and RAVEN's, gce, sce, elr, coteach, raven, edl, csl
    for name in built_in:
        loss = make_loss(name).for_training(CONTEXT)
        both = torch.cat([logits, logits], -1) if "twin" in loss.needs else logits  # co-teaching: two models' logits
        targets = torch.stack([labels, labels], 1) if "teachers" in loss.needs else labels  # two teachers' labels
        rows = [make_loss(name).for_training(CONTEXT).per_example(both, targets, 0.5)]
        weighted = loss(both, targets, 0.5, weights=torch.tensor([1.0, 0.0, 3.0])).item()
        assert weighted == pytest.approx(((rows[0][0] + 3 * rows[0][2]) / 4).item(), abs=1e-6), name


def test_gce_is_cross_entropy_as_q_vanishes_mae_at_one_and_pulls_less_on_unlikely_labels():
    """Generalized cross-entropy (Zhang & Sabuncu 2018) against its definition and its robustness property."""
    import torch

    from w2slab.losses import make_loss

    logits = torch.tensor([[2.0, -1.0], [0.5, 0.3], [-2.0, 2.0]])
    labels = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])  # the last label is one the model finds unlikely
    probs = torch.softmax(logits, -1)
    p_y = (probs * labels).sum(-1)
    near_ce = make_loss({"name": "gce", "q": 1e-4}).per_example(logits, labels, 0.0)
    assert torch.allclose(near_ce, -torch.log(p_y), atol=1e-3)
    assert torch.allclose(make_loss({"name": "gce", "q": 1.0}).per_example(logits, labels, 0.0), 1 - p_y, atol=1e-6)
    gce = make_loss({"name": "gce", "q": 0.7}).per_example(logits, labels, 0.0)
    assert torch.allclose(gce, (1 - p_y ** 0.7) / 0.7, atol=1e-6)

    def grad_norms(loss_name: str) -> torch.Tensor:
        x = logits.clone().requires_grad_(True)
        make_loss(loss_name).per_example(x, labels, 0.0).sum().backward()
        return x.grad.norm(dim=-1)

    ce, robust = grad_norms("xent"), grad_norms("gce")
    # relative to a label the model agrees with, the unlikely label pulls far less under GCE (ratio p_y^q)
    assert robust[2] / robust[0] < 0.25 * ce[2] / ce[0]
    with pytest.raises(Exception, match="q: must be in"):
        make_loss({"name": "gce", "q": 0.0})


def test_sce_is_alpha_ce_plus_beta_reverse_ce_with_log_zero_clipped():
    """Symmetric cross-entropy (Wang et al. 2019): on a one-hot label the reverse term is -A (1 - p_y)."""
    import torch

    from w2slab.losses import make_loss

    logits = torch.tensor([[1.0, 0.0, -1.0], [0.0, 3.0, 0.0]])
    labels = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    probs = torch.softmax(logits, -1)
    p_y = (probs * labels).sum(-1)
    sce = make_loss({"name": "sce", "alpha": 0.1, "beta": 1.0}).per_example(logits, labels, 0.0)
    expected = 0.1 * -torch.log(p_y) + 1.0 * 4.0 * (1 - p_y)
    assert torch.allclose(sce, expected, atol=1e-5)
    soft = torch.tensor([[0.7, 0.2, 0.1]])
    value = make_loss("sce").per_example(logits[:1], soft, 0.0)
    by_hand = 0.1 * -(soft * torch.log_softmax(logits[:1], -1)).sum() - (probs[:1] * torch.log(soft)).sum()
    assert torch.allclose(value, by_hand.reshape(1), atol=1e-5)


def test_elr_keeps_a_running_average_per_example_and_pulls_towards_it():
    """Early-learning regularization (Liu et al. 2020): memory t <- beta t + (1 - beta) p per example, loss
    CE + lam log(1 - <t, p>); its gradient pulls the student towards its own early predictions."""
    import torch

    from w2slab.losses import TrainingContext, make_loss

    loss = make_loss({"name": "elr", "lam": 3.0, "beta": 0.7}).for_training(TrainingContext())
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    labels = torch.tensor([[0.0, 1.0], [0.0, 1.0]])  # the first label disagrees with the student
    index = torch.tensor([3, 1])
    p = torch.softmax(logits, -1).clamp(1e-4, 1 - 1e-4)
    value = loss.per_example(logits, labels, 0.0, index)
    t = 0.3 * p
    expected = -(labels * torch.log_softmax(logits, -1)).sum(-1) + 3.0 * torch.log(1 - (t * p).sum(-1))
    assert torch.allclose(value, expected, atol=1e-5)
    loss.per_example(logits, labels, 0.0, index)
    assert torch.allclose(loss.memory(4, 2)[3], 0.7 * 0.3 * p[0] + 0.3 * p[0], atol=1e-6)  # the EMA, per row
    assert torch.equal(loss.memory(4, 2)[0], torch.zeros(2))  # rows never seen stay empty

    def grad_on_class_0(name: str) -> float:
        fresh = make_loss(name).for_training(TrainingContext())
        for _ in range(5):  # the memory learns the student's view: class 0 for the first example
            fresh.per_example(logits, labels, 0.0, index) if name == "elr" else None
        x = logits.clone().requires_grad_(True)
        out = fresh(x, labels, 0.0, indices=index) if name == "elr" else fresh(x, labels, 0.0)
        out.backward()
        return float(x.grad[0, 0])

    # cross-entropy pushes the first example's class-0 logit down hard; ELR pushes it down less (or up)
    assert grad_on_class_0("elr") < grad_on_class_0("xent")
    plain = make_loss("elr")
    assert torch.allclose(plain(logits, labels), make_loss("xent")(logits, labels))  # no indices: CE alone
    state = loss.state_dict()
    restored = make_loss("elr").for_training(TrainingContext())
    restored.load_state_dict(state)
    assert torch.equal(restored.memory(4, 2), loss.memory(4, 2))


def test_coteaching_trains_each_model_on_the_examples_the_other_finds_easy():
    """Han et al. 2018: with forget .25 (after the ramp) each model drops the batch's example its twin fits worst;
    before the ramp starts nothing is dropped; forget None reads the weak labels' expected error."""
    import numpy as np

    from w2slab.losses import TrainingContext, soft_cross_entropy

    labels = torch.eye(2)[[0, 1, 0, 1]]
    first = torch.tensor([[3.0, 0.0], [0.0, 3.0], [0.0, 2.0], [1.0, 0.0]])  # wrong on row 2 and row 3
    second = torch.tensor([[2.0, 0.0], [0.0, 2.0], [2.0, 0.0], [0.0, 0.0]])  # unsure on row 3
    loss = make_loss({"name": "coteach", "forget": 0.25, "ramp": 0.5})
    values = loss.per_example(torch.cat([first, second], -1), labels, step_frac=0.5)
    ce_first, ce_second = soft_cross_entropy(first, labels), soft_cross_entropy(second, labels)
    # the second model fits row 3 worst: the first skips it; the first fits row 2 worst: the second skips it
    expected = (ce_first * torch.tensor([1.0, 1, 1, 0]) + ce_second * torch.tensor([1.0, 1, 0, 1])) * 4 / 3
    assert torch.allclose(values, expected)
    at_start = loss.per_example(torch.cat([first, second], -1), labels, step_frac=0.0)
    assert torch.allclose(at_start, ce_first + ce_second)
    weak = np.array([[0.9, 0.1], [0.3, 0.7], [0.8, 0.2], [0.4, 0.6]])
    estimated = make_loss("coteach").for_training(TrainingContext(labels=weak))
    assert estimated.forget == pytest.approx(1 - weak.max(-1).mean())
    with pytest.raises(ValueError, match="two models"):
        loss.per_example(first, labels, 0.5)


def test_a_coteaching_student_is_two_models_whose_predictions_are_their_mixture():
    from w2slab.config import TrainConfig
    from w2slab.models.loading import ProbeHead, TwinModel
    from w2slab.train.batching import Collator
    from w2slab.train.trainer import train_model

    rng = np.random.default_rng(0)
    features = rng.standard_normal((2000, 6)).astype(np.float32)
    clean = (features[:, 0] > 0).astype(int)
    noisy = np.where(rng.random(2000) < 0.3, 1 - clean, clean)  # 30% of labels flipped at random
    examples = [{"features": f, "index": i, "target": np.eye(2, dtype=np.float32)[y]}
                for i, (f, y) in enumerate(zip(features, noisy, strict=True))]
    torch.manual_seed(0)
    model = TwinModel(ProbeHead(6, 2), ProbeHead(6, 2))
    torch.nn.init.normal_(model.second.head.weight, std=0.01)
    train_model(model, examples, Collator(), make_loss({"name": "coteach", "forget": 0.3}),
                TrainConfig(mode="probe", epochs=10, batch_size=50, precision="fp32"), 5e-2, seed=0)
    with torch.no_grad():
        mixed = model(features=torch.from_numpy(features))
        a, b = model.first(torch.from_numpy(features)), model.second(torch.from_numpy(features))
    assert mixed.shape == (2000, 2)
    assert torch.allclose(mixed.exp(), (a.softmax(-1) + b.softmax(-1)) / 2, atol=1e-5)
    assert (mixed.argmax(-1).numpy() == clean).mean() > 0.95  # the clean rule, through 30% noise


def test_a_coteaching_student_runs_in_an_experiment_full_fine_tuning(tiny_pair, tmp_path):
    import json

    from w2slab.cli import main

    root = tmp_path / "runs"
    assert main(["run", "--dataset", tiny_pair.data, "--weak", tiny_pair.weak, "--strong", tiny_pair.strong,
                 "--n-train", "96", "--n-test", "48", "--max-ctx", "16", "--losses", "xent,coteach", "--weak.mode",
                 "probe", "--strong.mode", "full", "--epochs", "2", "--run-root", str(root), "--name", "co"]) == 0
    metrics = json.loads((root / "co" / "metrics.json").read_text())
    assert set(metrics["students"]) == {"xent", "coteach"}
    with np.load(root / "co" / "predictions" / "student_coteach_test.npz") as saved:
        assert saved["probs"].shape == (48, 2) and np.allclose(saved["probs"].sum(-1), 1.0, atol=1e-5)


def _teacher_run(loss_spec, labels, features, epochs=10):
    from w2slab.config import TrainConfig
    from w2slab.models.loading import ProbeHead
    from w2slab.train.batching import Collator
    from w2slab.train.trainer import train_model

    examples = [{"features": f, "index": i, "target": t} for i, (f, t) in enumerate(zip(features, labels, strict=True))]
    torch.manual_seed(0)
    model = ProbeHead(features.shape[1], labels.shape[-1])
    loss = make_loss(loss_spec).for_training(__import__("w2slab.losses", fromlist=["TrainingContext"])
                                             .TrainingContext())
    train_model(model, examples, Collator(), loss, TrainConfig(mode="probe", epochs=epochs, batch_size=50,
                                                               precision="fp32"), 5e-2, seed=0)
    with torch.no_grad():
        return model(torch.from_numpy(features)).argmax(-1).numpy(), loss


def _two_teachers(n=2000, seed=0):
    """A right teacher (the rule x0 > 0) and one that is right on half the rows only (a coin)."""
    rng = np.random.default_rng(seed)
    features = rng.standard_normal((n, 6)).astype(np.float32)
    truth = (features[:, 0] > 0).astype(int)
    coin = rng.integers(0, 2, n)
    labels = np.stack([np.eye(2)[truth] * 0.8 + 0.1, np.eye(2)[coin] * 0.8 + 0.1], axis=1).astype(np.float32)
    return features, truth, labels


def test_raven_learns_to_weight_the_teacher_the_student_can_fit():
    """RAVEN's teacher weights: uniform through the warm-up, then SGD on the same loss moves them to the right
    teacher, whose labels the student fits, and away from the coin."""
    features, truth, labels = _two_teachers()
    predicted, loss = _teacher_run({"name": "raven", "lr_weights": 0.05, "warmup": 0.3}, labels, features)
    weights = loss.report()["teacher_weights"]
    assert weights[0] > 0.6 > 0.4 > weights[1], weights
    assert (predicted == truth).mean() > 0.95
    state = loss.state_dict()  # saved with checkpoints: a resumed run continues with these weights
    fresh = make_loss("raven").for_training(TrainingContext())
    fresh.load_state_dict(state)
    assert fresh.report()["teacher_weights"] == weights


def test_the_evidential_loss_is_its_definition_and_follows_the_teachers():
    import math

    from w2slab.losses import dirichlet_kl_to_uniform, evidential_loss

    logits = torch.tensor([[2.0, -1.0, 0.5]])
    target = torch.tensor([[1.0, 0.0, 0.0]])
    alpha = torch.nn.functional.softplus(logits) + 1  # evidence + 1
    fit = math.log(alpha.sum().item()) - math.log(alpha[0, 0].item())
    assert evidential_loss(logits, target, 0.0).item() == pytest.approx(fit, abs=1e-6)
    assert dirichlet_kl_to_uniform(torch.ones(1, 3)).item() == pytest.approx(0.0, abs=1e-6)
    tilde = target + (1 - target) * alpha  # only the wrong classes' evidence is penalised
    assert evidential_loss(logits, target, 1.0).item() == pytest.approx(
        fit + dirichlet_kl_to_uniform(tilde).item(), abs=1e-6)
    features, truth, labels = _two_teachers()
    both_right = np.stack([labels[:, 0], labels[:, 0]], axis=1)
    predicted, _ = _teacher_run({"name": "edl", "gamma": 0.3}, both_right, features)
    assert (predicted == truth).mean() > 0.95


def test_csl_assigns_each_example_the_teacher_the_student_agrees_with_and_drops_inconsistent_ones():
    loss = make_loss({"name": "csl", "warmup": 0.2})
    logits = torch.tensor([[2.0, 0.0], [0.0, 2.0], [2.0, 0.0]])
    labels = torch.tensor([[[0.9, 0.1], [0.2, 0.8]],    # the student says 0: teacher 0
                           [[0.7, 0.3], [0.1, 0.9]],    # the student says 1: teacher 1
                           [[0.3, 0.7], [0.1, 0.9]]])   # both teachers say 1, the student 0: dropped
    chosen, consistent = loss.assign(logits, labels)
    assert torch.allclose(chosen, torch.tensor([[0.9, 0.1], [0.1, 0.9], [0.3, 0.7]]))
    assert consistent.tolist() == [True, True, False]
    values = loss.per_example(logits, labels, 0.5)
    assert values[2].item() == 0.0 and values[0].item() > 0
    from w2slab.losses import soft_cross_entropy

    assert torch.allclose(loss.per_example(logits, labels, 0.1), soft_cross_entropy(logits, labels.mean(1)))
    with pytest.raises(ValueError, match="several teachers"):
        loss.per_example(logits, labels.mean(1), 0.5)


def test_the_entropy_loss_gradient_is_one_minus_w_times_cross_entropys():
    """The docstring's claim, checked: with the student's predictions detached in the target, the gradient of
    ``entropy`` is exactly ``(1 - w)`` times ``xent``'s (it does not lower the student's entropy)."""
    torch.manual_seed(0)
    labels = torch.softmax(torch.randn(6, 3), -1)
    for step_frac in (0.0, 0.15, 0.5):
        loss = make_loss("entropy").for_training(CONTEXT)
        w = loss.loss.weight(step_frac)
        logits = torch.randn(6, 3, requires_grad=True)
        (entropy_grad,) = torch.autograd.grad(loss(logits, labels, step_frac), logits)
        (xent_grad,) = torch.autograd.grad(CrossEntropy()(logits, labels, step_frac), logits)
        assert torch.allclose(entropy_grad, (1.0 - w) * xent_grad, atol=1e-6), step_frac
    assert w == pytest.approx(0.5)


def test_edl_fits_each_teachers_argmax_as_ravens_evidential_loss_does():
    """RAVEN's evidential loss takes each teacher's argmax as a one-hot target: the loss is the definition with
    one-hot targets, and its KL term never pushes the evidence for the teacher's own class down (with the soft
    target, the old behaviour and ``soft: true``, it does)."""
    from w2slab.losses import evidential_loss

    logits = torch.tensor([[1.5, -0.5, 0.3], [0.2, 0.9, -1.0]])
    labels = torch.tensor([[[0.7, 0.2, 0.1], [0.3, 0.6, 0.1]],
                           [[0.2, 0.5, 0.3], [0.1, 0.3, 0.6]]])
    hard = torch.nn.functional.one_hot(labels.argmax(-1), 3).float()
    loss = make_loss({"name": "edl", "gamma": 0.0})
    assert loss.soft is False
    for step_frac in (0.0, 0.4, 1.0):
        expected = evidential_loss(logits, hard[:, 0], step_frac) + evidential_loss(logits, hard[:, 1], step_frac)
        assert torch.allclose(loss.per_example(logits, labels, step_frac), expected, atol=1e-6)
    soft = make_loss({"name": "edl", "gamma": 0.0, "soft": True})
    assert torch.allclose(soft.per_example(logits, labels, 1.0),
                          evidential_loss(logits, labels[:, 0], 1.0) + evidential_loss(logits, labels[:, 1], 1.0))

    def kl_gradient(spec: dict) -> torch.Tensor:
        one_teacher = labels[:1, :1]  # a teacher that says class 0 with .7
        x = logits[:1].clone().requires_grad_(True)
        term = make_loss(spec).per_example(x, one_teacher, 1.0) - make_loss(spec).per_example(x, one_teacher, 0.0)
        (gradient,) = torch.autograd.grad(term.sum(), x)
        return gradient[0, 0]  # w.r.t. the teacher's own class's logit (its evidence)

    assert kl_gradient({"name": "edl", "gamma": 0.0}).item() == pytest.approx(0.0, abs=1e-7)
    assert kl_gradient({"name": "edl", "gamma": 0.0, "soft": True}).item() > 1e-3  # descent lowers its evidence


def test_csl_assigns_the_teacher_with_the_least_kl_from_the_student():
    """The reference's E-step: argmin_m KL(student || teacher_m). Cross-entropy of the teacher under the student
    prefers a sharper teacher of the same class; KL prefers the teacher that matches the student."""
    from w2slab.losses import soft_cross_entropy

    logits = torch.log(torch.tensor([[0.6, 0.4]]))
    labels = torch.tensor([[[0.6, 0.4], [0.99, 0.01]]])
    cross_entropy = soft_cross_entropy(logits[:, None, :].expand(-1, 2, -1), labels)
    assert cross_entropy.argmin().item() == 1  # what the old assignment chose
    chosen, consistent = make_loss("csl").assign(logits, labels)
    assert torch.allclose(chosen, labels[:, 0]) and consistent.tolist() == [True]


def test_raven_warms_up_over_the_reference_configs_fifth_of_training():
    assert make_loss("raven").warmup == pytest.approx(0.2)
    assert "warm-up .2" in make_loss("raven").source


def test_coteaching_predicts_with_one_network_unless_asked_for_the_mean():
    from w2slab.errors import ConfigError

    assert make_loss("coteach").predict == "first"
    assert make_loss({"name": "coteach", "predict": "mean"}).predict == "mean"
    with pytest.raises(ConfigError, match="predict"):
        make_loss({"name": "coteach", "predict": "both"})
    # what the role model reads, declared on the base: every loss and its training run answer it
    assert make_loss({"name": "coteach", "predict": "mean"}).twin_prediction == "mean"
    assert make_loss("coteach").twin_prediction == make_loss("xent").twin_prediction == "first"


def test_when_a_loss_settles_is_read_from_the_loss_its_run_or_zero_for_a_plain_function():
    from w2slab.losses import TrainingContext, settled_of

    raven = make_loss({"name": "raven", "warmup": 0.3})
    run = raven.for_training(TrainingContext())  # a LossRun: the stateful loss as one training uses it
    assert settled_of(raven) == settled_of(run) == 0.3
    assert settled_of(make_loss("coteach")) == 0.5 and settled_of(make_loss("xent")) == 0.0
    assert settled_of(lambda logits, labels, step_frac: logits.sum()) == 0.0


def test_fixed_weight_cross_entropy_keeps_the_boosting_distribution_across_batches():
    """Boosting's weights are one distribution over the training set: a batch of low-weight rows must count less
    than one of high-weight rows (the renormalised weighted mean makes them count the same)."""
    from w2slab.losses import FixedWeightCrossEntropy

    logits, labels = torch.zeros(2, 2), torch.eye(2)
    low, high = torch.tensor([0.5, 0.5]), torch.tensor([2.0, 2.0])
    plain = make_loss("xent")
    assert plain(logits, labels, 0.0, low).item() == pytest.approx(plain(logits, labels, 0.0, high).item())
    fixed = FixedWeightCrossEntropy()
    assert fixed(logits, labels, 0.0, low).item() == pytest.approx(0.5 * LN2)
    assert fixed(logits, labels, 0.0, high).item() == pytest.approx(2.0 * LN2)
    assert fixed(logits, labels, 0.0).item() == pytest.approx(LN2) and fixed.name == "xent"


# --- what a loss needs, declared once on its class --------------------------------------------------------------


def test_every_loss_declares_its_needs_from_the_vocabulary():
    from w2slab.losses import LOSSES, NEEDS

    declared = {name: cls.needs for name, cls in LOSSES.items()}
    assert all(isinstance(needs, frozenset) and needs <= NEEDS.keys() for needs in declared.values()), declared
    assert {name: sorted(needs) for name, needs in declared.items() if needs} == {
        "elr": ["indices"], "coteach": ["twin"], "raven": ["teachers"], "edl": ["teachers"], "csl": ["teachers"]}


def test_a_need_outside_the_vocabulary_or_an_old_flag_is_refused_when_the_class_is_defined():
    from w2slab.errors import ConfigError
    from w2slab.losses import Loss

    with pytest.raises(ConfigError, match="needs: a frozenset of indices, teachers, twin"):
        class Misspelt(Loss):
            needs = frozenset({"indexes"})
    with pytest.raises(ConfigError, match="uses_indices: a loss declares what it needs in one place"):
        class Flagged(Loss):
            uses_indices = True


def test_the_trainer_gives_example_indices_to_the_losses_that_need_them_and_to_no_other():
    from w2slab.config import TrainConfig
    from w2slab.models.loading import ProbeHead
    from w2slab.train.batching import Collator
    from w2slab.train.trainer import train_model

    features = np.random.default_rng(0).standard_normal((40, 3)).astype(np.float32)
    examples = [{"features": f, "index": i, "target": np.eye(2, dtype=np.float32)[i % 2]}
                for i, f in enumerate(features)]

    class Recording:
        def __init__(self, needs):
            self.needs, self.seen = needs, []

        def __call__(self, logits, labels, step_frac, **options):
            self.seen.append(options.get("indices"))
            return make_loss("xent")(logits, labels, step_frac)

    cfg = TrainConfig(mode="probe", epochs=1, batch_size=10, precision="fp32")
    plain, memory = Recording(frozenset()), Recording(frozenset({"indices"}))
    for loss in (plain, memory):
        train_model(ProbeHead(3, 2), examples, Collator(), loss, cfg, 1e-2, seed=0)
    assert len(plain.seen) == 4 and all(indices is None for indices in plain.seen)
    assert sorted(torch.cat(memory.seen).tolist()) == list(range(40))  # each example's own row, once an epoch


def test_a_training_run_keeps_its_state_and_the_loss_it_was_built_from_never_changes():
    """ELR's memory, RAVEN's weights and logconf's buffer live in the run built for one training (LossRun), so the
    frozen loss, which is also the configuration, is the same after any number of runs, and two runs share nothing."""
    from w2slab.losses import LOSSES, LossRun

    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 1.0]], requires_grad=True)
    labels = torch.tensor([[0.7, 0.3], [0.2, 0.8], [0.5, 0.5]])
    index = torch.tensor([0, 2, 5])
    specs = {"logconf": {"name": "logconf", "buffer": 8}, "window": {"name": "window", "radius": "midweak"}}
    context = TrainingContext(warmup_frac=0.1, seed=3, labels=labels.numpy())
    for name in [name for name, cls in LOSSES.items() if cls.__module__.startswith("w2slab.losses.")]:
        loss = make_loss(specs.get(name, name))
        before = dict(vars(loss))
        run = loss.for_training(context)
        assert run.needs == loss.needs
        both = torch.cat([logits, logits], -1) if "twin" in loss.needs else logits
        targets = torch.stack([labels, labels], 1) if "teachers" in loss.needs else labels
        for step_frac in (0.1, 0.5, 0.9):
            run(both, targets, step_frac, indices=index if "indices" in loss.needs else None).backward()
        assert vars(loss) == before and loss == make_loss(specs.get(name, name)), name
        assert isinstance(run, LossRun) == (name in ("logconf", "entropy", "adaptive_conf", "window", "elr", "raven"))
    first, second = make_loss("elr").for_training(context), make_loss("elr").for_training(context)
    first(logits, labels, 0.5, indices=index)
    assert second.memory(6, 2).abs().sum() == 0  # a second run starts with an empty memory
    with pytest.raises(TypeError, match="training run"):
        make_loss("elr")(logits, labels, 0.5, indices=index)  # the frozen loss holds no memory to address
