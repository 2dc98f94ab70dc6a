"""Answers for solutions/10_gans_and_diffusion.ipynb."""

EXERCISES = {
    "Exercise 1": {
        "wrong": [
            {"why": "the weights without square roots: x_t = abar x0 + (1 - abar) noise",
             "answer": "abar = schedule.alpha_bars.float()[t].view(-1, 1, 1, 1)\n"
                       "x_t = abar * x0 + (1 - abar) * noise\n"
                       "return ((net(x_t, t) - noise) ** 2).mean()",
             "hint": ("recovers the noise", "sqrt(abar_t)")},
            {"why": "one step for the whole batch (the first image's t)",
             "answer": "a = float(schedule.alpha_bars[t[0]])\n"
                       "x_t = a ** 0.5 * x0 + (1 - a) ** 0.5 * noise\n"
                       "return ((net(x_t, t) - noise) ** 2).mean()",
             "hint": ("its own t",)},
            {"why": "the network asked to predict the clean image",
             "answer": "abar = schedule.alpha_bars.float()[t].view(-1, 1, 1, 1)\n"
                       "x_t = abar.sqrt() * x0 + (1 - abar).sqrt() * noise\n"
                       "return ((net(x_t, t) - x0) ** 2).mean()",
             "hint": ("target is the noise",)},
            {"why": "a sum instead of a mean",
             "answer": "abar = schedule.alpha_bars.float()[t].view(-1, 1, 1, 1)\n"
                       "x_t = abar.sqrt() * x0 + (1 - abar).sqrt() * noise\n"
                       "return ((net(x_t, t) - noise) ** 2).sum()",
             "hint": ("a mean, not a sum",)},
            {"why": "noise and signal weights swapped",
             "answer": "abar = schedule.alpha_bars.float()[t].view(-1, 1, 1, 1)\n"
                       "x_t = (1 - abar).sqrt() * x0 + abar.sqrt() * noise\n"
                       "return ((net(x_t, t) - noise) ** 2).mean()",
             "hint": ("recovers the noise",)},
            {"why": "the loss turned into a Python float: nothing to train",
             "answer": "abar = schedule.alpha_bars.float()[t].view(-1, 1, 1, 1)\n"
                       "x_t = abar.sqrt() * x0 + (1 - abar).sqrt() * noise\n"
                       "return torch.tensor(((net(x_t, t) - noise) ** 2).mean().item())",
             "hint": ("connected to the network",)},
        ],
        "right": [
            "a = schedule.alpha_bars[t].to(x0.dtype)[:, None, None, None]\n"
            "x_t = torch.sqrt(a) * x0 + torch.sqrt(1 - a) * noise\n"
            "return torch.nn.functional.mse_loss(net(x_t, t), noise)",
            "return diffusion.diffusion_loss(net, schedule, x0, t, noise)",
        ],
    },
}
