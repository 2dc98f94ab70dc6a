"""Answers for solutions/09_applications_and_responsibility.ipynb."""

_SPLIT_HEAD = """g = torch.Generator().manual_seed(seed)
n = min(len(real), len(fake))
h = round(test_fraction * n)
r = real[torch.randperm(len(real), generator=g)[:n]]
f = fake[torch.randperm(len(fake), generator=g)[:n]]
"""

EXERCISES = {
    "Exercise 1": {
        "wrong": [
            {"why": "no shuffle: real images first, generated after",
             "answer": _SPLIT_HEAD + "return {'train_x': torch.cat([r[h:], f[h:]]),\n"
                       "        'train_y': torch.cat([torch.zeros(n - h), torch.ones(n - h)]),\n"
                       "        'test_x': torch.cat([r[:h], f[:h]]),\n"
                       "        'test_y': torch.cat([torch.zeros(h), torch.ones(h)])}",
             "hint": ("shuffle each part", "blocks")},
            {"why": "labels swapped: 1 for real",
             "answer": _SPLIT_HEAD + "out = {}\nfor part, sl in (('train', slice(h, n)), ('test', slice(0, h))):\n"
                       "    x = torch.cat([r[sl], f[sl]])\n"
                       "    y = torch.cat([torch.ones(len(r[sl])), torch.zeros(len(f[sl]))])\n"
                       "    o = torch.randperm(len(x), generator=g)\n"
                       "    out[part + '_x'], out[part + '_y'] = x[o], y[o]\nreturn out",
             "hint": ("labels do not match", "1 must mean generated")},
            {"why": "test images drawn with a second permutation: some are also in the training part",
             "answer": _SPLIT_HEAD + "out = {}\n"
                       "for part, keep in (('train', lambda t: t[h:]), ('test', lambda t: t[:h])):\n"
                       "    rr = keep(r[torch.randperm(n, generator=g)])\n"
                       "    ff = keep(f[torch.randperm(n, generator=g)])\n"
                       "    x = torch.cat([rr, ff])\n"
                       "    y = torch.cat([torch.zeros(len(rr)), torch.ones(len(ff))])\n"
                       "    o = torch.randperm(len(x), generator=g)\n"
                       "    out[part + '_x'], out[part + '_y'] = x[o], y[o]\nreturn out",
             "hint": ("in both parts",)},
            {"why": "the held-out count taken from all images together, not per kind",
             "answer": _SPLIT_HEAD.replace("h = round(test_fraction * n)", "h = round(test_fraction * n / 2)")
                       + "out = {}\nfor part, sl in (('train', slice(h, n)), ('test', slice(0, h))):\n"
                       "    x = torch.cat([r[sl], f[sl]])\n"
                       "    y = torch.cat([torch.zeros(len(r[sl])), torch.ones(len(f[sl]))])\n"
                       "    o = torch.randperm(len(x), generator=g)\n"
                       "    out[part + '_x'], out[part + '_y'] = x[o], y[o]\nreturn out",
             "hint": ("expect 40 test",)},
            {"why": "only the training part shuffled",
             "answer": _SPLIT_HEAD + "tx = torch.cat([r[h:], f[h:]])\n"
                       "ty = torch.cat([torch.zeros(n - h), torch.ones(n - h)])\n"
                       "o = torch.randperm(len(tx), generator=g)\n"
                       "return {'train_x': tx[o], 'train_y': ty[o], 'test_x': torch.cat([r[:h], f[:h]]),\n"
                       "        'test_y': torch.cat([torch.zeros(h), torch.ones(h)])}",
             "hint": ("shuffle each part", "test")},
        ],
        "right": [
            "gen = torch.Generator()\ngen.manual_seed(seed)\nn = min(real.shape[0], fake.shape[0])\n"
            "n_test = int(round(n * test_fraction))\n"
            "idx_r = torch.randperm(real.shape[0], generator=gen)[:n]\n"
            "idx_f = torch.randperm(fake.shape[0], generator=gen)[:n]\n"
            "def part(ir, jf):\n"
            "    x = torch.cat([real[ir], fake[jf]])\n"
            "    y = torch.tensor([0.0] * len(ir) + [1.0] * len(jf))\n"
            "    p = torch.randperm(len(y), generator=gen)\n"
            "    return x[p], y[p]\n"
            "test_x, test_y = part(idx_r[:n_test], idx_f[:n_test])\n"
            "train_x, train_y = part(idx_r[n_test:], idx_f[n_test:])\n"
            "return dict(train_x=train_x, train_y=train_y, test_x=test_x, test_y=test_y)",
        ],
    },
    "Exercise 2": {
        "wrong": [
            {"why": "counts, not shares",
             "answer": ["return torch.bincount(labels, minlength=num_classes).double()",
                        "return float(0.5 * (torch.as_tensor(p) - torch.as_tensor(q)).abs().sum())"],
             "hint": ("sum to 1",)},
            {"why": "minlength forgotten: fewer than num_classes shares when the top classes are absent",
             "answer": ["return torch.bincount(labels).double() / len(labels)",
                        "return float(0.5 * (torch.as_tensor(p) - torch.as_tensor(q)).abs().sum())"],
             "hint": ("minlength",)},
            {"why": "total variation without the factor 1/2",
             "answer": ["return torch.bincount(labels, minlength=num_classes).double() / len(labels)",
                        "return float((torch.as_tensor(p) - torch.as_tensor(q)).abs().sum())"],
             "hint": ("total variation 1", "half")},
            {"why": "the largest difference of one class, not the sum",
             "answer": ["return torch.bincount(labels, minlength=num_classes).double() / len(labels)",
                        "return float((torch.as_tensor(p) - torch.as_tensor(q)).abs().max())"],
             "hint": ("tv_from_uniform",)},
        ],
        "right": [
            ["one_hot = labels.view(-1, 1) == torch.arange(num_classes).view(1, -1)\n"
             "return one_hot.float().mean(dim=0)",
             "import numpy as np\n"
             "return 0.5 * float(np.abs(np.asarray(p, dtype=float) - np.asarray(q, dtype=float)).sum())"],
        ],
    },
}
