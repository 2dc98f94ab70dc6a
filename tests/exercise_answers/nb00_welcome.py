"""Answers for solutions/00_welcome.ipynb."""

EXERCISES = {
    "Exercise 1": {
        "wrong": [
            {"why": "draws without seeding: the numbers change from call to call",
             "answer": "return torch.randn(5)",
             "hint": ("different numbers", "seed_everything(seed)")},
            {"why": "seeds with a fixed number, not the argument",
             "answer": "seed_everything(2024)\nreturn torch.randn(5)",
             "hint": ("draw(7)", "argument")},
            {"why": "seeds once, caches the result (like b = a): equal tensors, but not the seeded numbers",
             "answer": "global _cached\ntry:\n    return _cached\nexcept NameError:\n    _cached = torch.randn(5)\n"
                       "    return _cached",
             "hint": ("right after seeding",)},
            {"why": "seeds, then throws away a first draw",
             "answer": "seed_everything(seed)\ntorch.randn(5)\nreturn torch.randn(5)",
             "hint": ("right after seeding",)},
        ],
        "right": [
            "torch.manual_seed(seed)\nnumbers = torch.randn(5)\nreturn numbers",
            "return torch.randn(5, generator=torch.Generator().manual_seed(seed))",
        ],
    },
    "Exercise 2": {
        "wrong": [
            {"why": "the shape of the whole batch, not of one image",
             "answer": "n_images = len(ds)\nimage_shape = tuple(ds.x.shape)\nx, _ = ds.get(torch.arange(256))\n"
                       "lo, hi = x.min().item(), x.max().item()\ncounts = torch.bincount(ds.y, minlength=10)",
             "hint": ("(C, H, W)",)},
            {"why": "the number of pixels, not of images",
             "answer": "n_images = ds.x.numel()\nimage_shape = tuple(ds.x.shape[1:])\n"
                       "x, _ = ds.get(torch.arange(256))\nlo, hi = x.min().item(), x.max().item()\n"
                       "counts = torch.bincount(ds.y, minlength=10)",
             "hint": ("n_images", "10000")},
            {"why": "the stored bytes' range, not what a model receives",
             "answer": "n_images = len(ds)\nimage_shape = tuple(ds.x.shape[1:])\n"
                       "lo, hi = ds.x.min().item(), ds.x.max().item()\ncounts = torch.bincount(ds.y, minlength=10)",
             "hint": ("stored bytes", "ds.get")},
            {"why": "assumes pixels in [0, 1]",
             "answer": "n_images = len(ds)\nimage_shape = tuple(ds.x.shape[1:])\n"
                       "lo, hi = 0.0, 1.0\ncounts = torch.bincount(ds.y, minlength=10)",
             "hint": ("[-1, 1]",)},
            {"why": "shares instead of counts",
             "answer": "n_images = len(ds)\nimage_shape = tuple(ds.x.shape[1:])\nx, _ = ds.get(torch.arange(256))\n"
                       "lo, hi = x.min().item(), x.max().item()\ncounts = torch.bincount(ds.y, minlength=10) / len(ds)",
             "hint": ("counts", "integers")},
        ],
        "right": [
            "n_images = ds.x.shape[0]\nc, h, w = ds.x[0].shape\nimage_shape = (c, h, w)\n"
            "x = ds.get(torch.arange(len(ds)))[0]\nlo, hi = float(x.amin()), float(x.amax())\n"
            "counts = torch.tensor([int((ds.y == k).sum()) for k in range(10)])",
        ],
    },
}
