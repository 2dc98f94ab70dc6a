"""Answers for solutions/02_deriving_the_losses.ipynb."""

EXERCISES = {
    "Exercise 1": {
        "wrong": [
            {"why": "the literal formula the exercise warns against: sigmoid(-200) is 0 in float32, log(0) = -inf",
             "answer": "return -torch.log(torch.sigmoid(fake_logits)).mean()",
             "hint": ("not finite", "float32", "softplus")},
            {"why": "log1p(exp(-l)) is softplus written out: exp(1000) overflows in float64",
             "answer": "return torch.log1p(torch.exp(-fake_logits)).mean()",
             "hint": ("overflows", "softplus")},
            {"why": "a clamp keeps it finite but changes the value (and kills the gradient) at the large logits",
             "answer": "return -torch.log(torch.sigmoid(fake_logits).clamp_min(1e-12)).mean()",
             "hint": ("differs from the reference",)},
            {"why": "the softplus of the wrong sign: -log(1 - D), the discriminator's term for fakes",
             "answer": "return F.softplus(fake_logits).mean()",
             "hint": ("sign",)},
            {"why": "the sum over the batch instead of the mean",
             "answer": "return F.softplus(-fake_logits).sum()",
             "hint": ("the mean",)},
            {"why": "detached: the value is right, but no gradient reaches the generator",
             "answer": "return F.softplus(-fake_logits).mean().detach()",
             "hint": ("autograd",)},
        ],
        "right": [
            "return -F.logsigmoid(fake_logits).mean()",
            "l = fake_logits\nreturn (torch.clamp(l, min=0) - l + torch.log1p(torch.exp(-l.abs()))).mean()",
            "return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))",
        ],
    },
    "Exercise 2": {
        "wrong": [
            {"why": "D = 0.01 read as a logit for every loss: the least-squares push at l = log(0.01/0.99)",
             "answer": "D_fake = 0.01\nlogit = math.log(D_fake / (1 - D_fake))\n"
                       "push = {'saturating': -D_fake, 'nonsaturating': -(1 - D_fake), 'lsgan': logit - 1, "
                       "'hinge': -1.0, 'wgan': -1.0}",
             "hint": ("lsgan", "not the derivative")},
            {"why": "the two cross-entropy pushes swapped",
             "answer": "push = {'saturating': -0.99, 'nonsaturating': -0.01, 'lsgan': -1.0, 'hinge': -1.0, "
                       "'wgan': -1.0}",
             "hint": ("saturating", "not the derivative")},
            {"why": "the least-squares loss without its factor 1/2",
             "answer": "push = {'saturating': -0.01, 'nonsaturating': -0.99, 'lsgan': 2 * (0.0 - 1.0), "
                       "'hinge': -1.0, 'wgan': -1.0}",
             "hint": ("lsgan",)},
            {"why": "the pushes of the critic-style losses with the sign of the loss, not of its derivative",
             "answer": "push = {'saturating': -0.01, 'nonsaturating': -0.99, 'lsgan': -1.0, 'hinge': 1.0, "
                       "'wgan': 1.0}",
             "hint": ("hinge", "sign")},
            {"why": "the hinge push read as zero beyond the margin (the discriminator's hinge, not the generator's)",
             "answer": "push = {'saturating': -0.01, 'nonsaturating': -0.99, 'lsgan': -1.0, 'hinge': 0.0, "
                       "'wgan': -1.0}",
             "hint": ("hinge", "not the derivative")},
            {"why": "tensors instead of plain floats",
             "answer": "push = {k: torch.tensor(v) for k, v in {'saturating': -0.01, 'nonsaturating': -0.99, "
                       "'lsgan': -1.0, 'hinge': -1.0, 'wgan': -1.0}.items()}",
             "hint": ("plain python float",)},
        ],
        "right": [
            "d = 1 / (1 + math.exp(-math.log(0.01 / 0.99)))   # sigma of the rejection logit: 0.01\n"
            "push = dict(saturating=-d, nonsaturating=d - 1, lsgan=0.0 - 1, hinge=-1.0, wgan=float(-1))",
        ],
    },
}
