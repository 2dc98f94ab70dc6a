"""Answers for solutions/08_conditional_gans.ipynb.

Exercise 1 has three answer blocks: the body of ``one_hot_concat``, of ``CondMLPGenerator.__init__`` and of its
``forward``. Exercise 2 has one: the body of ``without_class``; Exercise 3 one: the body of
``my_truncated_noise``.
"""

_INIT = ("self.net = nn.Sequential(nn.Linear(latent_dim + num_classes, hidden), nn.ReLU(),\n"
         "                         nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, out_dim))")
_FORWARD = "return self.net(one_hot_concat(z, y, self.num_classes))"
_CONCAT = "return torch.cat([z, F.one_hot(y, num_classes).to(z.dtype)], dim=1)"

EXERCISES = {
    "Exercise 1": {
        "wrong": [
            {"why": "the one-hot code first, then z",
             "answer": ["return torch.cat([F.one_hot(y, num_classes).to(z.dtype), z], dim=1)", _INIT, _FORWARD],
             "hint": ("first latent_dim columns",)},
            {"why": "the label as one number, not a one-hot code",
             "answer": ["return torch.cat([z, y[:, None].to(z.dtype)], dim=1)", _INIT, _FORWARD],
             "hint": ("(5, 18)",)},
            {"why": "F.one_hot without num_classes: the width follows the largest label of the batch",
             "answer": ["return torch.cat([z, F.one_hot(y).to(z.dtype)], dim=1)", _INIT, _FORWARD],
             "hint": ("num_classes", "F.one_hot")},
            {"why": "the first layer sized for z alone (then a shape error at the first call)",
             "answer": [_CONCAT,
                        "self.net = nn.Sequential(nn.Linear(latent_dim, hidden), nn.ReLU(),\n"
                        "                         nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, out_dim))",
                        _FORWARD],
             "hint": ("latent_dim + num_classes",)},
            {"why": "no ReLU between the layers: the generator is an affine map of [z; one-hot]",
             "answer": [_CONCAT,
                        "self.net = nn.Sequential(nn.Linear(latent_dim + num_classes, hidden),\n"
                        "                         nn.Linear(hidden, hidden), nn.Linear(hidden, out_dim))",
                        _FORWARD],
             "hint": ("ReLU",)},
            {"why": "the label ignored in forward (zeros instead of its code)",
             "answer": [_CONCAT, _INIT,
                        "return self.net(torch.cat([z, z.new_zeros(len(z), self.num_classes)], dim=1))"],
             "hint": ("change when the label changes",)},
        ],
        "right": [
            ["code = torch.zeros(y.shape[0], num_classes, dtype=z.dtype).scatter_(1, y.view(-1, 1), 1.0)\n"
             "return torch.cat((z, code), 1)",
             "self.fc1 = nn.Linear(latent_dim + num_classes, hidden)\n"
             "self.fc2 = nn.Linear(hidden, hidden)\n"
             "self.fc3 = nn.Linear(hidden, out_dim)",
             "h = torch.relu(self.fc1(one_hot_concat(z, y, self.num_classes)))\n"
             "return self.fc3(torch.relu(self.fc2(h)))"],
            ["return torch.hstack([z, torch.eye(num_classes, dtype=z.dtype)[y]])",
             "layers = [nn.Linear(latent_dim + num_classes, hidden), nn.ReLU(inplace=True),\n"
             "          nn.Linear(hidden, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, out_dim)]\n"
             "self.net = nn.Sequential(*layers)",
             "x = one_hot_concat(z, y, self.num_classes)\nreturn self.net(x)"],
        ],
    },
    "Exercise 2": {
        "wrong": [
            {"why": "num_classes dropped: the model would lose the label of the missing class",
             "answer": "keep = ds.y != k\nreturn data.Dataset(ds.name, ds.x[keep], ds.y[keep], ds.kind)",
             "hint": ("num_classes",)},
            {"why": "the wrong class removed: every class but k",
             "answer": "keep = ds.y == k\n"
                       "return data.Dataset(ds.name, ds.x[keep], ds.y[keep], ds.kind, ds.num_classes)",
             "hint": ("class 7",)},
            {"why": "an off-by-one: class k + 1 removed",
             "answer": "keep = ds.y != k + 1\n"
                       "return data.Dataset(ds.name, ds.x[keep], ds.y[keep], ds.kind, ds.num_classes)",
             "hint": ("class 7",)},
            {"why": "a tensor of images returned, not a Dataset",
             "answer": "return ds.x[ds.y != k]",
             "hint": ("data.Dataset",)},
            {"why": "the labels above k shifted down: the other classes change names",
             "answer": "keep = ds.y != k\ny = ds.y[keep]\ny = torch.where(y > k, y - 1, y)\n"
                       "return data.Dataset(ds.name, ds.x[keep], y, ds.kind, ds.num_classes)",
             "hint": ("labels", "unchanged")},
            {"why": "kind left at its default, 'points'",
             "answer": "keep = ds.y != k\n"
                       "return data.Dataset(ds.name, ds.x[keep], ds.y[keep], num_classes=ds.num_classes)",
             "hint": ("kind",)},
        ],
        "right": [
            "import dataclasses\nmask = ds.y.ne(k)\nreturn dataclasses.replace(ds, x=ds.x[mask], y=ds.y[mask])",
            # grouped by class: another order, the same samples with the same labels
            "classes = [c for c in range(ds.num_classes) if c != k]\n"
            "x = torch.cat([ds.x[ds.y == c] for c in classes])\n"
            "y = torch.cat([ds.y[ds.y == c] for c in classes])\n"
            "return data.Dataset(ds.name, x, y, kind='images', num_classes=ds.num_classes)",
        ],
    },
    "Exercise 3": {
        "wrong": [
            {"why": "values clipped to +-psi instead of drawn again",
             "answer": "return torch.randn(n, dim, generator=generator).clamp(-psi, psi)",
             "hint": ("drawn again", "clipped")},
            {"why": "rescaled so that the largest value is psi: the shape of the normal is lost",
             "answer": "z = torch.randn(n, dim, generator=generator)\nreturn z * psi / z.abs().max()",
             "hint": ("standard deviation", "0.540")},
            {"why": "uniform values in [-psi, psi]",
             "answer": "return (2 * torch.rand(n, dim, generator=generator) - 1) * psi",
             "hint": ("standard deviation", "standard normal")},
            {"why": "rows with a value beyond psi dropped",
             "answer": "z = torch.randn(n, dim, generator=generator)\nreturn z[(z.abs() <= psi).all(1)]",
             "hint": ("(4000, 5)", "never drop a row")},
            {"why": "the far values redrawn once only, some are still beyond psi",
             "answer": "z = torch.randn(n, dim, generator=generator)\nfar = z.abs() > psi\n"
                       "z[far] = torch.randn(int(far.sum()), generator=generator)\nreturn z",
             "hint": ("drawn again",)},
            {"why": "the redraws ignore the generator: not reproducible",
             "answer": "z = torch.randn(n, dim, generator=generator)\nfar = z.abs() > psi\nwhile far.any():\n"
                       "    z[far] = torch.randn(int(far.sum()))\n    far = z.abs() > psi\nreturn z",
             "hint": ("generator passed in",)},
        ],
        "right": [
            # whole rows redrawn: the coordinates are still independent truncated normals
            "rows = []\nwhile sum(len(r) for r in rows) < n:\n    x = torch.randn(n, dim, generator=generator)\n"
            "    rows.append(x[(x.abs() <= psi).all(1)])\nreturn torch.cat(rows)[:n]",
            # rejection on a long stream of draws
            "out = torch.empty(0)\nwhile out.numel() < n * dim:\n"
            "    x = torch.randn(4 * n * dim, generator=generator)\n"
            "    out = torch.cat([out, x[x.abs() <= psi]])\nreturn out[:n * dim].reshape(n, dim)",
        ],
    },
}
